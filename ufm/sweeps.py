"""Phase diagrams: every point of a hyperparameter grid solved, checked and saved.

``ufm.sweep(model, fixed, grid, seeds)`` solves the problem ``ufm.make(model, **fixed,
**point)`` at every grid point and seed as one jitted computation per chunk of points:
hyperparameters are array leaves of the problem, so points that share their shapes (K, n,
d, depth, loss, ...) are stacked and vmapped, with one compilation per shape. Each chunk is
split over all visible devices (``jax.shard_map`` on a one-axis mesh; on CPU,
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` makes N devices), checked against
``ufm.theory`` point by point on the host while the next chunk runs (`_sweep_run`), and
written to a zarr store (`_sweep_store`): a hard kill loses what was not yet written (at
most `save_every` seconds of finished chunks, and the chunks in flight), SIGINT or SIGTERM
saves everything finished (`_interrupts`), and ``resume=True`` recomputes nothing that was
saved.

Seed s solves a point exactly as ``ufm.solve(problem, seed=s, restarts=R, ...)`` does (same
starts), so a sweep equals point-by-point solves up to round-off. Problems that offer a small
collapsed problem (the plain UFM over its class means, ``problem.collapsed()``) take the
Newton route by default (``solver="auto"``, `ufm._newton`): each device works through its
chunk's (point, restart) jobs with a batch of lanes running damped Newton, a lane taking the
next job as soon as its own stops, instead of a vmapped L-BFGS that runs until its slowest
point is done. Its starts are ``starts(problem.collapsed(), ...)`` with seed s's keys, its
results are judged on the full objective with the same tolerance (the stored loss, gradient
norm, status and metrics mean the same), and ``steps`` counts Newton steps there.
"""

import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
import zarr

from . import _budget
from ._interrupts import SweepInterrupted, interrupts
from ._sweep_grid import Axis, _axis, parse_axis, seed_list
from ._sweep_run import Run, agreed, check_solver, choose_route
from ._sweep_store import (
    COORD_NAMES,
    FORMAT,
    _canonical,
    open_result,
    open_store,
    plain_strings,
    repair,
    stored_order,
    versions,
)
from .check import LOSS_RTOL, QUANTITY_TOL
from .errors import InputError
from .registry import REGISTRY, make
from .solve import DEFAULT_GTOL, _number, check_options

__all__ = [
    "Axis",
    "FORMAT",
    "COORD_NAMES",
    "SweepInterrupted",
    "interrupts",
    "open_result",
    "parse_axis",
    "repair",
    "sweep",
]


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
    gtol: float = DEFAULT_GTOL,
    max_steps: int = 10_000,
    init_scale: float = 1.0,
    init_spread: float = 2.0,
    learning_rate: float = 1e-2,
    memory_size: int = 3,
    eliminate: bool = True,
    solver: str = "auto",
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
    solver: "auto": batched Newton on ``problem.collapsed()`` where every problem has one
        and method is "lbfgs" (module docstring), else as `ufm.solve`; "lbfgs" or "newton"
        force a route. The store's ``runs`` attribute records each run's route.

    Returns an xarray Dataset with, per point and seed: ``loss``, ``theory_loss``,
    ``loss_gap``, ``grad_norm``, ``steps``, ``converged``, ``status``, ``verdict``,
    ``reason``, ``regime`` (read off the solution), ``theory_regime``, ``geometry``,
    ``max_error`` and ``error_<quantity>`` for every predicted quantity, and the NC
    metrics of `ufm.metrics.summary` (``nc1``, ``nc2``, ...). Attributes record the model,
    fixed parameters, grid, solver settings and package versions. A bad model, keyword,
    grid spec or value raises a ValueError naming it before anything is solved.
    """
    fixed, axes = _validated(model, fixed, grid)
    seeds = seed_list(seeds)
    options = check_options(  # plain Python values (numpy scalars accepted), validated
        method=method,
        restarts=restarts,
        max_steps=max_steps,
        memory_size=memory_size,
        gtol=gtol,
        init_scale=init_scale,
        init_spread=init_spread,
        learning_rate=learning_rate,
    )
    chunk_size, save_every = _pace(chunk_size, save_every)
    _budget.check_sweep(model, fixed, axes, seeds, chunk_size, options | {"eliminate": eliminate})
    checks = {"enabled": bool(check), "loss_rtol": loss_rtol, "quantity_tol": quantity_tol}
    pace = (chunk_size, save_every, progress)
    solving = (options, eliminate, check_solver(solver))
    store = _solve_all(model, fixed, axes, seeds, out, resume, solving, checks, pace)
    if jax.process_count() > 1 and out is not None:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("ufm.sweep: process 0 has written the store")
        return open_result(out)
    return plain_strings(xr.open_zarr(store.group.store, consolidated=False).load())


def _validated(model: str, fixed, grid) -> tuple[dict[str, Any], list[Axis]]:
    """(fixed, the grid's axes) with every model, name and value checked."""
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
    return fixed, axes


def _pace(chunk_size, save_every) -> tuple[int, float]:
    """(chunk_size, save_every), checked."""
    given = chunk_size, save_every
    chunk_size, save_every = (
        _number("chunk_size", chunk_size, int),
        _number("save_every", save_every, float),
    )
    if chunk_size < 1:
        raise InputError(f"chunk_size must be an integer >= 1; got {given[0]!r}")
    if not 0 <= save_every < float("inf"):
        raise InputError(f"save_every must be a finite number of seconds >= 0; got {given[1]!r}")
    return chunk_size, save_every


def _solve_all(model, fixed, axes, seeds, out, resume, solving, checks, pace):
    """Build every problem, open the store and solve the points it lacks (all of them
    without `resume`) with `solving` = (solver options, eliminate, the `solver` option);
    returns the store. A signal (SIGINT, SIGTERM) saves what is finished and raises
    SweepInterrupted."""
    total = int(np.prod([len(a.values) for a in axes])) * len(seeds)
    # with several processes (jax.distributed), only process 0 writes a store on disk
    writer = jax.process_index() == 0 or out is None
    store = run = None
    with interrupts() as guard:
        try:
            # a resumed grid takes the store's order of dimensions: every point in its cell
            order = stored_order(out, resume, [a.name for a in axes])
            axes.sort(key=lambda a: order.index(a.name))
            problems = _problems(model, fixed, axes)  # all built (and so validated) first
            options, eliminate, solver = solving
            route = choose_route(solver, options["method"], eliminate, problems)
            solver = options | {"eliminate": bool(eliminate)}
            attrs = _attrs(model, fixed, axes, seeds, solver, checks)
            if agreed(guard.requested):  # a signal before anything was solved: nothing made
                raise KeyboardInterrupt
            store = open_store(out, resume, axes, seeds, attrs, writer, guard)
            run = Run(problems, seeds, store, options, eliminate, checks["enabled"], guard, route)
            chunk_size, save_every, progress = pace
            run.solve(chunk_size, save_every, progress, checks["loss_rtol"], checks["quantity_tol"])
        except KeyboardInterrupt:
            raise _interrupted(guard, out, store, total, run.saved if run else 0) from None
    return store


def _problems(model: str, fixed: dict, axes: list[Axis]) -> dict:
    problems = {}
    for index in np.ndindex(tuple(len(a.values) for a in axes)):
        point = {a.name: a.values[i] for a, i in zip(axes, index, strict=True)}
        try:
            problems[index] = make(model, **fixed, **point)
        except ValueError as error:
            where = ", ".join(f"{k}={v}" for k, v in point.items())
            raise InputError(f"grid point {where}: {error}" if point else str(error)) from None
    return problems


def _attrs(model, fixed: dict, axes: list[Axis], seeds: list[int], solver: dict, check) -> dict:
    return _canonical(
        {
            "format": FORMAT,
            "model": model,
            "fixed": fixed,
            "grid": {a.name: list(a.values) for a in axes},
            "spacing": {a.name: a.spacing for a in axes},
            "seeds": seeds,
            "solver": solver,
            "check": check,
            "versions": versions(),
            "dtype": str(jnp.asarray(1.0).dtype),
            "devices": [str(d) for d in jax.devices()],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )


def _interrupted(guard, out, store, total: int, counted: int) -> SweepInterrupted:
    signum, forced = guard.signum or signal.SIGINT, guard.forced
    if out is None or store is None:
        stored = out is not None and Path(out).exists()
        saved = 0
        if stored:
            try:
                saved = int(np.sum(zarr.open_group(Path(out), mode="r")["done"][...]))
            except Exception:  # not a store (a new sweep is refused there anyway)
                stored = False
        return SweepInterrupted(signum, saved, total, out, stored, forced)
    saved = int(store.saved.sum()) if store.writer else counted
    return SweepInterrupted(signum, saved, total, out, True, forced)
