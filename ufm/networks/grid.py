"""`train`: a grid of trainings (one network per point), recorded into a resumable store."""

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
import xarray as xr

from .. import _sweep_grid, _sweep_run
from .._interrupts import SweepInterrupted, interrupts
from .._sweep_store import versions
from ..errors import InputError
from . import mlp, store
from .data import Dataset, dataset
from .training import FIELDS, HISTORY, Training, build, check_batch, check_record, run

NOT_GRIDDED = ("widths", "seed")  # widths fix the store's shape; seeds have their own axis


def train(
    data: Dataset | str = "digits",
    training: Training | dict | None = None,
    grid: dict[str, Sequence | dict] | None = None,
    *,
    seeds: int | Sequence[int] = (0,),
    record: Sequence[int] | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool | Callable[[int, int], None] = True,
) -> xr.Dataset:
    """Train one network per grid point and seed; return the store as a Dataset.

    data: a `Dataset` or a dataset name (``ufm.networks.dataset`` with its defaults).
    training: the fixed settings (`Training` or a dict of its fields).
    grid: ``{"weight_decay": [1e-4, 1e-3], "depth": [1, 3, 6]}``: any `Training` field but
        widths and seed (give seeds instead); values may be strings (``"1e-4"``). A variant
        axis maps labels to bundles of settings, ``{"method": {"ce": {}, "kd": {"distill":
        "kd", "temperature": 4.0}}}``: its coordinate holds the labels, the store's attrs
        ``variants`` the bundles (which override `training` for the runs of that label).
    record: the epochs whose features are stored (0 = initialization; default: about 8,
        log-spaced, to the last).
    out: a new directory for the zarr store (None: in memory). resume: continue `out`,
        skipping the runs it holds; it must have been made with the same settings.
    """
    data = dataset(data) if isinstance(data, str) else data
    plan = _plan(data, _fixed(training), grid or {}, _sweep_grid.seed_list(seeds), record)
    group = existing_store(out, resume, plan.attrs)
    with interrupts() as guard:
        if group is None:
            group = store.create(
                out, plan.attrs, _coords(data, plan), _variables(data, plan), guard
            )
        _train_missing(data, plan, group, out, progress, guard)
    if out is None:
        return xr.open_zarr(group.store, consolidated=False).load()
    return store.open_training(out)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Every run of a grid, validated, and the store's shape."""

    fixed: Training
    axes: list
    variants: dict  # {axis: {label: settings}} of the variant axes
    seeds: list[int]
    points: list  # (grid index, settings that vary)
    settings: list[Training]
    record: tuple[int, ...]
    layers: list[str]
    epochs: int  # the most any run trains
    size: int  # the most parameters any run has
    attrs: dict[str, Any]


def _plan(data: Dataset, fixed: Training, grid: dict, seeds: list[int], record) -> _Plan:
    axes, variants = _axes(grid, fixed), _variants(grid, fixed)
    points = list(_points(axes, seeds))
    settings = [dataclasses.replace(fixed, **expand(p, variants)) for _, p in points]
    for t in settings:
        check_batch(t, data.x_train.shape[0])
    record = check_record(record, min(t.epochs for t in settings))
    layers = mlp.layer_names(len(fixed.widths), max(t.depth for t in settings))
    return _Plan(
        fixed, axes, variants, seeds, points, settings, record, layers,
        max(t.epochs for t in settings), max(_size(data, t) for t in settings),
        _attrs(data, fixed, axes, variants, seeds, record),
    )  # fmt: skip


def existing_store(out, resume: bool, attrs: dict, open_existing=store.open_existing):
    """The store `out` to resume (checked against `attrs` by `open_existing`), or None to
    make a new one."""
    if out is not None and Path(out).exists():
        if not resume:
            raise InputError(
                f"out: {str(out)!r} exists; pass resume=True (--resume) to continue it, or "
                "choose another path"
            )
        return open_existing(out, attrs)
    if resume:
        raise InputError(f"resume: {str(out)!r} does not exist")
    return None


def _variables(data: Dataset, plan: _Plan) -> dict:
    return store.layout(
        plan.axes, plan.seeds, plan.layers, plan.record, data.x_train.shape[0],
        data.x_test.shape[0], max(plan.fixed.widths), data.K, plan.epochs, plan.size,
        heads=max(t.heads for t in plan.settings),
    )  # fmt: skip


def _coords(data: Dataset, plan: _Plan) -> dict:
    widths = list(plan.fixed.widths)
    widths += [widths[-1]] * (len(plan.layers) - len(widths))
    teacher = {}
    if data.teacher_train is not None:
        teacher = {
            "teacher_train_logits": (("train_sample", "class"), data.teacher_train),
            "teacher_test_logits": (("test_sample", "class"), data.teacher_test),
        }
    return teacher | {
        **{a.name: (a.name, np.array(a.values)) for a in plan.axes},
        "seed": ("seed", np.array(plan.seeds, dtype=np.int64)),
        "epoch": ("epoch", np.array(plan.record, dtype=np.int64)),
        "layer": ("layer", np.array(plan.layers)),
        "layer_width": ("layer", np.array(widths, dtype=np.int64)),
        "class": ("class", np.arange(data.K)),
        "history_epoch": ("history_epoch", np.arange(1, plan.epochs + 1)),
        "train_label": ("train_sample", data.y_train.astype(np.int64)),
        "test_label": ("test_sample", data.y_test.astype(np.int64)),
        "train_index": ("train_sample", data.train_index.astype(np.int64)),
        "test_index": ("test_sample", data.test_index.astype(np.int64)),
    }


def _train_missing(data: Dataset, plan: _Plan, group, out, progress, guard) -> None:
    """Train every run the store does not hold, saving each as it finishes."""
    done = np.asarray(group["done"][...], dtype=bool)
    todo = [(i, t) for (i, _), t in zip(plan.points, plan.settings, strict=True) if not done[i]]
    total = sum(t.epochs for t in plan.settings)
    report = _progress(progress, total, total - sum(t.epochs for _, t in todo))
    count = int(done.sum())
    units = max(plan.fixed.widths)
    try:
        for index, t in todo:
            result = run(data, t, plan.record, report, lambda: guard.requested)
            if result is None:
                raise SweepInterrupted(
                    guard.signum, count, len(plan.points), out, out is not None, guard.forced,
                    unit="runs", job="training",
                )  # fmt: skip
            columns = _columns(result, units, len(plan.layers), plan.epochs, plan.size)
            store.write(group, index, columns, guard)
            count += 1
    finally:
        report(None)


def _fixed(training) -> Training:
    if training is None:
        return Training()
    if isinstance(training, Training):
        return training
    if unknown := sorted(set(training) - set(FIELDS)):
        raise InputError(
            f"training: unknown setting(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}"
        )
    return Training(**training)


def _axes(grid: dict, fixed: Training) -> list[_sweep_grid.Axis]:
    """The grid's axes (a variant axis's values: its labels)."""
    axes = []
    for name, values in grid.items():
        name = name.replace("-", "_")
        if isinstance(values, dict):
            axes.append(_sweep_grid.axis(name, list(values), None, str, "str"))
            continue
        _check_setting(f"grid {name!r}", name)
        axes.append(
            _sweep_grid.axis(name, values, None, _converter(fixed, name), _kind(fixed, name))
        )
    return axes


def _variants(grid: dict, fixed: Training) -> dict[str, dict]:
    """The bundles of the grid's variant axes {axis: {label: settings}}."""
    variants = {
        n.replace("-", "_"): _variant(n, v, fixed) for n, v in grid.items() if isinstance(v, dict)
    }
    gridded = {n.replace("-", "_") for n, v in grid.items() if not isinstance(v, dict)}
    for name, bundles in variants.items():
        if twice := sorted({k for b in bundles.values() for k in b} & gridded):
            raise InputError(f"grid {name!r}: sets {', '.join(twice)}, also a grid axis")
    return variants


def _check_setting(where: str, name: str) -> None:
    if name not in FIELDS or name in NOT_GRIDDED:
        allowed = ", ".join(n for n in FIELDS if n not in NOT_GRIDDED)
        hint = " (give seeds=... / --seeds)" if name == "seed" else ""
        raise InputError(f"{where}: not a grid setting{hint}; choose from {allowed}")


def _kind(fixed: Training, name: str) -> str:
    return type(getattr(fixed, name)).__name__


def _converter(fixed: Training, name: str):
    kind = type(getattr(fixed, name))
    return _sweep_grid._flag if kind is bool else lambda v, kind=kind: kind(_item(v))


def _variant(name: str, bundles: dict, fixed: Training) -> dict[str, dict]:
    """A variant axis's bundles, their settings converted like a grid axis's values."""
    if name in FIELDS or not bundles:
        raise InputError(
            f"grid {name!r}: a variant axis needs a name that is not a training setting and "
            "one or more labelled bundles of settings"
        )
    out = {}
    for label, bundle in bundles.items():
        if not isinstance(label, str) or not isinstance(bundle, dict):
            raise InputError(f"grid {name!r}: labels are strings, bundles dicts; got {label!r}")
        out[label] = {}
        for key, value in bundle.items():
            key = key.replace("-", "_")
            _check_setting(f"grid {name!r} variant {label!r}", key)
            try:
                out[label][key] = _converter(fixed, key)(value)
            except (TypeError, ValueError):
                raise InputError(
                    f"grid {name!r} variant {label!r}: {key} must be {_kind(fixed, key)}; "
                    f"got {value!r}"
                ) from None
    return out


def expand(values: dict, variants: dict) -> dict:
    """A grid point's settings: a variant axis's label replaced by its bundle."""
    out = {}
    for name, value in values.items():
        out |= variants[name][value] if name in variants else {name: value}
    return out


def _item(value):
    return value.item() if hasattr(value, "item") else value


def _points(axes, seeds):
    shape = [len(a.values) for a in axes] + [len(seeds)]
    for index in np.ndindex(*shape):
        values = {a.name: a.values[i] for a, i in zip(axes, index[:-1], strict=True)}
        yield index, values | {"seed": seeds[index[-1]]}


def _size(data: Dataset, t: Training) -> int:
    """The number of parameters of `t`'s network (shapes only: nothing is computed)."""
    shapes = jax.eval_shape(
        lambda: eqx.filter(build(data, t, jax.random.PRNGKey(0)), eqx.is_inexact_array)
    )
    return sum(int(np.prod(s.shape)) for s in jax.tree_util.tree_leaves(shapes))


def _attrs(data: Dataset, fixed: Training, axes, variants, seeds, record) -> dict[str, Any]:
    installed = versions(
        ("ufm", "jax", "jaxlib", "equinox", "optax", "numpy", "scikit-learn", "xarray", "zarr")
    )
    gridded = {a.name for a in axes}
    teacher = {} if data.teacher is None else {"teacher": data.teacher}
    return {
        "format": store.FORMAT,
        "data": {
            "name": data.name,
            "settings": data.settings,
            "sha1": data.sha1,
            "train_counts": list(data.counts),
            "K": data.K,
        }
        | teacher,
        "training": {k: v for k, v in fixed.as_dict().items() if k not in gridded | {"seed"}},
        "grid": {a.name: list(a.values) for a in axes},
        **({"variants": variants} if variants else {}),
        "seeds": seeds,
        "record": list(record),
        "dtype": str(jax.numpy.result_type(float)),
        "versions": installed,
        "convention": (
            "objective = mean loss + weight_decay/2 sum ||W_l||^2 + feature_decay/2 ||H||^2, "
            "H = backbone output (d x N): the UFM's canonical convention"
        ),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _columns(
    result, units: int, layers: int, epochs: int, parameters: int
) -> dict[str, np.ndarray]:
    records = result["records"]
    R = len(records)

    def stacked(key: str):
        first = records[0][key][0]
        out = np.full((R, layers, first.shape[0], units), np.nan)
        for r, rec in enumerate(records):
            for l, f in enumerate(rec[key]):
                out[r, l, :, : f.shape[1]] = f
        return out

    columns = _heads(records, units) | {
        "features_train": stacked("features_train"),
        "features_test": stacked("features_test"),
        **{s: np.array([rec[s] for rec in records]) for s in store.SCALARS},
        "terminal_epoch": np.int64(result["terminal_epoch"]),
        "seconds": np.float64(result["seconds"]),
    }
    for h in HISTORY:
        columns[f"history_{h}"] = nan_padded(result["history"][h], epochs)
    return columns | {"parameters": nan_padded(result["parameters"], parameters)}


def _heads(records: list[dict], units: int) -> dict[str, np.ndarray]:
    """classifier (R, K, units) and bias (R, K) per record, NaN-padded; the same for the
    second head (classifier2, bias2) where the run has one."""
    out = {}
    for suffix in ("", "2"):
        if f"classifier{suffix}" not in records[0]:
            continue
        K, d = records[0][f"classifier{suffix}"].shape
        classifier, bias = (
            np.full((len(records), K, units), np.nan),
            np.full((len(records), K), np.nan),
        )
        for r, rec in enumerate(records):
            classifier[r, :, :d] = rec[f"classifier{suffix}"]
            if rec[f"bias{suffix}"] is not None:
                bias[r] = rec[f"bias{suffix}"]
        out |= {f"classifier{suffix}": classifier, f"bias{suffix}": bias}
    return out


def nan_padded(values: np.ndarray, size: int) -> np.ndarray:
    """`values` followed by NaN up to `size` (a store's fixed-length row)."""
    out = np.full(size, np.nan)
    out[: values.size] = values
    return out


def _progress(progress, total: int, start: int) -> Callable[[int | None], None]:
    """Counts epochs: `step(epochs)` adds them, `step(None)` closes (the sweeps' bar)."""
    shown = _sweep_run._progress(progress, total, start, label="train", unit="epochs")
    state = {"done": start}

    def step(epochs: int | None) -> None:
        if epochs is None:
            shown(None)
            return
        state["done"] += epochs
        shown(state["done"])

    return step
