"""Phase diagrams: every point of a hyperparameter grid solved, checked and saved.

``ufm.sweep(model, fixed, grid, seeds)`` solves the problem ``ufm.make(model, **fixed,
**point)`` at every grid point and seed as one jitted computation per chunk of points:
hyperparameters are array leaves of the problem, so points that share their shapes (K, n,
d, depth, loss, ...) are stacked and vmapped, with one compilation per shape. Each chunk is
split over all visible devices (``jax.shard_map`` on a one-axis mesh; on CPU,
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` makes N devices), checked against
``ufm.theory`` point by point on the host while the next chunk runs, and written to a zarr
store, so a killed sweep loses at most the chunks in flight and ``resume=True`` recomputes
nothing that was saved.

Seed s solves a point exactly as ``ufm.solve(problem, seed=s, restarts=R, ...)`` does (same
starts), so a sweep equals point-by-point solves up to round-off.
"""

import concurrent.futures
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
import zarr
from jax.sharding import NamedSharding, PartitionSpec

from . import metrics
from ._solution import RESULTS
from .check import (
    LOSS_RTOL,
    QUANTITY_TOL,
    class_mean_quantities,
    found_quantities,
    found_regime,
    judge,
    quantity_errors,
)
from .errors import InputError
from .models import REGISTRY, make
from .solve import check_options, restart_keys, solve_starts, starts

FORMAT = "ufm-sweep/1"
STATUS = {i: name for i, name in enumerate(RESULTS._name_to_item)}  # code -> RESULTS name
# hyperparameter names that would clash with result variables get a coordinate name
COORD_NAMES = {"loss": "loss_type"}


@dataclasses.dataclass(frozen=True)
class Axis:
    """One grid dimension: a hyperparameter, its values, and how they are spaced."""

    name: str
    values: tuple
    spacing: str  # "log", "linear" or "list"

    @property
    def coord(self) -> str:
        return COORD_NAMES.get(self.name, self.name)


def parse_axis(text: str) -> tuple[str, list[str] | np.ndarray, str]:
    """``"lambda_W=1e-4:1:64:log"`` (START:STOP:NUM[:log|lin]) or ``"K=3,4,5"``.

    Returns (name, values, spacing); values are strings for a list (the model converts
    them) and floats for a range. A malformed spec raises a ValueError that says the form.
    """
    form = "NAME=START:STOP:NUM[:log|lin] or NAME=V1,V2,..."
    name, sep, spec = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name or not spec:
        raise InputError(f"--grid {text!r}: expected {form}")
    if ":" not in spec:
        return name, [v.strip() for v in spec.split(",")], "list"
    parts = spec.split(":")
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] not in ("log", "lin")):
        raise InputError(f"--grid {text!r}: expected {form}")
    try:
        start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise InputError(
            f"--grid {text!r}: START and STOP must be numbers, NUM an integer"
        ) from None
    log = len(parts) == 4 and parts[3] == "log"
    if num < 1:
        raise InputError(f"--grid {text!r}: NUM must be an integer >= 1; got {num}")
    if not (np.isfinite(start) and np.isfinite(stop)):
        raise InputError(f"--grid {text!r}: START and STOP must be finite")
    if log and (start <= 0 or stop <= 0):
        raise InputError(f"--grid {text!r}: a log range needs START > 0 and STOP > 0")
    values = np.geomspace(start, stop, num) if log else np.linspace(start, stop, num)
    return name, values, "log" if log else "linear"


def _axis(model: str, name: str, values, spacing: str | None) -> Axis:
    hyper = {h.name: h for h in REGISTRY[model].hypers}[name]
    if isinstance(values, str | bytes) or np.ndim(values) != 1 or len(values) == 0:
        raise InputError(f"grid {name!r}: expected a non-empty 1-D list of values; got {values!r}")
    convert = {"int": int, "counts": int, "float": float, "floats": float}.get(hyper.kind)
    if hyper.kind == "flag":
        convert = _flag
    try:
        values = tuple(
            convert(v) if convert else (v.item() if hasattr(v, "item") else v) for v in values
        )
    except (TypeError, ValueError):
        raise InputError(
            f"grid {name!r}: values must be {hyper.kind} values ({hyper.help}); got {values!r}"
        ) from None
    if len(set(values)) != len(values):
        raise InputError(f"grid {name!r}: values repeat: {list(values)}")
    if spacing is None or spacing == "list":
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        positive = numeric and min(values) > 0
        spacing = "log" if positive and max(values) / min(values) >= 100 else "linear"
        spacing = spacing if numeric else "list"
    return Axis(name, values, spacing)


def _flag(v) -> bool:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    text = str(v).lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise InputError(v)


def _jsonable(value):
    if isinstance(value, np.ndarray | jax.Array):
        data = np.ascontiguousarray(np.asarray(value))
        return {"array_sha1": hashlib.sha1(data.tobytes()).hexdigest(), "shape": data.shape}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value))


def _canonical(obj) -> Any:
    return json.loads(json.dumps(obj, default=_jsonable))


def _versions() -> dict[str, str]:
    out = {}
    for package in ("ufm", "jax", "jaxlib", "optax", "equinox", "numpy", "xarray", "zarr"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "unknown"
    return out


# ----------------------------------------------------------------------------------------
# The compiled part: one chunk of stacked problems, sharded over a one-axis device mesh.


class _Static:
    """The non-array part of stacked problems as a static jit argument (models may hold
    unhashable static fields, e.g. dicts, so equality decides and the hash is coarse)."""

    def __init__(self, tree):
        self.tree = tree

    def __hash__(self):
        return hash(type(self.tree).__name__)

    def __eq__(self, other):
        return isinstance(other, _Static) and jax.tree.structure(self.tree) == jax.tree.structure(
            other.tree
        )


@functools.partial(jax.jit, static_argnums=(5, 6, 7))
def _solve_chunk(dynamic, keys, scales, learning_rate, gtol, static, mesh, options):
    # jax.jit, not eqx.filter_jit: it returns at once, so the host checks the previous chunk
    # while this one runs (filter_jit waits for the result)
    static = static.tree
    spec, replicated = PartitionSpec("points"), PartitionSpec()

    def local(dynamic, keys, scales, learning_rate, gtol):
        problem_at = lambda dyn: eqx.combine(dyn, static)
        inits = jax.lax.map(lambda dk: starts(problem_at(dk[0]), dk[1], scales), (dynamic, keys))
        solve_one = lambda dyn, p0: solve_starts(problem_at(dyn), p0, learning_rate, gtol, *options)
        sols = jax.vmap(solve_one)(dynamic, inits)
        # one by one: batched LAPACK calls (pinv) must not run concurrently on CPU
        found = jax.lax.map(lambda ds: _found(problem_at(ds[0]), ds[1]), (dynamic, sols.params))
        return {
            "params": sols.params,
            "loss": sols.loss,
            "grad_norm": sols.grad_norm,
            "steps": sols.steps,
            "status": sols.result._value,
            "restarts_converged": jnp.sum(sols.restart_converged, axis=-1),
            "metrics": found[0],
            "quantities": found[1],
        }

    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(spec, spec, replicated, replicated, replicated),
        out_specs=spec,
        check_vma=False,  # optax's line search mixes replicated and per-point values
    )(dynamic, keys, scales, learning_rate, gtol)


def _found(problem, params):
    """NC metrics and class-mean quantities of one solution (`ufm.check` computes the same)."""
    labels = problem.labels
    K = int(labels.max()) + 1
    W, H, b = problem.classifier(params), params["H"], params.get("b")
    summary = metrics.summary(H, jnp.asarray(labels), K, W, b)
    return summary, class_mean_quantities(W, H, b, labels, K)


def _global(x, mesh, spec) -> jax.Array:
    """`x` (the same on every process) as one array sharded over `mesh`."""
    x = np.asarray(x)
    sharding = NamedSharding(mesh, spec)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def _fetch(tree):
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        tree = multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


# ----------------------------------------------------------------------------------------
# The store: one zarr group, every variable shaped (grid..., seed).


class _Store:
    """Results are buffered and written every `save_every` seconds (zarr's per-write cost,
    ~2 ms per variable, would otherwise dominate small problems) and on every exit."""

    def __init__(self, group: zarr.Group, dims: list[str], shape: tuple[int, ...], writer: bool):
        self.group, self.dims, self.shape, self.writer = group, dims, shape, writer
        self.buffer: list[tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]] = []
        self.flushed = time.perf_counter()

    def add(self, index, columns, save_every: float) -> None:
        self.buffer.append((index, columns))
        if time.perf_counter() - self.flushed >= save_every:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            index = tuple(np.concatenate(c) for c in zip(*(i for i, _ in self.buffer), strict=True))
            names = dict.fromkeys(k for _, cols in self.buffer for k in cols)
            columns = {}
            for name in names:  # an error_* column may be missing from some chunks
                parts = [
                    cols[name] if name in cols else np.full(len(i[0]), np.nan)
                    for i, cols in self.buffer
                ]
                columns[name] = np.concatenate(parts)
            self.write(index, columns)
            self.buffer = []
        self.flushed = time.perf_counter()

    def done(self) -> np.ndarray:
        if self.group is None:  # another process creates the store
            return np.zeros(self.shape, dtype=bool)
        return np.asarray(self.group["done"][...], dtype=bool)

    def write(self, index: tuple[np.ndarray, ...], columns: dict[str, np.ndarray]) -> None:
        if not self.writer:
            return
        for name, values in columns.items():
            if name not in self.group:
                self._create(name, values.dtype)
            self.group[name].vindex[index] = values
        self.group["done"].vindex[index] = np.ones(len(index[0]), dtype=bool)  # last

    def _create(self, name: str, dtype) -> None:
        if dtype.kind == "f":
            dtype, fill = np.float64, np.nan
        elif dtype.kind in "iu":
            dtype, fill = np.int64, -1
        elif dtype.kind == "b":
            dtype, fill = np.bool_, False
        else:
            dtype, fill = str, ""
        self.group.create_array(
            name, shape=self.shape, dtype=dtype, fill_value=fill, dimension_names=self.dims
        )
        self.group[name].attrs.update(VARIABLES.get(name, {}))


VARIABLES = {
    "loss": {"long_name": "loss of the best converged seed-restart (the problem's objective)"},
    "theory_loss": {"long_name": "predicted global minimum (ufm.theory), NaN if not applicable"},
    "loss_gap": {"long_name": "(loss - theory_loss) / |theory_loss|"},
    "grad_norm": {"long_name": "gradient norm of the full objective at the solution"},
    "steps": {"long_name": "optimizer steps of the best restart"},
    "converged": {"long_name": "gradient norm <= gtol"},
    "status": {"long_name": "why the solver stopped: " + ", ".join(RESULTS._name_to_item)},
    "restarts_converged": {"long_name": "restarts that converged"},
    "verdict": {"long_name": "ufm.check verdict: agrees, disagrees or inconclusive"},
    "reason": {"long_name": "why that verdict"},
    "regime": {"long_name": "regime read off the solution (ufm.check.found_regime)"},
    "theory_regime": {"long_name": "regime the theory predicts (ufm.theory)"},
    "geometry": {"long_name": "geometry the theory predicts"},
    "max_error": {"long_name": "largest relative error of a predicted quantity"},
    "done": {"long_name": "point saved (resume skips it)"},
}


def _open_store(
    out, resume: bool, axes: list[Axis], seeds: list[int], attrs: dict, writer: bool
) -> _Store:
    dims = [a.coord for a in axes] + ["seed"]
    shape = tuple(len(a.values) for a in axes) + (len(seeds),)
    if out is None:
        group = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    elif not writer and not resume:  # process 0 creates it; every process starts from zero
        return _Store(None, dims, shape, writer)
    else:
        path = Path(out)
        if path.exists() and not resume:
            raise InputError(
                f"out: {str(path)!r} exists; pass resume=True (--resume) to continue it, "
                "or choose another path"
            )
        if path.exists():
            group = zarr.open_group(path, mode="r+" if writer else "r")
            saved = group.attrs.asdict()
            if saved.get("format") != FORMAT:
                raise InputError(f"resume: {str(path)!r} is not a ufm sweep ({FORMAT})")
            for key in ("model", "fixed", "grid", "seeds", "solver", "check"):
                if saved.get(key) != attrs[key]:
                    raise InputError(
                        f"resume: {str(path)!r} was made with {key}={saved.get(key)}, "
                        f"not {attrs[key]}; resume with the same settings or use another path"
                    )
            return _Store(group, dims, shape, writer)
        if not path.parent.is_dir():
            raise InputError(f"out: directory {str(path.parent)!r} does not exist")
        if not writer:
            raise InputError(f"resume: {str(path)!r} does not exist")
        group = zarr.open_group(path, mode="w")
    group.attrs.update(attrs)
    for axis in axes:
        values = np.array(axis.values)
        coord = group.create_array(
            axis.coord,
            shape=values.shape,
            dtype=str if values.dtype.kind == "U" else values.dtype,
            dimension_names=[axis.coord],
        )
        coord[...] = values
        coord.attrs.update({"spacing": axis.spacing, "hyperparameter": axis.name})
    coord = group.create_array(
        "seed", shape=(len(seeds),), dtype=np.int64, dimension_names=["seed"]
    )
    coord[...] = np.array(seeds, dtype=np.int64)
    group.create_array("done", shape=shape, dtype=np.bool_, fill_value=False, dimension_names=dims)
    group["done"].attrs.update(VARIABLES["done"])
    return _Store(group, dims, shape, writer)


def open_result(path) -> xr.Dataset:
    """A saved sweep as an xarray Dataset (loaded into memory)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"result: {str(path)!r} does not exist")
    try:
        ds = xr.open_zarr(path, consolidated=False)
    except Exception as error:  # zarr raises several kinds for a non-zarr path
        raise InputError(f"result: {str(path)!r} is not a zarr store ({error})") from None
    if ds.attrs.get("format") != FORMAT:
        raise InputError(f"result: {str(path)!r} is not a ufm sweep ({FORMAT})")
    return _plain_strings(ds.load())


def _plain_strings(ds: xr.Dataset) -> xr.Dataset:
    """zarr's variable-width strings (numpy StringDType) as ordinary numpy str arrays."""
    for name in list(ds.variables):
        if ds[name].dtype.kind == "T":
            values = np.array(ds[name].values.tolist(), dtype=str)
            ds = (
                ds.assign_coords({name: values})
                if name in ds.coords
                else ds.assign({name: (ds[name].dims, values, ds[name].attrs)})
            )
    return ds


# ----------------------------------------------------------------------------------------


def sweep(
    model: str,
    fixed: dict[str, Any] | None = None,
    grid: dict[str, Sequence] | None = None,
    *,
    seeds: int | Sequence[int] = 1,
    out: str | Path | None = None,
    resume: bool = False,
    chunk_size: int = 256,
    save_every: float = 2.0,
    progress: bool | Callable[[int, int], None] = False,
    check: bool = True,
    loss_rtol: float = LOSS_RTOL,
    quantity_tol: float = QUANTITY_TOL,
    restarts: int = 1,
    method: str = "lbfgs",
    gtol: float = 1e-10,
    max_steps: int = 10_000,
    init_scale: float = 1.0,
    init_spread: float = 2.0,
    learning_rate: float = 1e-2,
    memory_size: int = 3,
    eliminate: bool = True,
) -> xr.Dataset:
    """Solve and check ``ufm.make(model, **fixed, **point)`` at every grid point and seed.

    grid: hyperparameter name -> 1-D values (``{"lambda_W": np.geomspace(1e-4, 1, 64)}``);
        the dataset has one dimension per entry, in this order, then ``seed``. A grid on a
        shape-setting parameter (K, n, d, depth, loss, ...) runs one compilation per value.
    seeds: a count (seeds 0..S-1) or a list; seed s starts as ``ufm.solve(..., seed=s)``.
    out: a zarr directory written chunk by chunk (None: kept in memory). An existing
        `out` is an error unless ``resume=True``, which checks that the settings are the
        same and solves only the points not yet saved.
    chunk_size: points (x seeds) solved per compiled call; bounds device memory. Rounded
        up to a multiple of the device count.
    save_every: seconds between writes to `out`; results are also written when the sweep
        ends or is interrupted (Ctrl-C, an error), so a hard kill loses at most this long.
    progress: True shows a progress bar (points, rate, time left) on stderr; a callable
        gets (points done, total) after every chunk.
    check: compare every point with ``ufm.theory`` (False: numerics only; the theory
        variables are empty and ``verdict`` is ``unchecked``).
    The solver options are those of `ufm.solve`; loss_rtol and quantity_tol those of
    `ufm.check`.

    Returns an xarray Dataset with, per point and seed: ``loss``, ``theory_loss``,
    ``loss_gap``, ``grad_norm``, ``steps``, ``converged``, ``status``, ``verdict``,
    ``reason``, ``regime`` (read off the solution), ``theory_regime``, ``geometry``,
    ``max_error`` and ``error_<quantity>`` for every predicted quantity, and the NC
    metrics of `ufm.metrics.summary` (``nc1``, ``nc2``, ...). Attributes record the model,
    fixed parameters, grid, solver settings and package versions. A bad model, keyword,
    grid spec or value raises a ValueError naming it before anything is solved.
    """
    if model not in REGISTRY:
        raise InputError(f"model must be one of {', '.join(map(repr, REGISTRY))}; got {model!r}")
    allowed = [h.name for h in REGISTRY[model].hypers]
    fixed, grid = dict(fixed or {}), dict(grid or {})
    for where, names in (("fixed", fixed), ("grid", grid)):
        for name in names:
            if name not in allowed:
                raise InputError(
                    f"{where}: unknown parameter {name!r} for model {model!r}; "
                    f"allowed: {', '.join(allowed)}"
                )
    if both := sorted(set(fixed) & set(grid)):
        raise InputError(f"{', '.join(both)}: given both fixed and on the grid")
    axes = []
    for name, values in grid.items():
        spacing = None
        if isinstance(values, tuple) and len(values) == 2 and isinstance(values[1], str):
            values, spacing = values  # (values, spacing) from parse_axis
        axes.append(_axis(model, name, values, spacing))
    seeds = _seeds(seeds)
    options = dict(
        method=method,
        restarts=restarts,
        max_steps=max_steps,
        memory_size=memory_size,
        gtol=gtol,
        init_scale=init_scale,
        init_spread=init_spread,
        learning_rate=learning_rate,
    )
    check_options(**options)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InputError(f"chunk_size must be an integer >= 1; got {chunk_size!r}")
    if (
        isinstance(save_every, bool)
        or not isinstance(save_every, int | float)
        or not (0 <= save_every < float("inf"))
    ):
        raise InputError(f"save_every must be a finite number of seconds >= 0; got {save_every!r}")

    # every problem is built (and so validated) before anything is solved
    shape = tuple(len(a.values) for a in axes)
    problems = {}
    for index in np.ndindex(shape):
        point = {a.name: a.values[i] for a, i in zip(axes, index, strict=True)}
        try:
            problems[index] = make(model, **fixed, **point)
        except ValueError as error:
            where = ", ".join(f"{k}={v}" for k, v in point.items())
            raise InputError(f"grid point {where}: {error}" if point else str(error)) from None

    attrs = _canonical(
        {
            "format": FORMAT,
            "model": model,
            "fixed": fixed,
            "grid": {a.name: list(a.values) for a in axes},
            "spacing": {a.name: a.spacing for a in axes},
            "seeds": seeds,
            "solver": options | {"eliminate": bool(eliminate)},
            "check": {"enabled": bool(check), "loss_rtol": loss_rtol, "quantity_tol": quantity_tol},
            "versions": _versions(),
            "dtype": str(jnp.asarray(1.0).dtype),
            "devices": [str(d) for d in jax.devices()],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    # with several processes (jax.distributed), only process 0 writes a store on disk
    writer = jax.process_index() == 0 or out is None
    store = _open_store(out, resume, axes, seeds, attrs, writer)
    done = store.done()
    jobs = [(i, s) for i in problems for s in range(len(seeds)) if not done[i + (s,)]]

    mesh = jax.make_mesh((jax.device_count(),), ("points",))
    per_device = -(-chunk_size // jax.device_count())
    dtype = next(iter(problems.values())).lambda_W.dtype  # pyright: ignore
    solver = (method, max_steps, memory_size, bool(eliminate))
    chunk = per_device * jax.device_count()
    chunks = list(_chunks(jobs, problems, chunk))
    # hyperparameter leaves as numpy, read once here (reading a jax array is slow while
    # another thread holds the GIL)
    leaves = {i: [np.asarray(x) for x in jax.tree.leaves(problems[i])] for i, _ in jobs}
    # the theory of each chunk's points is computed in a thread, overlapping compilation and
    # the devices' work (both release the GIL)
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ufm-theory")
    predict = lambda batch: {i: problems[i].theory() if check else None for i, _ in batch}
    theories = [pool.submit(predict, batch) for batch, _ in chunks]
    seed_keys = [np.asarray(restart_keys(s, restarts, 1.0, 1.0, dtype)[0]) for s in seeds]
    _, scales = restart_keys(0, restarts, init_scale, init_spread, dtype)
    total, saved = len(problems) * len(seeds), int(done.sum())
    report = _progress(progress, total, saved)

    def finish(k, future):
        nonlocal saved
        batch, result = chunks[k][0], _fetch(future)
        if writer:
            theory = theories[k].result()
            columns = _columns(batch, result, problems, theory, loss_rtol, quantity_tol)
            index = tuple(np.array(c) for c in zip(*(i + (s,) for i, s in batch), strict=True))
            store.add(index, columns, save_every)
        saved += len(batch)
        report(saved)

    began = time.perf_counter()
    try:
        pending = None
        for k, (batch, length) in enumerate(chunks):
            padded = batch + [batch[-1]] * (length - len(batch))
            treedef = jax.tree.structure(problems[batch[0][0]])
            columns = zip(*(leaves[i] for i, _ in padded), strict=True)
            stacked = jax.tree.unflatten(treedef, [np.stack(c) for c in columns])
            keys = np.stack([seed_keys[s] for _, s in padded])
            dynamic, static = eqx.partition(stacked, eqx.is_array)
            dynamic = jax.tree.map(lambda x: _global(x, mesh, PartitionSpec("points")), dynamic)
            future = _solve_chunk(
                dynamic,
                _global(keys, mesh, PartitionSpec("points")),
                _global(scales, mesh, PartitionSpec()),
                _global(np.asarray(learning_rate, dtype), mesh, PartitionSpec()),
                _global(np.asarray(gtol, dtype), mesh, PartitionSpec()),
                _Static(static),
                mesh,
                solver,
            )
            if pending is not None:
                finish(*pending)  # the host checks one chunk while the devices solve the next
            pending = (k, future)
        if pending is not None:
            finish(*pending)
        store.flush()
        if writer:  # provenance: one entry per (completed) run of this sweep
            run = {
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "solved": len(jobs),
                "seconds": round(time.perf_counter() - began, 3),
                "devices": len(jax.devices()),
            }
            store.group.attrs["runs"] = [*store.group.attrs.get("runs", []), run]
    finally:  # Ctrl-C or an error: what was computed is saved
        store.flush()
        report(None)
        pool.shutdown(cancel_futures=True)
    if jax.process_count() > 1 and out is not None:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("ufm.sweep: process 0 has written the store")
        return open_result(out)
    return _plain_strings(xr.open_zarr(store.group.store, consolidated=False).load())


def _seeds(seeds) -> list[int]:
    if isinstance(seeds, bool):
        raise InputError(f"seeds must be a count >= 1 or a list of integers; got {seeds!r}")
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise InputError(f"seeds must be a count >= 1 or a list of integers; got {seeds!r}")
        return list(range(int(seeds)))
    out = list(seeds)
    if not out or not all(isinstance(s, int | np.integer) and s >= 0 for s in out):
        raise InputError(f"seeds must be a count >= 1 or a list of integers >= 0; got {seeds!r}")
    if len(set(out)) != len(out):
        raise InputError(f"seeds repeat: {out}")
    return [int(s) for s in out]


def _chunks(jobs, problems, size: int):
    """Jobs grouped by problem structure (one compilation each), cut into chunks of at most
    `size`: yields (jobs, padded length)."""
    groups: list[tuple[Any, list]] = []
    for job in jobs:
        problem = problems[job[0]]
        key = (jax.tree.structure(problem), [x.shape for x in jax.tree.leaves(problem)])
        for k, members in groups:
            if k == key:
                members.append(job)
                break
        else:
            groups.append((key, [job]))
    devices = jax.device_count()
    for _, members in groups:
        # equal chunks of a multiple of the device count: one shape (compilation) per group,
        # the last chunk padded by at most devices - 1 points per chunk
        count = -(-len(members) // size)
        per = -(-len(members) // count)
        per = -(-per // devices) * devices
        for start in range(0, len(members), per):
            yield members[start : start + per], per


def _columns(batch, result, problems, theories, loss_rtol, quantity_tol):
    """Host side of a chunk: theory, quantity errors, verdict and regime of every point."""
    n = len(batch)
    floats = lambda: np.full(n, np.nan)
    cols: dict[str, np.ndarray] = {
        "loss": result["loss"][:n].astype(float),
        "grad_norm": result["grad_norm"][:n].astype(float),
        "steps": result["steps"][:n].astype(np.int64),
        "restarts_converged": result["restarts_converged"][:n].astype(np.int64),
        "converged": result["status"][:n] == 0,
        "status": np.array([STATUS[int(c)] for c in result["status"][:n]], dtype=object),
        "theory_loss": floats(),
        "loss_gap": floats(),
        "max_error": floats(),
    }
    for key in ("verdict", "reason", "regime", "theory_regime", "geometry"):
        cols[key] = np.empty(n, dtype=object)
    cols |= {k: v[:n].astype(float) for k, v in result["metrics"].items()}
    for j, (index, _) in enumerate(batch):
        problem = problems[index]
        theory = theories[index]
        params = {k: v[j] for k, v in result["params"].items()}
        standard = {k: v[j] for k, v in result["quantities"].items()}
        found = found_quantities(problem, params, standard)
        cols["regime"][j] = found_regime(problem, found)
        if theory is None:  # check=False
            cols["verdict"][j], cols["reason"][j] = "unchecked", "sweep(check=False)"
            cols["theory_regime"][j] = cols["geometry"][j] = ""
            continue
        errors = quantity_errors(problem, theory, params, found) if theory.applicable else {}
        converged = bool(cols["converged"][j])
        status = RESULTS._index_to_message[int(result["status"][j])]
        verdict, reason, gap = judge(
            theory, float(cols["loss"][j]), converged, status, errors, loss_rtol, quantity_tol
        )
        cols["verdict"][j], cols["reason"][j] = verdict, reason
        cols["theory_regime"][j] = theory.regime
        cols["geometry"][j] = theory.geometry or ""
        if theory.loss is not None:
            cols["theory_loss"][j] = theory.loss
            cols["loss_gap"][j] = gap
        if errors:
            cols["max_error"][j] = max(errors.values())
        for key, value in errors.items():
            name = "error_" + key.replace(".", "_")
            cols.setdefault(name, floats())[j] = value
    return {k: (v.astype(str) if v.dtype == object else v) for k, v in cols.items()}


def _progress(progress, total: int, start: int) -> Callable[[int | None], None]:
    if callable(progress):
        return lambda done: None if done is None else progress(done, total)
    if not progress:
        return lambda done: None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("points"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    task = bar.add_task("sweep", total=total, completed=start, rate="")
    bar.start()
    began, first = time.perf_counter(), start

    def update(done: int | None) -> None:
        if done is None:
            bar.stop()
            return
        elapsed = time.perf_counter() - began
        rate = f"{(done - first) / elapsed:.1f}/s" if elapsed > 0 else ""
        bar.update(task, completed=done, rate=rate)

    return update
