"""The one solver loop for every model: an optax update inside a `lax.while_loop`.

It stops when the gradient of the full objective is small relative to the problem's scale
(`tolerance`: converged), at max_steps, when the loss turns non-finite, or when the
optimizer stops moving. Restarts are a vmapped axis of PRNG keys; the best converged
restart is returned with every restart's loss.
"""

import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu

from . import _bounds, _budget, _progress
from ._solution import RESULTS, Solution
from .errors import InputError, PrecisionWarning
from .problem import AbstractProblem

METHODS = ("lbfgs", "adam", "sgd")


def _optimizer(
    method: str, learning_rate, memory_size: int
) -> optax.GradientTransformationExtraArgs:
    if method == "lbfgs":
        return optax.lbfgs(memory_size=memory_size)
    if method == "adam":
        return optax.with_extra_args_support(optax.adam(learning_rate))
    return optax.with_extra_args_support(optax.sgd(learning_rate, momentum=0.9))


def tolerance(problem, params, gtol):
    """The gradient norm below which `params` counts as converged:

        gtol * weight_decay * max(||params||, 1)

    (``problem.weight_decay()``: the smallest curvature the penalties give the objective,
    the smallest lambda for most models; ||params||: the Frobenius norm of all unknowns).
    A penalty lambda/2 ||x||^2 gives curvature >= lambda, so a point whose gradient meets
    this is within about gtol * max(||x||, 1) of a critical point: gtol is a relative
    distance, the same test at lambda = 1e-12 as at 1e3 (an absolute test would pass at the
    start when every gradient is of order lambda, and never when lambda is large).
    """
    size = jnp.maximum(otu.tree_norm(params), 1.0)
    return gtol * problem.weight_decay().astype(size.dtype) * size


STALL_STEPS = 20  # L-BFGS steps in a row without a lower loss: stalled


def minimize(
    fun, params, optimizer, tol, max_steps: int, *, linesearch: bool, progress: bool = False
):
    """Run `optimizer` on `fun` from `params` until ||grad|| <= tol(params).

    `linesearch`: the optimizer keeps the value and gradient at the new point in its state
    (optax's L-BFGS), so they are reused instead of recomputed. `progress`: every step
    reports (step, loss, gradient norm, tolerance) to the host (`_progress.report`).
    Returns (params, value, grad_norm, steps, result).
    """
    value, grad = jax.value_and_grad(fun)(params)
    if linesearch:
        value_and_grad = optax.value_and_grad_from_state(fun)
    else:
        value_and_grad = lambda params, state: jax.value_and_grad(fun)(params)

    def cond(carry):
        params, _, value, grad, step, moved, _ = carry
        small = otu.tree_norm(grad) <= tol(params)
        return (step < max_steps) & ~small & jnp.isfinite(value) & moved

    def body(carry):
        params, state, previous, grad, step, _, stuck = carry
        # optax mixes int32 step counts with floats; it is not clean under strict promotion.
        with jax.numpy_dtype_promotion("standard"):
            updates, state = optimizer.update(
                grad, state, params, value=previous, grad=grad, value_fn=fun
            )
            params = optax.apply_updates(params, updates)
            value, grad = value_and_grad(params, state=state)
        if progress:
            jax.debug.callback(_progress.report, step + 1, value, otu.tree_norm(grad), tol(params))
        # a line search accepts only decreases: STALL_STEPS steps without one mean rounding
        # has the last word (the gradient is at the precision's floor); other methods may
        # go up and down on their way
        stuck = jnp.where(value < previous, 0, stuck + 1) if linesearch else stuck
        moved = (otu.tree_norm(updates) > 0) & (stuck < STALL_STEPS)
        return params, state, value, grad, step + 1, moved, stuck

    with jax.numpy_dtype_promotion("standard"):
        state = optimizer.init(params)
    zero = jnp.asarray(0)
    carry = (params, state, value, grad, zero, jnp.asarray(True), zero)
    params, _, value, grad, steps, moved, _ = jax.lax.while_loop(cond, body, carry)
    grad_norm = otu.tree_norm(grad)
    result = RESULTS.where(
        grad_norm <= tol(params),
        RESULTS.successful,
        RESULTS.where(
            ~jnp.isfinite(value),
            RESULTS.nonfinite,
            RESULTS.where(moved, RESULTS.max_steps_reached, RESULTS.stalled),
        ),
    )
    return params, value, grad_norm, steps, result


def run_start(
    problem,
    params,
    learning_rate,
    gtol,
    method: str,
    max_steps: int,
    memory_size: int,
    eliminate,
    progress: bool = False,
):
    """Optimize one start; returns (params, loss, grad_norm, steps, result). A problem with
    nonnegative parameters is solved by `_bounds.run` (grad_norm: the projected gradient's)."""
    optimizer = _optimizer(method, learning_rate, memory_size)
    options = dict(linesearch=method == "lbfgs", progress=progress)
    tol = lambda params: tolerance(problem, params, gtol)
    if problem.nonnegative():  # no elimination: H*(rest) ignores the bounds
        coarse = lambda params: tolerance(problem, params, jnp.maximum(gtol, _bounds.COARSE_GTOL))
        tols = (tol, coarse)
        return _bounds.run(problem, params, optimizer, tols, max_steps, options, minimize)
    # optimal_features is None for models without a closed form (decided while tracing)
    if not eliminate or problem.optimal_features(params) is None:
        return minimize(problem.loss, params, optimizer, tol, max_steps, **options)
    # variable projection: H = H*(rest) exactly; judge convergence on the full objective
    # (the reduced problem's own test uses ||rest|| <= ||params||: stricter, never looser)
    complete = lambda rest: rest | {"H": problem.optimal_features(rest)}
    reduced = lambda rest: problem.loss(complete(rest))
    rest = {k: v for k, v in params.items() if k != "H"}
    rest, _, _, steps, inner = minimize(reduced, rest, optimizer, tol, max_steps, **options)
    params = complete(rest)
    value, grad = jax.value_and_grad(problem.loss)(params)
    grad_norm = otu.tree_norm(grad)
    result = RESULTS.where(
        grad_norm <= tol(params),
        RESULTS.successful,
        RESULTS.where(inner == RESULTS.successful, RESULTS.stalled, inner),
    )
    return params, value, grad_norm, steps, result


def starts(problem, keys, scales):
    """The initial points of the restarts, with a leading restart axis.

    One by one (lax.map), not vmapped: jaxlib's batched LAPACK kernels (the QR of orthogonal
    inits) split a batch over the CPU thread pool and wait for it, and two of them running
    at once on a 2-core machine deadlock (seen: deep-linear, d=64, M=6).
    """
    if keys.shape[0] == 1:
        return jax.tree.map(lambda x: x[None], problem.init(keys[0], scales[0]))
    return jax.lax.map(lambda ks: problem.init(*ks), (keys, scales))


def solve_starts(
    problem,
    params,
    learning_rate,
    gtol,
    method,
    max_steps,
    memory_size,
    eliminate,
    progress: bool = False,
):
    """Optimize every start (leading axis of `params`) and keep the best: a `Solution`."""
    run = lambda p: run_start(
        problem, p, learning_rate, gtol, method, max_steps, memory_size, eliminate, progress
    )
    if jax.tree.leaves(params)[0].shape[0] == 1:  # no batch axis: compiles about a third faster
        solved = run(jax.tree.map(lambda x: x[0], params))
        params, loss, grad_norm, steps, result = jax.tree.map(lambda x: x[None], solved)
    else:
        params, loss, grad_norm, steps, result = jax.vmap(run)(params)
    converged = result == RESULTS.successful
    finite_loss = jnp.where(jnp.isfinite(loss), loss, jnp.inf)
    best = jnp.where(
        jnp.any(converged),
        jnp.argmin(jnp.where(converged, finite_loss, jnp.inf)),
        jnp.argmin(finite_loss),
    )
    pick = lambda x: x[best]
    best_params = jax.tree.map(pick, params)
    return Solution(
        params=best_params,
        loss=loss[best],
        grad_norm=grad_norm[best],
        steps=steps[best],
        result=jax.tree.map(pick, result),
        restart_losses=loss,
        restart_converged=converged,
        gtol=gtol,
        grad_tol=tolerance(problem, best_params, gtol),
        classifier=problem.classifier(best_params),
        method=method,
        nonnegative=tuple(problem.nonnegative()),
    )


@eqx.filter_jit
def _solve(problem, keys, scales, *options):
    return solve_starts(problem, starts(problem, keys, scales), *options)


def restart_keys(seed: int, restarts: int, init_scale: float, init_spread: float, dtype):
    """The PRNG keys and init scales of `restarts` starts (see `solve`)."""
    keys = jax.random.split(jax.random.PRNGKey(seed), restarts)
    if restarts == 1:
        return keys, jnp.asarray([init_scale], dtype)
    return keys, jnp.asarray(init_scale * init_spread ** jnp.linspace(-1.0, 1.0, restarts), dtype)


def _number(name: str, value, kind: type):
    """`value` as a Python int or float: numpy scalars and 0-d arrays (numpy or jax) are
    accepted; anything else (bool, str, a longer array) is an InputError naming `name`."""
    what = "an integer" if kind is int else "a number"
    if hasattr(value, "shape") and hasattr(value, "dtype") and np.shape(value) == ():
        value = np.asarray(value).item()
    if not isinstance(value, bool | np.bool_):
        if kind is int and isinstance(value, int | np.integer):
            return int(value)
        if kind is float and isinstance(value, int | float | np.integer | np.floating):
            return float(value)
    raise InputError(f"{name} must be {what}; got {value!r} ({type(value).__name__})")


def check_options(
    *, method, restarts, max_steps, memory_size, gtol, init_scale, init_spread, learning_rate
) -> dict:
    """The solver options as plain Python values (numpy scalars and 0-d arrays accepted),
    or a one-line InputError naming the first one out of range."""
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    out: dict = {"method": method}
    for name, value, low in (
        ("restarts", restarts, 1),
        ("max_steps", max_steps, 1),
        ("memory_size", memory_size, 1),
    ):
        out[name] = _number(name, value, int)
        if out[name] < low:
            raise InputError(f"{name} must be an integer >= {low}; got {value!r}")
    for name, value in (
        ("gtol", gtol),
        ("init_scale", init_scale),
        ("init_spread", init_spread),
        ("learning_rate", learning_rate),
    ):
        out[name] = _number(name, value, float)
        if not 0 < out[name] < float("inf"):
            raise InputError(f"{name} must be a finite number > 0; got {value!r}")
    if out["init_spread"] < 1:
        raise InputError(f"init_spread must be a finite number >= 1; got {init_spread!r}")
    return out


DEFAULT_GTOL = 1e-9  # relative (see `tolerance`): ~1e-11 absolute on the headline problem
FLOAT32_GTOL = 1e-5  # below this float32 rounding of the gradient stalls the solver


def solve(
    problem: AbstractProblem,
    *,
    seed: int = 0,
    restarts: int = 1,
    method: str = "lbfgs",
    gtol: float = DEFAULT_GTOL,
    max_steps: int = 10_000,
    init_scale: float = 1.0,
    init_spread: float = 2.0,
    learning_rate: float = 1e-2,
    memory_size: int = 3,
    eliminate: bool = True,
    throw: bool = False,
    progress: bool | Callable[[int, float, float, float], None] | None = None,
) -> Solution:
    """Find the global minimizer of `problem` numerically.

    Every restart starts from ``problem.init`` with its own key (split from `seed`) and its
    own scale: the restarts' scales run geometrically from init_scale / init_spread to
    init_scale * init_spread (one restart: init_scale), because in non-convex models
    (deep linear) small starts fall into spurious minima with some directions off and large
    ones into minima with some directions wrongly on. Each restart runs
    `method` (``"lbfgs"``: optax L-BFGS with zoom line search and `memory_size` stored
    pairs, the default; a step costs O(memory_size * #unknowns) memory traffic, which
    dominates on CPU, and 3 pairs were fastest across the plain-UFM cases we timed;
    ``"adam"``;
    ``"sgd"`` with momentum 0.9; the last two use `learning_rate`) until the gradient norm of
    the objective is <= ``gtol * weight_decay * max(||params||, 1)`` (`tolerance`: gtol is
    a relative distance to a critical point, so the test means the same at any weight
    decay) or `max_steps` is reached. Restarts run as one vmapped, jitted computation;
    changing seed, init_scale, learning_rate or gtol does not recompile.

    With `eliminate` (default) and a model whose features have a closed-form optimum given
    the other parameters (MSE: `problem.optimal_features`), the optimizer runs over the
    other parameters with H = H*(rest) (variable projection: same minimizers, 10-100x fewer
    unknowns); the convergence test is still on the gradient of the full objective.

    A problem with parameters constrained to be >= 0 (``problem.nonnegative()``) is solved
    with the bounds kept (`ufm._bounds`: a squared parametrization, then active-set
    rounds) and without elimination; its convergence test and ``sol.grad_norm`` use the
    projected gradient (entries at 0 whose gradient pushes them below 0 left out).

    `progress`: True prints the step, loss and gradient norm to stderr every 2 s; a
    callable gets (step, loss, grad_norm, tolerance) after every step; None (default) is
    True from a million unknowns (times restarts) up. The numbers are the same either way.

    Returns the best restart (lowest loss among converged ones). ``sol.converged`` and
    ``sol.status`` say whether and why it stopped; with ``throw=True`` a non-converged
    result raises RuntimeError instead. Solver options may be Python or numpy scalars (or
    0-d arrays); anything else is an InputError naming the option. Run with
    ``jax.config.update("jax_enable_x64", True)`` for float64: a float32 problem warns up
    front that it cannot reach a gtol below 1e-5.
    """
    options = check_options(
        method=method,
        restarts=restarts,
        max_steps=max_steps,
        memory_size=memory_size,
        gtol=gtol,
        init_scale=init_scale,
        init_spread=init_spread,
        learning_rate=learning_rate,
    )
    eliminate = bool(eliminate) and not problem.nonnegative()  # bounds: no elimination
    sizes = _budget.check_problem(problem, options, eliminate)  # refuse what cannot fit
    seed = _number("seed", seed, int)
    dtype = problem_dtype(problem)
    _warn_float32(dtype, options["gtol"])
    keys, scales = restart_keys(
        seed, options["restarts"], options["init_scale"], options["init_spread"], dtype
    )
    sink = _sink(progress, problem, options, None if sizes is None else sizes.unknowns)
    sol = _run(problem, keys, scales, options, bool(eliminate), sink)
    if throw and not sol.converged:
        raise RuntimeError(sol.status)
    return sol


def problem_dtype(problem):
    """The floating dtype of a problem: that of its hyperparameter leaves (float64 with x64
    on, as `ufm.make` builds them; a model with none: JAX's default float)."""
    leaves = jax.tree.leaves(eqx.filter(problem, eqx.is_inexact_array))
    return leaves[0].dtype if leaves else jnp.zeros(()).dtype


def _warn_float32(dtype, gtol: float) -> None:
    if dtype == jnp.float32 and gtol < FLOAT32_GTOL:
        warnings.warn(
            f"this problem is float32 (jax_enable_x64 is off), which cannot reach "
            f"gtol={gtol:g} (float32 resolves about {FLOAT32_GTOL:g}): run "
            'jax.config.update("jax_enable_x64", True) before building the problem',
            PrecisionWarning,
            stacklevel=3,
        )


def _run(problem, keys, scales, options: dict, eliminate: bool, sink) -> Solution:
    """The compiled solve, reporting progress to `sink` if there is one."""
    dtype = scales.dtype
    arguments = (
        problem,
        keys,
        scales,
        jnp.asarray(options["learning_rate"], dtype),
        jnp.asarray(options["gtol"], dtype),
        options["method"],
        options["max_steps"],
        options["memory_size"],
        eliminate,
        sink is not None,
    )
    if sink is None:
        return _solve(*arguments)
    with _progress.reporting(sink):
        sol = jax.block_until_ready(_solve(*arguments))
    if isinstance(sink, _progress.Printer):
        sink.close()
    return sol


def _sink(progress, problem, options, unknowns: int | None):
    """Where the compiled loop's progress reports go (None: it does not report).
    `unknowns`: per start, if the caller has counted them already."""
    if progress is None:
        if unknowns is None:
            shapes = jax.eval_shape(problem.init, jax.random.PRNGKey(0), jnp.asarray(1.0))
            unknowns = sum(x.size for x in jax.tree.leaves(shapes))
        progress = unknowns * options["restarts"] >= _progress.AUTO_UNKNOWNS
    if progress is True:
        return _progress.Printer(options["max_steps"])
    if callable(progress):
        return progress
    if progress is False:
        return None
    raise InputError(f"progress must be True, False, None or a callable; got {progress!r}")
