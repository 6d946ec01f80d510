"""Reading a training store back: its runs, one layer's features, the settings, the network."""

from collections.abc import Iterator
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputError
from . import mlp
from .data import Dataset, dataset
from .grid import expand
from .training import Training, network


def grid_dims(ds: xr.Dataset) -> list[str]:
    """The store's grid dimensions (training settings, then seed)."""
    return [*ds.attrs["grid"], "seed"]


def points(ds: xr.Dataset) -> Iterator[dict[str, Any]]:
    """Every saved run as a selection {dim: value} over the grid dimensions."""
    dims = grid_dims(ds)
    done = ds["done"].transpose(*dims).values
    for index in zip(*np.nonzero(done), strict=True):
        values = (ds[d].values[i] for d, i in zip(dims, index, strict=True))
        yield dict(zip(dims, (v.item() if hasattr(v, "item") else v for v in values), strict=True))


def training(ds: xr.Dataset, point: dict[str, Any]) -> Training:
    """The settings of one run (a variant axis's label replaced by its bundle)."""
    values = {k: point[k] for k in grid_dims(ds)}
    settings = dict(ds.attrs["training"]) | expand(values, ds.attrs.get("variants", {}))
    settings["widths"] = tuple(settings["widths"])
    return Training(**settings)


def data(ds: xr.Dataset) -> Dataset:
    """The dataset the store was trained on, rebuilt and checked against its hash."""
    saved = ds.attrs["data"]
    rebuilt = dataset(
        saved["name"], **{k: v for k, v in saved["settings"].items() if v is not None}
    )
    if "teacher" in saved:  # the logits the students were trained on, kept in the store
        logits = [np.asarray(ds[f"teacher_{s}_logits"].values) for s in ("train", "test")]
        rebuilt = rebuilt.with_teacher(*logits, saved["teacher"])
    if rebuilt.sha1 != saved["sha1"]:
        raise InputError(
            f"data: the store's {saved['name']!r} data (sha1 {saved['sha1'][:12]}) cannot be "
            f"rebuilt here (got {rebuilt.sha1[:12]}): another scikit-learn or numpy version?"
        )
    return rebuilt


def layer_names(ds: xr.Dataset, point: dict[str, Any]) -> list[str]:
    """The layers this run has (a shallower run leaves the deeper ``linear`` layers empty)."""
    t = training(ds, point)
    return mlp.layer_names(len(t.widths), t.depth)


def _check_choice(name: str, value, allowed) -> None:
    allowed = [a.item() if hasattr(a, "item") else a for a in np.asarray(allowed)]
    if value not in allowed:
        raise InputError(f"{name}: {value!r} is not in the store; choose from {allowed}")


def features(
    ds: xr.Dataset, point: dict[str, Any], epoch: int, layer: str, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, width), labels (N,)) of one layer of one run at a recorded epoch."""
    _check_choice("epoch", epoch, ds["epoch"].values)
    _check_choice("layer", layer, layer_names(ds, point))
    if split not in ("train", "test"):
        raise InputError(f"split: 'train' or 'test'; got {split!r}")
    width = int(ds["layer_width"].sel(layer=layer).values)
    values = ds[f"features_{split}"].sel(point | {"epoch": epoch, "layer": layer}).values
    return np.asarray(values[:, :width]), np.asarray(ds[f"{split}_label"].values)


def classifier(
    ds: xr.Dataset, point: dict[str, Any], epoch: int, head: int = 1
) -> tuple[np.ndarray, Any]:
    """(W (K, d), b (K,) or None) of one run at a recorded epoch; head=2: its second head."""
    _check_choice("epoch", epoch, ds["epoch"].values)
    suffix = "" if head == 1 else "2"
    if head not in (1, 2) or (head == 2 and training(ds, point).heads != 2):
        raise InputError(f"head: 1, or 2 for a run with two heads; got {head!r}")
    d = int(ds["layer_width"].values[-1])
    W = np.asarray(ds[f"classifier{suffix}"].sel(point | {"epoch": epoch}).values)[:, :d]
    b = np.asarray(ds[f"bias{suffix}"].sel(point | {"epoch": epoch}).values)
    return W, (None if np.isnan(b).all() else b)


def trained_network(ds: xr.Dataset, point: dict[str, Any], built: Dataset | None = None):
    """The run's final network (an equinox `MLP`)."""
    built = data(ds) if built is None else built
    parameters = np.asarray(ds["parameters"].sel(point).values)
    return network(built, training(ds, point), parameters)


def status(ds: xr.Dataset, point: dict[str, Any], epoch: int) -> dict[str, Any]:
    """Where the run stands at `epoch`: errors, losses and whether it is in the terminal phase
    (zero training error from some epoch <= this one to the end of training)."""
    sel = point | {"epoch": epoch}
    terminal = int(ds["terminal_epoch"].sel(point).values)
    return {
        "epoch": int(epoch),
        "train_error": float(ds["train_error"].sel(sel).values),
        "test_error": float(ds["test_error"].sel(sel).values),
        "train_loss": float(ds["train_loss"].sel(sel).values),
        "terminal_epoch": terminal,
        "terminal_phase": bool(0 < terminal <= epoch),
    }
