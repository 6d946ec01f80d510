"""The zarr store of a sweep: made whole or not at all, checked before it is resumed or read.

- A new store is built in a hidden sibling directory and renamed into place, so `out` is
  either absent or a complete, resumable store.
- Every variable is shaped (grid..., seed); a chunk's variables are written before its
  `done` flags. Chunks are written even when they hold only fill values (stores made since
  attribute ``chunks_complete``), so a chunk file missing under a saved point is damage.
- `--resume` matches the grid by name and values (another order is reordered to the stored
  one), the seeds, the fixed parameters with the model's defaults filled in on both sides,
  the solver and check settings and the precision; `--resume` and `open_result` refuse a
  store with a missing or unreadable chunk file, naming it. `repair` marks the points of
  damaged chunks unsolved, so that `--resume` solves them again.
"""

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import jax
import numpy as np
import xarray as xr
import zarr

from ._solution import RESULTS
from .errors import InputError
from .registry import REGISTRY

FORMAT = "ufm-sweep/1"
COMPLETE = "chunks_complete"  # attribute: every chunk is written, fill values included
# hyperparameter names that would clash with result variables get a coordinate name
COORD_NAMES = {"loss": "loss_type"}
# variables never at their fill value at a saved point: a missing chunk under a saved
# point is damage even in stores made before COMPLETE
ALWAYS_SET = ("steps", "restarts_converged", "status", "verdict", "reason", "regime")
FULL = {"write_empty_chunks": True}

VARIABLES = {
    "loss": {"long_name": "loss of the best converged seed-restart (the problem's objective)"},
    "theory_loss": {"long_name": "predicted global minimum (ufm.theory), NaN if not applicable"},
    "loss_gap": {"long_name": "(loss - theory_loss) / |theory_loss|"},
    "grad_norm": {
        "long_name": "gradient norm of the full objective at the solution (projected "
        "where the model has nonnegative parameters: entries at 0 pushed below 0 left out)"
    },
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


class Store:
    """Finished chunks are buffered and written once the oldest is `save_every` seconds old
    (zarr's per-write cost, ~2 ms per variable, would otherwise dominate small problems):
    checked when a chunk is added and while the sweep waits for the devices
    (`flush_if_due`), and written on every exit. Writes run in `guard.critical()`: a forced
    stop never cuts one short."""

    clock = staticmethod(time.perf_counter)

    def __init__(self, group, dims, shape, writer: bool, guard):
        self.group, self.dims, self.shape, self.writer, self.guard = (
            group,
            dims,
            shape,
            writer,
            guard,
        )
        self.buffer: list[tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]] = []
        self.oldest = 0.0  # when the first buffered chunk was added
        self.arrays: dict[str, zarr.Array] = {}
        self.saved = self._read_done()

    def _read_done(self) -> np.ndarray:
        if self.group is None:  # another process creates the store
            return np.zeros(self.shape, dtype=bool)
        return np.asarray(self.group["done"][...], dtype=bool)

    def done(self) -> np.ndarray:
        return self.saved.copy()

    def add(self, index, columns, save_every: float) -> None:
        if not self.buffer:
            self.oldest = self.clock()
        self.buffer.append((index, columns))
        self.flush_if_due(save_every)

    def flush_if_due(self, save_every: float) -> None:
        if self.buffer and self.clock() - self.oldest >= save_every:
            self.flush()

    def flush(self) -> None:
        with self.guard.critical():
            if self.buffer:
                index = tuple(
                    np.concatenate(c) for c in zip(*(i for i, _ in self.buffer), strict=True)
                )
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

    def write(self, index: tuple[np.ndarray, ...], columns: dict[str, np.ndarray]) -> None:
        if not self.writer:
            return
        for name, values in columns.items():
            self._array(name, values.dtype).vindex[index] = values
        self._array("done", np.dtype(bool)).vindex[index] = np.ones(len(index[0]), dtype=bool)
        self.saved[index] = True

    def _array(self, name: str, dtype) -> zarr.Array:
        if name not in self.arrays:
            if name not in self.group:
                self._create(name, dtype)
            self.arrays[name] = self.group[name].with_config(FULL)
        return self.arrays[name]

    def _create(self, name: str, dtype) -> None:
        if dtype.kind == "f":
            dtype, fill = np.float64, np.nan
        elif dtype.kind in "iu":
            dtype, fill = np.int64, -1
        elif dtype.kind == "b":
            dtype, fill = np.bool_, False
        else:
            dtype, fill = str, ""
        array = self.group.create_array(
            name, shape=self.shape, dtype=dtype, fill_value=fill, dimension_names=self.dims
        )
        array.attrs.update(VARIABLES.get(name, {}))
        # points saved before this variable existed: their chunks are written (fill values),
        # so that a missing chunk under a saved point always means damage
        array = array.with_config(FULL)
        for _, region, _ in _covering(self.saved, array.chunks):
            shape = tuple(s.stop - s.start for s in region)
            array[region] = np.full(shape, fill, dtype=object if dtype is str else dtype)


def _covering(done: np.ndarray, chunks: tuple[int, ...]):
    """(chunk coordinates, region, saved points) of every chunk that holds a saved point."""
    grid = tuple(-(-s // c) for s, c in zip(done.shape, chunks, strict=True))
    padded = np.zeros(tuple(g * c for g, c in zip(grid, chunks, strict=True)), dtype=np.int64)
    padded[tuple(slice(0, s) for s in done.shape)] = done
    shape = [x for g, c in zip(grid, chunks, strict=True) for x in (g, c)]
    counts = padded.reshape(shape).sum(axis=tuple(range(1, 2 * len(grid), 2)))
    for coords in zip(*np.nonzero(counts), strict=True):
        region = tuple(
            slice(int(i) * c, min((int(i) + 1) * c, s))
            for i, c, s in zip(coords, chunks, done.shape, strict=True)
        )
        yield tuple(int(i) for i in coords), region, int(counts[coords])


def versions(packages=("ufm", "jax", "jaxlib", "optax", "equinox", "numpy", "xarray", "zarr")):
    """{package: installed version} for a store's attributes."""
    out = {}
    for package in packages:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "unknown"
    return out


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


# ----------------------------------------------------------------------------------------
# Opening: a new store is made whole; an existing one is checked before it is resumed.


def open_store(out, resume: bool, axes, seeds, attrs: dict, writer: bool, guard) -> Store:
    dims = [a.coord for a in axes] + ["seed"]
    shape = tuple(len(a.values) for a in axes) + (len(seeds),)
    if out is None:
        group = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
        _fill(group, axes, seeds, attrs, dims, shape)
        return Store(group, dims, shape, writer, guard)
    if not writer and not resume:  # process 0 creates it; every process starts from zero
        return Store(None, dims, shape, writer, guard)
    path = Path(out)
    if path.exists() and not resume:
        raise InputError(
            f"out: {str(path)!r} exists; pass resume=True (--resume) to continue it, "
            "or choose another path"
        )
    if path.exists():
        group = zarr.open_group(path, mode="r+" if writer else "r")
        check_resumable(path, group, attrs, axes)
        return Store(group, dims, shape, writer, guard)
    if not path.parent.is_dir():
        raise InputError(f"out: directory {str(path.parent)!r} does not exist")
    if not writer:
        raise InputError(f"resume: {str(path)!r} does not exist")
    return Store(
        _create_whole(path, axes, seeds, attrs, dims, shape, guard), dims, shape, True, guard
    )


def _create_whole(path: Path, axes, seeds, attrs, dims, shape, guard) -> zarr.Group:
    return create_whole(path, lambda group: _fill(group, axes, seeds, attrs, dims, shape), guard)


def create_whole(path: Path, fill, guard) -> zarr.Group:
    """Build a store beside `path` with `fill(group)` and rename it into place: all of it
    or nothing."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    with guard.critical():
        try:
            fill(zarr.open_group(partial, mode="w"))
            if path.exists():
                raise InputError(f"out: {str(path)!r} was created by another process meanwhile")
            os.rename(partial, path)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return zarr.open_group(path, mode="r+")


def _fill(group, axes, seeds, attrs, dims, shape) -> None:
    group.attrs.update(attrs | {COMPLETE: True})
    coords = [
        (a.coord, np.array(a.values), {"spacing": a.spacing, "hyperparameter": a.name})
        for a in axes
    ]
    coords.append(("seed", np.array(seeds, dtype=np.int64), {}))
    for name, values, extra in coords:
        array = group.create_array(
            name,
            shape=values.shape,
            dtype=str if values.dtype.kind == "U" else values.dtype,
            dimension_names=[name],
            config=FULL,
        )
        array[...] = values
        array.attrs.update(extra)
    done = group.create_array(
        "done", shape=shape, dtype=np.bool_, fill_value=False, dimension_names=dims
    )
    done.attrs.update(VARIABLES["done"])


def stored_order(out, resume: bool, names: list[str]) -> list[str]:
    """The grid's names in the order of an existing store that `resume` continues (if it
    has the same names; otherwise `check_resumable` says what differs)."""
    if out is None or not resume or not Path(out).exists():
        return names
    try:
        stored = list(zarr.open_group(Path(out), mode="r").attrs.get("grid", {}))
    except Exception:  # not a store: check_resumable says so
        return names
    return stored if sorted(stored) == sorted(names) else names


def check_resumable(path: Path, group, attrs: dict, axes) -> None:
    saved = group.attrs.asdict()
    where = f"resume: {str(path)!r}"
    if saved.get("format") != FORMAT or "done" not in group:
        raise InputError(
            f"{where} is not a complete ufm sweep ({FORMAT}; it may be a store left half-made "
            "by an interrupted run of an older ufm); delete it or choose another path"
        )
    advice = "resume with the same settings or use another path"
    for key in ("model", "seeds", "solver", "check"):
        if saved.get(key) != attrs[key]:
            raise InputError(
                f"{where} was made with {key}={saved.get(key)}, not {attrs[key]}; {advice}"
            )
    _check_grid(where, saved.get("grid", {}), attrs["grid"], advice)
    _check_fixed(where, attrs["model"], saved.get("fixed", {}), attrs["fixed"], axes, advice)
    if saved.get("dtype", attrs["dtype"]) != attrs["dtype"]:
        raise InputError(
            f"{where} holds {saved['dtype']} results and this run computes in {attrs['dtype']}; "
            "resume in the same precision (float64: jax.config.update('jax_enable_x64', True), "
            "as the ufm command does) or use another path"
        )
    raise_if_damaged(group, path, "resume", decode=True)


def _check_grid(where: str, stored: dict, asked: dict, advice: str) -> None:
    if list(stored) != list(asked):  # asked is in the stored order when the names agree
        raise InputError(
            f"{where} was made with grid dimensions {', '.join(stored) or 'none'}, not "
            f"{', '.join(asked) or 'none'}; {advice}"
        )
    for name, values in asked.items():
        if stored[name] != values:
            raise InputError(
                f"{where} was made with grid={ {name: stored[name]} }, not { {name: values} }: "
                f"the values of {name} differ; {advice}"
            )


def _check_fixed(where, model, stored: dict, asked: dict, axes, advice) -> None:
    """Equal once the model's defaults are filled in on both sides (``--lambda-b 0`` is the
    default, so it resumes a store made without it)."""
    gridded = {a.name for a in axes}
    defaults = {h.name: h.default for h in REGISTRY[model].hypers if h.name not in gridded}
    full = lambda fixed: _canonical(defaults | dict(fixed))
    a, b = full(stored), full(asked)
    if differ := [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]:
        was = ", ".join(f"{k}={a.get(k)!r}" for k in differ)
        now = ", ".join(f"{k}={b.get(k)!r}" for k in differ)
        raise InputError(f"{where} was made with {was}, not {now}; {advice}")


# ----------------------------------------------------------------------------------------
# Damage: chunk files that are missing under saved points, or that cannot be decoded.


@dataclasses.dataclass
class Damage:
    name: str  # the variable
    chunk: tuple[int, ...]
    region: tuple[slice, ...]
    file: Path
    why: str  # "missing" or the decode error


def damage(group, root: Path, decode: bool) -> list[Damage]:
    """Every damaged chunk file of a store on disk. `decode` reads every chunk (else only
    `done` is read and files are checked to exist)."""
    found = _unreadable(group, root, "done")
    if found:
        return found
    done = np.asarray(group["done"][...], dtype=bool)
    complete = bool(group.attrs.get(COMPLETE, False))
    for name, array in group.arrays():
        if name == "done":
            continue
        if array.shape == done.shape and array.ndim == done.ndim:
            if complete or name in ALWAYS_SET:
                found += _missing(array, root, name, done)
        elif complete:  # a coordinate: written whole when the store was made
            found += _missing(array, root, name, np.ones(array.shape, dtype=bool))
        if decode:
            found += _unreadable(group, root, name)
    return found


def _file(array, root: Path, name: str, chunk) -> Path:
    return root / name / array.metadata.encode_chunk_key(chunk)


def _missing(array, root, name, done) -> list[Damage]:
    return [
        Damage(name, chunk, region, path, f"missing ({count} saved points lie in it)")
        for chunk, region, count in _covering(done, array.chunks)
        if not (path := _file(array, root, name, chunk)).is_file()
    ]


def _unreadable(group, root, name) -> list[Damage]:
    array = group[name]
    try:
        array[...]
        return []
    except Exception:  # find the chunk files that fail
        pass
    found = []
    everything = np.ones(array.shape, dtype=bool)
    for chunk, region, _ in _covering(everything, array.chunks):
        try:
            array[region]
        except Exception as error:
            why = f"unreadable ({type(error).__name__}: {error})"
            found.append(Damage(name, chunk, region, _file(array, root, name, chunk), why))
    return found


def raise_if_damaged(group, root: Path, what: str, decode: bool) -> None:
    found = damage(group, root, decode)
    if not found:
        return
    listed = "; ".join(f"{d.file} is {d.why}" for d in found[:4])
    more = f" (and {len(found) - 4} more)" if len(found) > 4 else ""
    raise InputError(
        f"{what}: {str(root)!r} is damaged: {listed}{more}. The saved points in those chunks "
        f"are lost. Run `ufm repair {root}` (ufm.sweeps.repair) to "
        "mark them unsolved, then the same sweep with --resume (resume=True) solves them "
        "again; or delete the store and start over"
    )


def repair(path) -> list[Damage]:
    """Mark the points of every missing or unreadable chunk file unsolved, so that
    ``resume=True`` solves them again: unreadable files are deleted (an unreadable `done`
    chunk so marks all its points), coordinates are rewritten from the store's attributes.
    Returns the damage found (empty: the store was whole)."""
    path = Path(path)
    group = zarr.open_group(path, mode="r+")
    saved = group.attrs.asdict()
    if saved.get("format") != FORMAT or "done" not in group:
        raise InputError(f"repair: {str(path)!r} is not a ufm sweep ({FORMAT})")
    found = damage(group, path, decode=True)
    for d in found:
        if not d.why.startswith("missing"):
            d.file.unlink(missing_ok=True)
    done = np.asarray(group["done"][...], dtype=bool)
    coords = {COORD_NAMES.get(k, k): v for k, v in saved.get("grid", {}).items()}
    coords["seed"] = saved.get("seeds", [])
    for d in found:
        if d.name in coords:
            group[d.name].with_config(FULL)[...] = np.array(coords[d.name])
        elif d.name != "done":
            done[d.region] = False
    group["done"][...] = done
    return found


def open_result(path) -> xr.Dataset:
    """A saved sweep as an xarray Dataset (loaded into memory). A store with a missing or
    unreadable chunk file raises an InputError naming the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"result: {str(path)!r} does not exist")
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as error:  # zarr raises several kinds for a non-zarr path
        raise InputError(f"result: {str(path)!r} is not a zarr store ({error})") from None
    if group.attrs.get("format") != FORMAT or "done" not in group:
        raise InputError(f"result: {str(path)!r} is not a ufm sweep ({FORMAT})")
    raise_if_damaged(group, path, "result", decode=False)
    try:
        ds = xr.open_zarr(path, consolidated=False).load()
    except Exception:  # a chunk that cannot be decoded: name it
        raise_if_damaged(group, path, "result", decode=True)
        raise
    return plain_strings(ds)


def plain_strings(ds: xr.Dataset) -> xr.Dataset:
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
