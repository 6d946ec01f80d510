"""A grid of small causal language models, trained and measured into one resumable store.

`Study` names the data (`data.language_data`), the grid (every width x depth x training
length x weight decay, each with `seeds`, plus `extra_seeds` of the one `seeded`
configuration, so that metrics can be compared across seeds of one size) and the shared
training settings. `run(study, out)` trains the models one by one in a fixed order, measures
each (`measure.measure`) and writes it into the zarr store `out` before the next starts;
`resume=True` continues a store made with the same study and data, skipping the models it
holds (a model interrupted mid-training is trained again from the start).

The store (readable by xarray alone) has one ``model`` dimension whose coordinates are the
settings (``width``, ``depth``, ``steps``, ``weight_decay``, ``seed``, ``epochs``), the NC
``metrics`` (model, metric), the token-mean ``geometry`` (model, quantity), the losses and
token counts, the training loss of every step (``history_loss``), the flat trained
parameters (``parameters``: `trained_model` rebuilds a model) and ``done``.
"""

import dataclasses
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
import xarray as xr
import zarr
from jax.flatten_util import ravel_pytree

from ufm import _sweep_run
from ufm._interrupts import SweepInterrupted, interrupts
from ufm._sweep_store import _canonical, versions
from ufm.errors import InputError
from ufm.language import measure as measuring
from ufm.language.data import LanguageData, language_data
from ufm.language.train import TransformerConfig, train
from ufm.language.transformer import Transformer
from ufm.metrics import DEFINITIONS
from ufm.networks import store
from ufm.networks.grid import existing_store, nan_padded

FORMAT = "ufm-language/1"
GEOMETRY = (
    "mean_norm_frequency_spearman",
    "classifier_norm_frequency_spearman",
    "classifier_interference",
    "mean_interference",
    "mean_norm_cv",
    "classifier_norm_cv",
)
SCALARS = ("validation_loss", "train_loss", "seconds")


@dataclasses.dataclass(frozen=True)
class Study:
    """What a study trains (module docstring). `synthetic`: options of a synthetic source;
    `measure_tokens`: tokens of each split measured (None: all)."""

    source: str = "docstrings"
    vocab_size: int = 1024
    synthetic: tuple[tuple[str, Any], ...] = ()
    widths: tuple[int, ...] = (32, 64, 128)
    depths: tuple[int, ...] = (1, 2)
    steps: tuple[int, ...] = (400, 1600)
    weight_decays: tuple[float, ...] = (0.1,)
    seeds: tuple[int, ...] = (0,)
    seeded: tuple[int, int, int, float] | None = (64, 2, 1600, 0.1)
    extra_seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    heads: int = 4
    context: int = 64
    batch: int = 32
    lr: float = 3e-3
    warmup: int = 100
    dtype: str = "float32"
    measure_tokens: int | None = 200_000

    def models(self) -> list[dict[str, Any]]:
        """The models in training order: the grid, then the extra seeds."""
        grid = itertools.product(
            self.widths, self.depths, self.steps, self.weight_decays, self.seeds
        )
        out = [dict(zip(("width", "depth", "steps", "weight_decay", "seed"), g, strict=True))
               for g in grid]  # fmt: skip
        if self.seeded is not None:
            width, depth, steps, decay = self.seeded
            out += [
                dict(width=width, depth=depth, steps=steps, weight_decay=decay, seed=s)
                for s in self.extra_seeds
            ]
        return out

    def config(self, model: dict[str, Any]) -> TransformerConfig:
        return TransformerConfig(
            vocab_size=self.vocab_size, width=model["width"], depth=model["depth"],
            heads=self.heads, context=self.context, batch=self.batch, lr=self.lr,
            warmup=self.warmup, weight_decay=model["weight_decay"], dtype=self.dtype,
        )  # fmt: skip

    def check(self) -> None:
        """Every setting, before any work: one InputError naming the first bad one."""
        for name in ("widths", "depths", "steps", "seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise InputError(f"{name} must be a non-empty tuple of distinct values")
        for model in self.models():
            self.config(model)  # checks widths, heads, context, lr ...
            if not isinstance(model["steps"], int) or model["steps"] < 1:
                raise InputError(f"steps must be integers >= 1, got {model['steps']!r}")
        if self.measure_tokens is not None and (
            not isinstance(self.measure_tokens, int) or self.measure_tokens < self.context
        ):
            raise InputError(
                f"measure_tokens must be None or an integer >= context ({self.context}), "
                f"got {self.measure_tokens!r}"
            )

    def data(self) -> LanguageData:
        return language_data(self.source, self.vocab_size, **dict(self.synthetic))


def settings(study: Study) -> dict[str, Any]:
    """The study as strict JSON (the store's attrs; resuming compares them)."""
    return json.loads(json.dumps(dataclasses.asdict(study)))


def run(
    study: Study,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool | Callable[[int, int], None] = True,
    data: LanguageData | None = None,
) -> xr.Dataset:
    """Train and measure every model of `study` not yet in `out` (None: in memory); return
    the store as a Dataset."""
    study.check()
    data = study.data() if data is None else data
    if study.context + 1 > min(data.train.size, data.validation.size):
        raise InputError(f"context must be < the streams' lengths, got {study.context}")
    models = study.models()
    attrs = {
        "format": FORMAT, "study": settings(study), "data": _canonical(data.description),
        "bayes_loss": data.bayes_loss, "versions": versions(),
    }  # fmt: skip
    group = existing_store(out, resume, attrs, open_existing)
    with interrupts() as guard:
        if group is None:
            group = store.create(out, attrs, _coords(study, models, data), _layout(study, models),
                                 guard)  # fmt: skip
        _train_missing(study, models, data, group, out, progress, guard)
    return open_study(group.store if out is None else out).load()


def open_study(path) -> xr.Dataset:
    """A study store as an xarray Dataset with the models' settings as coordinates."""
    if not isinstance(path, zarr.abc.store.Store):
        group = _open_group(path)
        if group.attrs.get("format") != FORMAT:
            raise InputError(f"result: {str(path)!r} is not a ufm language study ({FORMAT})")
    ds = xr.open_zarr(path, consolidated=False)
    return ds.set_coords(["width", "depth", "steps", "weight_decay", "seed"])


def _open_group(path) -> zarr.Group:
    if not Path(path).exists():
        raise InputError(f"result: {str(path)!r} does not exist")
    try:
        return zarr.open_group(Path(path), mode="r")
    except Exception as error:
        raise InputError(f"result: {str(path)!r} is not a zarr store ({error})") from None


def open_existing(path, attrs: dict) -> zarr.Group:
    """The store at `path`, checked to hold this study on this data."""
    where = f"resume: {str(path)!r}"
    try:
        group = zarr.open_group(Path(path), mode="r+")
    except Exception as error:
        raise InputError(f"{where} is not a zarr store ({error})") from None
    saved = group.attrs.asdict()
    if saved.get("format") != FORMAT or "done" not in group:
        raise InputError(f"{where} is not a ufm language study store ({FORMAT})")
    for key in ("study", "data"):
        old, new = saved.get(key) or {}, attrs[key]
        for name in sorted(set(old) | set(new)):
            if _canonical(old.get(name)) != _canonical(new.get(name)):
                raise InputError(
                    f"{where} was made with {key} {name}={old.get(name)!r}, not "
                    f"{new.get(name)!r}; resume with the same settings or use another path"
                )
    return group


def _coords(study: Study, models: list[dict], data: LanguageData) -> dict:
    epochs = [m["steps"] * study.batch * study.context / data.train.size for m in models]
    coords = {
        name: ("model", np.array([m[name] for m in models]))
        for name in ("width", "depth", "steps", "weight_decay", "seed")
    }
    return coords | {
        "model": ("model", np.arange(len(models))),
        "epochs": ("model", np.array(epochs)),
        "metric": ("metric", np.array(list(DEFINITIONS))),
        "quantity": ("quantity", np.array(GEOMETRY)),
        "step": ("step", np.arange(max(m["steps"] for m in models))),
    }


def _layout(study: Study, models: list[dict]) -> dict:
    M = len(models)
    sizes = [_parameter_count(study, m) for m in models]

    def var(dims, shape, dtype=np.float64):
        return (["model", *dims], [M, *shape], [1, *shape], dtype)

    return {
        "metrics": var(["metric"], [len(DEFINITIONS)]),
        "geometry": var(["quantity"], [len(GEOMETRY)]),
        **{name: var([], []) for name in SCALARS},
        "train_tokens": var([], [], np.int64),
        "validation_tokens": var([], [], np.int64),
        "history_loss": var(["step"], [max(m["steps"] for m in models)]),
        "parameters": var(["parameter"], [max(sizes)]),
        "done": var([], [], np.bool_),
    }


def _parameter_count(study: Study, model: dict) -> int:
    shapes = jax.eval_shape(lambda: _fresh(study, model))
    return sum(x.size for x in jax.tree_util.tree_leaves(shapes))


def _fresh(study: Study, model: dict) -> Transformer:
    config = study.config(model)
    return Transformer(
        config.vocab_size, config.width, config.depth, config.heads, config.context,
        key=jax.random.PRNGKey(0), dtype=jax.numpy.dtype(config.dtype),
    )  # fmt: skip


class _Stop(Exception):
    """Raised from the progress callback when an interrupt was requested mid-training."""


def _train_missing(study, models, data, group, out, progress, guard) -> None:
    done = np.asarray(group["done"][...], dtype=bool)
    total = sum(m["steps"] for m in models)
    state = {"done": sum(m["steps"] for m, d in zip(models, done, strict=True) if d)}
    shown = _sweep_run._progress(progress, total, state["done"], label="train", unit="steps")
    count = int(done.sum())
    steps_width, parameters_width = group["step"].shape[0], group["parameters"].shape[1]

    def tick(step: int, loss: float) -> None:
        if guard.requested:
            raise _Stop
        state["done"] += 1
        if step % 10 == 0 or state["done"] == total:
            shown(state["done"])

    try:
        for index, model in enumerate(models):
            if done[index]:
                continue
            try:
                columns = _train_one(study, model, data, tick)
            except _Stop:
                raise SweepInterrupted(
                    guard.signum, count, len(models), out, out is not None, guard.forced,
                    unit="models", job="study",
                ) from None  # fmt: skip
            columns["history_loss"] = nan_padded(columns["history_loss"], steps_width)
            columns["parameters"] = nan_padded(columns["parameters"], parameters_width)
            store.write(group, (index,), columns, guard)
            count += 1
    finally:
        shown(None)


def _train_one(study: Study, model: dict, data: LanguageData, tick) -> dict[str, Any]:
    start = time.perf_counter()
    config = study.config(model)
    trained, history = train(data.train, config, model["steps"], model["seed"], progress=tick)
    found = measuring.measure(
        trained, data.train, data.validation, study.context, study.measure_tokens
    )
    flat, _ = ravel_pytree(eqx.filter(trained, eqx.is_inexact_array))
    return {
        "metrics": _row([found["metrics"].get(k) for k in DEFINITIONS]),
        "geometry": _row([found["geometry"][k] for k in GEOMETRY]),
        "validation_loss": found["validation_loss"],
        "train_loss": found["train_loss"],
        "train_tokens": found["train_tokens"],
        "validation_tokens": found["validation_tokens"],
        "history_loss": np.asarray(history["loss"], dtype=np.float64),
        "parameters": np.asarray(flat, dtype=np.float64),
        "seconds": time.perf_counter() - start,
    }


def _row(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def trained_model(ds: xr.Dataset, index: int) -> Transformer:
    """Model `index` of a study store, rebuilt from its saved parameters."""
    study = Study(**_tuples(ds.attrs["study"]))
    model = {k: ds[k].values[index].item() for k in ("width", "depth", "steps", "weight_decay",
                                                      "seed")}  # fmt: skip
    fresh = _fresh(study, model)
    params, static = eqx.partition(fresh, eqx.is_inexact_array)
    template, unravel = ravel_pytree(params)
    flat = np.asarray(ds["parameters"].values[index][: template.size])
    dtype = jax.numpy.dtype(study.dtype)
    return eqx.combine(unravel(jax.numpy.asarray(flat, dtype=dtype)), static)


def _tuples(saved: dict[str, Any]) -> dict[str, Any]:
    """The study's settings from JSON: lists back to tuples (synthetic: pairs)."""
    out = {}
    for key, value in saved.items():
        if key == "synthetic":
            value = tuple(tuple(pair) for pair in value)
        elif isinstance(value, list):
            value = tuple(value)
        out[key] = value
    return out
