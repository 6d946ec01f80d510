"""The solve loop of `ufm.sweep`: chunks of stacked problems solved on every device while
the host checks the previous chunk against the theory, saved as they finish."""

import concurrent.futures
import functools
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from . import _newton, metrics
from ._solution import RESULTS
from .check import (
    class_mean_quantities,
    found_quantities,
    found_regime,
    judge,
    quantity_errors,
)
from .errors import InputError
from .solve import problem_dtype, restart_keys, solve_starts, starts

STATUS = {i: name for i, name in enumerate(RESULTS._name_to_item)}  # code -> RESULTS name
SOLVERS = ("auto", "newton", "lbfgs")  # the sweep's `solver` option
NEWTON_UNKNOWNS = 256  # largest collapsed problem (unknowns) the Newton route takes
NEWTON_LANES = 64  # problems one device's Newton queue works on at a time


def check_solver(solver) -> str:
    """The sweep's `solver` option, checked by name (InputError otherwise)."""
    if not isinstance(solver, str) or solver not in SOLVERS:
        raise InputError(f"solver must be one of {', '.join(map(repr, SOLVERS))}; got {solver!r}")
    return solver


def choose_route(solver: str, method: str, eliminate: bool, problems) -> str:
    """The sweep's route: "newton" (`ufm._newton`: batched damped Newton on
    ``problem.collapsed()``) or "lbfgs" (vmapped `ufm.solve.solve_starts`). solver="auto"
    takes Newton when the method is the default L-BFGS, every problem offers a collapsed
    problem of at most NEWTON_UNKNOWNS unknowns without bounds, and L-BFGS would not run
    with the features eliminated (MSE: variable projection makes each L-BFGS step so cheap
    that the vmapped L-BFGS was ~1.8x faster than Newton on the 64 x 64 plain MSE sweep,
    while on CE Newton was ~4.7x faster); solver="newton" insists (InputError where it
    cannot)."""
    if solver == "lbfgs":
        return "lbfgs"
    why = None
    shapes = {_shape(problem): problem for problem in problems.values()}  # one per shape
    if method != "lbfgs":
        why = f"method={method!r} (the Newton route replaces the default L-BFGS only)"
    else:
        why = next(filter(None, map(_newton_refusal, shapes.values())), None)
    if why is not None and solver == "newton":
        raise InputError(f"solver='newton' cannot solve this sweep: {why}; use solver='auto'")
    if why is not None or (solver == "auto" and eliminate and _eliminable(shapes.values())):
        return "lbfgs"
    return "newton"


def _eliminable(problems) -> bool:
    """Whether L-BFGS runs with the features eliminated on any of `problems` (a closed-form
    `optimal_features`, decided from shapes alone)."""
    key, scale, found = jax.random.PRNGKey(0), jnp.asarray(1.0), []

    def probe(problem):  # traced: None or not is known without computing anything
        found.append(problem.optimal_features(problem.init(key, scale)) is not None)
        return scale

    for problem in problems:
        jax.eval_shape(probe, problem)
    return any(found)


def _newton_refusal(problem) -> str | None:
    """Why the Newton route cannot take `problem` (None: it can)."""
    collapsed = problem.collapsed() if hasattr(problem, "collapsed") else None
    if collapsed is None or problem.nonnegative() or collapsed.nonnegative():
        return f"{type(problem).__name__} offers no unconstrained collapsed problem"
    shapes = jax.eval_shape(collapsed.init, jax.random.PRNGKey(0), jnp.asarray(1.0))
    unknowns = sum(x.size for x in jax.tree.leaves(shapes))
    if unknowns > NEWTON_UNKNOWNS:
        return f"its collapsed problem has {unknowns} unknowns (at most {NEWTON_UNKNOWNS})"
    return None


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


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _solve_chunk_newton(dynamic, keys, scales, gtol, static, mesh, options):
    """`_solve_chunk` on the Newton route: each device works through its points' restarts
    as one queue (`ufm._newton.solve_points`); options = (lanes, max_steps)."""
    static = static.tree
    spec, replicated = PartitionSpec("points"), PartitionSpec()

    def local(dynamic, keys, scales, gtol):
        problem_at = lambda dyn: eqx.combine(dyn, static)
        sols, _ = _newton.solve_points(problem_at, dynamic, keys, scales, gtol, *options)
        found = jax.lax.map(lambda ds: _found(problem_at(ds[0]), ds[1]), (dynamic, sols["params"]))
        return sols | {"metrics": found[0], "quantities": found[1]}

    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(spec, spec, replicated, replicated),
        out_specs=spec,
        check_vma=False,
    )(dynamic, keys, scales, gtol)


def _found(problem, params):
    """NC metrics and class-mean quantities of one solution (`ufm.check` computes the same)."""
    labels = problem.labels
    K = int(labels.max()) + 1
    W, H, b = problem.classifier(params), problem.feature_columns(params), params.get("b")
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


def agreed(flag: bool) -> bool:
    """True if any process says so (every process stops at the same chunk)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.array([flag]))))


class Run:
    """The solve loop: chunks dispatched to the devices and checked on the host while the next
    one runs, saved as they finish; a signal stops it between chunks (`Guard`)."""

    def __init__(self, problems, seeds, store, options, eliminate, check, guard, route="lbfgs"):
        self.problems, self.seeds, self.store, self.guard = problems, seeds, store, guard
        self.options, self.check, self.route = options, check, route
        self.solver = (options["method"], options["max_steps"], options["memory_size"])
        self.solver += (bool(eliminate),)
        if route == "newton":
            self.solver = (NEWTON_LANES, options["max_steps"])
        self.dtype = problem_dtype(next(iter(problems.values())))
        self.mesh = jax.make_mesh((jax.device_count(),), ("points",))
        restarts = options["restarts"]
        self.seed_keys = [
            np.asarray(restart_keys(s, restarts, 1.0, 1.0, self.dtype)[0]) for s in seeds
        ]
        scale, spread = options["init_scale"], options["init_spread"]
        self.scales = restart_keys(0, restarts, scale, spread, self.dtype)[1]
        done = store.done()
        self.jobs = [(i, s) for i in problems for s in range(len(seeds)) if not done[i + (s,)]]
        self.saved = int(done.sum())

    def solve(self, chunk_size, save_every, progress, loss_rtol, quantity_tol) -> None:
        problems, guard, store = self.problems, self.guard, self.store
        per_device = -(-chunk_size // jax.device_count())
        self.chunks = list(_chunks(self.jobs, problems, per_device * jax.device_count()))
        self.compiles, seen = set(), set()  # the chunks that start a new compilation
        for k, (batch, n) in enumerate(self.chunks):
            shape = _shape(problems[batch[0][0]]) + (n,)
            self.compiles |= {k} if k and shape not in seen else set()
            seen.add(shape)
        # hyperparameter leaves as numpy, read once here (reading a jax array is slow while
        # another thread holds the GIL)
        self.leaves = {
            i: [np.asarray(x) for x in jax.tree.leaves(problems[i])] for i, _ in self.jobs
        }
        # the theory of each chunk's points is computed in a thread, overlapping compilation
        # and the devices' work (both release the GIL)
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ufm-theory")
        check = self.check
        predict = lambda batch: {i: problems[i].theory() if check else None for i, _ in batch}
        theories = [pool.submit(predict, batch) for batch, _ in self.chunks]
        report = _progress(progress, len(problems) * len(self.seeds), self.saved)
        tolerances = (loss_rtol, quantity_tol)

        def finish(k, future):
            batch = self.chunks[k][0]
            # while the devices (or the theory) work: write what is due (all once signalled)
            due = lambda: store.flush_if_due(0.0 if guard.requested else save_every)
            guard.wait(jax.tree.leaves(future), due)
            result = _fetch(future)
            if store.writer:
                theory = guard.result(theories[k], due)
                columns = _columns(batch, result, self.on_host(batch), theory, *tolerances)
                index = tuple(np.array(c) for c in zip(*(i + (s,) for i, s in batch), strict=True))
                store.add(index, columns, save_every)
            self.saved += len(batch)
            report(self.saved)

        began = time.perf_counter()
        try:
            pending, stopped = None, False
            for k in range(len(self.chunks)):
                if stopped := agreed(guard.requested):
                    break
                if k in self.compiles:
                    store.flush()  # nothing finished waits while a new shape compiles
                future = self.dispatch(k)
                if pending is not None:
                    finish(*pending)  # the host checks one chunk while the devices solve the next
                pending = (k, future)
            if pending is not None:
                if stopped:
                    store.flush()  # what is finished is safe before the wait for the last chunk
                finish(*pending)  # the chunk in flight when a first signal came is kept
            if stopped:
                raise KeyboardInterrupt
            store.flush()
            self.record(time.perf_counter() - began)
        finally:  # a signal or an error: what was computed is saved
            with guard.critical():
                store.flush()
                report(None)
                pool.shutdown(cancel_futures=True)

    def on_host(self, batch) -> dict:
        """The batch's problems with numpy leaves: the host's checks (certificate, regime)
        then compute in numpy, not in eager jax (about 6x faster per point)."""
        problems = self.problems
        return {
            i: jax.tree.unflatten(jax.tree.structure(problems[i]), self.leaves[i]) for i, _ in batch
        }

    def dispatch(self, k: int):
        """Start chunk k on the devices (asynchronous: returns at once after compiling)."""
        batch, length = self.chunks[k]
        padded = batch + [batch[-1]] * (length - len(batch))
        treedef = jax.tree.structure(self.problems[batch[0][0]])
        columns = zip(*(self.leaves[i] for i, _ in padded), strict=True)
        stacked = jax.tree.unflatten(treedef, [np.stack(c) for c in columns])
        dtype, mesh, options = self.dtype, self.mesh, self.options
        keys = np.stack([self.seed_keys[s] for _, s in padded])
        dynamic, static = eqx.partition(stacked, eqx.is_array)
        points, replicated = PartitionSpec("points"), PartitionSpec()
        if self.route == "newton":
            return _solve_chunk_newton(
                jax.tree.map(lambda x: _global(x, mesh, points), dynamic),
                _global(keys, mesh, points),
                _global(self.scales, mesh, replicated),
                _global(np.asarray(options["gtol"], dtype), mesh, replicated),
                _Static(static),
                mesh,
                self.solver,
            )
        return _solve_chunk(
            jax.tree.map(lambda x: _global(x, mesh, points), dynamic),
            _global(keys, mesh, points),
            _global(self.scales, mesh, replicated),
            _global(np.asarray(options["learning_rate"], dtype), mesh, replicated),
            _global(np.asarray(options["gtol"], dtype), mesh, replicated),
            _Static(static),
            mesh,
            self.solver,
        )

    def record(self, seconds: float) -> None:
        """Provenance: one entry per (completed) run of this sweep."""
        if self.store.writer:
            run = {
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "solved": len(self.jobs),
                "seconds": round(seconds, 3),
                "devices": len(jax.devices()),
                "route": self.route,
            }
            with self.guard.critical():
                attrs = self.store.group.attrs
                attrs["runs"] = [*attrs.get("runs", []), run]


def _shape(problem) -> tuple:
    """What one compilation serves: the problem's structure and array shapes."""
    return (jax.tree.structure(problem), tuple(x.shape for x in jax.tree.leaves(problem)))


def _chunks(jobs, problems, size: int):
    """Jobs grouped by problem structure (one compilation each), cut into chunks of at most
    `size`: yields (jobs, padded length)."""
    groups: list[tuple[Any, list]] = []
    for job in jobs:
        key = _shape(problems[job[0]])
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
        "certificate_gap": floats(),  # NaN: the model has no certificate
        "grad_op_over_mu": floats(),
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
        certificate = problem.certificate(params, float(cols["loss"][j]))
        if certificate is not None:
            cols["certificate_gap"][j] = certificate["gap"]
            cols["grad_op_over_mu"][j] = certificate["grad_op_over_mu"]
        if theory is None:  # check=False
            cols["verdict"][j], cols["reason"][j] = "unchecked", "sweep(check=False)"
            cols["theory_regime"][j] = cols["geometry"][j] = ""
            continue
        errors = quantity_errors(problem, theory, params, found) if theory.applicable else {}
        converged = bool(cols["converged"][j])
        status = RESULTS._index_to_message[int(result["status"][j])]
        verdict, reason, gap = judge(
            theory,
            float(cols["loss"][j]),
            converged,
            status,
            errors,
            loss_rtol,
            quantity_tol,
            certificate,
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


def _progress(
    progress, total: int, start: int, label: str = "sweep", unit: str = "points"
) -> Callable[[int | None], None]:
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
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    task = bar.add_task(label, total=total, completed=start, rate="")
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
