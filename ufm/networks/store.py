"""The zarr store of a grid of trainings: one point per run, readable by xarray alone.

Dimensions: the grid's axes (training settings, then ``seed``), ``epoch`` (the recorded
epochs), ``layer`` (``hidden1`` ...; ``linear1`` ... up to the largest depth), samples
(``train_sample``, ``test_sample``), ``unit`` (the widest layer; narrower layers are
NaN-padded, as are layers a shallower run does not have), ``class``, ``history_epoch``
(every epoch) and ``parameter`` (the flat final parameters). A run's variables are
written before its ``done`` flag; `--resume` skips done runs and trains the others from the
start. The store is created whole in a hidden sibling directory and renamed into place.
Distillation adds, where used: ``classifier2`` / ``bias2`` (a second head) and the teacher's
logits the students were trained on (``teacher_train_logits``, ``teacher_test_logits``).
"""

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from .._sweep_store import _canonical, create_whole
from ..errors import InputError
from .training import HISTORY

FORMAT = "ufm-training/1"
FULL = {"write_empty_chunks": True}
SCALARS = ("train_loss", "objective", "train_error", "test_loss", "test_error")
DESCRIPTIONS = {
    "features_train": "features of the training set per layer (NaN: no such layer/unit)",
    "features_test": "features of the test set per layer (batch norm: training statistics)",
    "classifier": "classifier W (class, unit)",
    "bias": "classifier bias b (NaN without a bias)",
    "classifier2": "second head W2 (class, unit) (NaN: a one-head run)",
    "bias2": "second head's bias b2 (NaN: none)",
    "train_loss": "data loss on the clean training set",
    "objective": "data loss + weight decay + feature decay, full training set",
    "train_error": "training error rate",
    "test_loss": "data loss on the test set",
    "test_error": "test error rate",
    "parameters": "flat final parameters (ufm.networks.network rebuilds the network)",
    "terminal_epoch": "first epoch from which the training error stays 0 (-1: never)",
    "seconds": "training time of the run",
    "done": "run saved (resume skips it)",
}


def layout(axes, seeds, layers, record, N, N_test, units, K, epochs, parameters, heads=1):
    """{variable: (dimensions, shape, chunks, dtype)}: one chunk per run, and per recorded
    epoch and layer for the features; heads=2: the second head's too."""
    G = [a.name for a in axes] + ["seed"]
    S = [len(a.values) for a in axes] + [len(seeds)]
    R, L = len(record), len(layers)

    def var(dims, shape, dtype=np.float64, split=0):
        chunks = [1] * (len(S) + split) + list(shape[split:])
        return (G + dims, S + shape, chunks, dtype)

    second = {}
    if heads == 2:
        second = {"classifier2": var(["epoch", "class", "unit"], [R, K, units])}
        second["bias2"] = var(["epoch", "class"], [R, K])
    return second | {
        "features_train": var(
            ["epoch", "layer", "train_sample", "unit"], [R, L, N, units], split=2
        ),
        "features_test": var(
            ["epoch", "layer", "test_sample", "unit"], [R, L, N_test, units], split=2
        ),
        "classifier": var(["epoch", "class", "unit"], [R, K, units]),
        "bias": var(["epoch", "class"], [R, K]),
        **{s: var(["epoch"], [R]) for s in SCALARS},
        **{f"history_{h}": var(["history_epoch"], [epochs]) for h in HISTORY},
        "parameters": var(["parameter"], [parameters]),
        "terminal_epoch": var([], [], np.int64),
        "seconds": var([], []),
        "done": var([], [], np.bool_),
    }


def create(path, attrs, coords: dict[str, tuple[str, np.ndarray]], variables, guard):
    """A new store at `path` (None: in memory), all of it or nothing."""
    if path is None:
        group = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
        _fill(group, attrs, coords, variables)
        return group
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"out: directory {str(path.parent)!r} does not exist")
    return create_whole(path, lambda group: _fill(group, attrs, coords, variables), guard)


def _fill(group, attrs, coords, variables) -> None:
    group.attrs.update(attrs)
    for name, (dim, values) in coords.items():
        values = np.asarray(values)
        array = group.create_array(
            name,
            shape=values.shape,
            dtype=str if values.dtype.kind == "U" else values.dtype,
            dimension_names=[dim] if isinstance(dim, str) else list(dim),
            config=FULL,
        )
        array[...] = values
    for name, (dims, shape, chunks, dtype) in variables.items():
        fill = {np.float64: np.nan, np.int64: -1, np.bool_: False}[dtype]
        array = group.create_array(
            name,
            shape=tuple(shape),
            chunks=tuple(chunks),
            dtype=dtype,
            fill_value=fill,
            dimension_names=dims,
        )
        array.attrs["long_name"] = DESCRIPTIONS.get(name, name.replace("_", " "))


def open_existing(path, attrs: dict) -> zarr.Group:
    """The store at `path`, checked to be the one these settings would make."""
    path = Path(path)
    where = f"resume: {str(path)!r}"
    try:
        group = zarr.open_group(path, mode="r+")
    except Exception as error:
        raise InputError(f"{where} is not a zarr store ({error})") from None
    saved = group.attrs.asdict()
    if saved.get("format") != FORMAT or "done" not in group:
        raise InputError(f"{where} is not a ufm training store ({FORMAT})")
    for key in ("data", "training", "grid", "variants", "seeds", "record", "dtype"):
        if _canonical(saved.get(key)) != _canonical(attrs.get(key)):
            raise InputError(
                f"{where} was made with {key}={saved.get(key)}, not {attrs.get(key)}; resume "
                "with the same settings or use another path"
            )
    return group


def write(group, index: tuple[int, ...], columns: dict[str, Any], guard) -> None:
    with guard.critical():
        for name, values in columns.items():
            group[name].with_config(FULL)[index] = values
        group["done"][index] = True


def open_training(path) -> xr.Dataset:
    """A training store as an xarray Dataset, read lazily (features are only read when
    used). Plain xarray reads it too: ``xr.open_zarr(path, consolidated=False)``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"result: {str(path)!r} does not exist")
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as error:
        raise InputError(f"result: {str(path)!r} is not a zarr store ({error})") from None
    if group.attrs.get("format") != FORMAT:
        raise InputError(f"result: {str(path)!r} is not a ufm training store ({FORMAT})")
    return xr.open_zarr(path, consolidated=False)
