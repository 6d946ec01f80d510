"""The one solver loop for every model: an optax update inside a `lax.while_loop`.

It stops when the gradient of the full objective is small relative to the problem's scale
(`tolerance`: converged), at max_steps, when the loss turns non-finite, or when the
optimizer stops moving. Restarts are a vmapped axis of PRNG keys; the best converged
restart is returned with every restart's loss.
"""

import dataclasses
import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _bounds, _budget, _lbfgs, _progress
from ._solution import RESULTS, Solution
from .errors import InputError, PrecisionWarning
from .problem import AbstractProblem

METHODS = ("lbfgs", "optax-lbfgs", "adam", "sgd")


def _optimizer(method: str, learning_rate, memory_size: int):
    """The optax update of `method` (optax is imported only when one is asked for)."""
    import optax

    if method == "optax-lbfgs":
        return optax.lbfgs(memory_size=memory_size)
    if method == "adam":
        return optax.with_extra_args_support(optax.adam(learning_rate))
    return optax.with_extra_args_support(optax.sgd(learning_rate, momentum=0.9))


def minimizer(method: str, learning_rate, memory_size: int, progress: bool = False):
    """The loop of `method` as one function (fun, params, tol, max_steps) -> (params, value,
    grad_norm, steps, result): ufm's own L-BFGS (`ufm._lbfgs`) for ``"lbfgs"``, else
    `minimize` with an optax update."""
    if method == "lbfgs":
        return lambda fun, params, tol, max_steps: _lbfgs.lbfgs(
            fun, params, tol, max_steps, memory_size, progress
        )[:5]
    optimizer = _optimizer(method, learning_rate, memory_size)
    linesearch = method == "optax-lbfgs"
    return lambda fun, params, tol, max_steps: minimize(
        fun, params, optimizer, tol, max_steps, linesearch=linesearch, progress=progress
    )


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
    size = jnp.maximum(_lbfgs.norm(params), 1.0)
    return gtol * problem.weight_decay().astype(size.dtype) * size


STALL_STEPS = _lbfgs.STALL_STEPS  # line-search steps in a row without a lower loss: stalled


def minimize(
    fun, params, optimizer, tol, max_steps: int, *, linesearch: bool, progress: bool = False
):
    """Run `optimizer` on `fun` from `params` until ||grad|| <= tol(params).

    `linesearch`: the optimizer keeps the value and gradient at the new point in its state
    (optax's L-BFGS), so they are reused instead of recomputed. `progress`: every step
    reports (step, loss, gradient norm, tolerance) to the host (`_progress.report`).
    Returns (params, value, grad_norm, steps, result).
    """
    import optax

    value, grad = jax.value_and_grad(fun)(params)
    if linesearch:
        value_and_grad = optax.value_and_grad_from_state(fun)
    else:
        value_and_grad = lambda params, state: jax.value_and_grad(fun)(params)

    def cond(carry):
        params, _, value, grad, step, moved, _ = carry
        small = _lbfgs.norm(grad) <= tol(params)
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
            jax.debug.callback(_progress.report, step + 1, value, _lbfgs.norm(grad), tol(params))
        # a line search accepts only decreases: STALL_STEPS steps without one mean rounding
        # has the last word (the gradient is at the precision's floor); other methods may
        # go up and down on their way
        stuck = jnp.where(value < previous, 0, stuck + 1) if linesearch else stuck
        moved = (_lbfgs.norm(updates) > 0) & (stuck < STALL_STEPS)
        return params, state, value, grad, step + 1, moved, stuck

    with jax.numpy_dtype_promotion("standard"):
        state = optimizer.init(params)
    zero = jnp.asarray(0)
    carry = (params, state, value, grad, zero, jnp.asarray(True), zero)
    params, _, value, grad, steps, moved, _ = jax.lax.while_loop(cond, body, carry)
    grad_norm = _lbfgs.norm(grad)
    result = _lbfgs.outcome_code(grad_norm, tol(params), value, moved)
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
    run = minimizer(method, learning_rate, memory_size, progress)
    tol = lambda params: tolerance(problem, params, gtol)
    if problem.nonnegative():  # no elimination: H*(rest) ignores the bounds
        coarse = lambda params: tolerance(problem, params, jnp.maximum(gtol, _bounds.COARSE_GTOL))
        return _bounds.run(problem, params, (tol, coarse), max_steps, run)
    # optimal_features is None for models without a closed form (decided while tracing)
    if not eliminate or problem.optimal_features(params) is None:
        return run(problem.loss, params, tol, max_steps)
    # variable projection: H = H*(rest) exactly; judge convergence on the full objective
    # (the reduced problem's own test uses ||rest|| <= ||params||: stricter, never looser)
    complete = lambda rest: rest | {"H": problem.optimal_features(rest)}
    reduced = lambda rest: problem.loss(complete(rest))
    rest = {k: v for k, v in params.items() if k != "H"}
    rest, _, _, steps, inner = run(reduced, rest, tol, max_steps)
    params = complete(rest)
    value, grad = jax.value_and_grad(problem.loss)(params)
    grad_norm = _lbfgs.norm(grad)
    return params, value, grad_norm, steps, _judged(grad_norm, tol(params), inner)


def _judged(grad_norm, tol, inner):
    """The result of a point a reduced problem found (eliminated or collapsed), judged on
    the full objective's gradient: successful if it meets `tol`, else the reduced solve's
    own result, ``stalled`` where that one had converged (rounding has the last word)."""
    return RESULTS.where(
        grad_norm <= tol,
        RESULTS.successful,
        RESULTS.where(inner == RESULTS.successful, RESULTS.stalled, inner),
    )


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
    route: str = "auto",
    throw: bool = False,
    progress: bool | Callable[[int, float, float, float], None] | None = None,
) -> Solution:
    """Find the global minimizer of `problem` numerically.

    Every restart starts from ``problem.init`` with its own key (split from `seed`) and its
    own scale: the restarts' scales run geometrically from init_scale / init_spread to
    init_scale * init_spread (one restart: init_scale), because in non-convex models
    (deep linear) small starts fall into spurious minima with some directions off and large
    ones into minima with some directions wrongly on. Each restart runs `method`
    (``"lbfgs"``, the default: `ufm._lbfgs` with `memory_size` stored pairs, 3 the fastest
    in the cases we timed; ``"optax-lbfgs"``: optax's, with its zoom line search; ``"adam"``
    and ``"sgd"`` with momentum 0.9 use `learning_rate`) until the gradient norm is <=
    ``gtol * weight_decay * max(||params||, 1)`` (`tolerance`: a relative distance to a
    critical point, the same test at any weight decay) or `max_steps`. Restarts run as
    one vmapped, jitted computation; a new seed, init_scale, learning_rate or gtol does
    not recompile.

    With `eliminate` (default) and a model whose features have a closed-form optimum given
    the other parameters (MSE: `problem.optimal_features`), the optimizer runs over the
    other parameters with H = H*(rest) (variable projection: same minimizers, 10-100x fewer
    unknowns); the convergence test is still on the gradient of the full objective.

    `route`: ``"auto"`` solves a model whose global minimizers are proven collapsed (the
    plain UFM: ``problem.collapsed()``) over its K class means, expands the point to all N
    columns and judges it on the full objective's gradient (``sol.route``); a point that
    fails is re-solved on all columns. ``"collapsed"``: that route or an InputError;
    ``"full"``: all columns.

    Parameters constrained to be >= 0 (``problem.nonnegative()``) keep their bounds
    (`ufm._bounds`), without elimination; the test then uses the projected gradient.

    `progress`: True prints the step, loss and gradient norm to stderr every 2 s; a
    callable gets (step, loss, grad_norm, tolerance) after every step; None (default) is
    True from a million unknowns (times restarts) up. The numbers are the same either way.

    Returns the best restart (lowest loss among converged ones); ``sol.converged`` and
    ``sol.status`` say whether and why it stopped (``throw=True``: RuntimeError if not).
    Options may be Python or numpy scalars or 0-d arrays, else an InputError naming them.
    Run with ``jax.config.update("jax_enable_x64", True)``: float32 cannot reach a gtol
    below 1e-5, and a float32 problem warns so up front.
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
    collapsed = _collapsed(problem, route)
    sizes = _budget.check_problem(problem, options, eliminate)  # refuse what cannot fit
    keys, scales = _starts(problem, seed, options)
    # progress=None: on from AUTO_UNKNOWNS unknowns of the full problem, either route
    sink = lambda: _sink(progress, problem, options, None if sizes is None else sizes.unknowns)
    run = lambda problem: _run(problem, keys, scales, options, eliminate, sink())
    sol = None if collapsed is None else _expand(problem, collapsed, run(collapsed))
    if sol is None or (route == "auto" and not sol.converged):
        sol = run(problem)
    if throw and not sol.converged:
        raise RuntimeError(sol.status)
    return sol


ROUTES = ("auto", "collapsed", "full")


def _starts(problem, seed, options: dict):
    """The restarts' keys and scales (`restart_keys`), after checking the seed; warns up
    front about float32."""
    seed = _number("seed", seed, int)
    dtype = problem_dtype(problem)
    _warn_float32(dtype, options["gtol"])
    spread = (options["init_scale"], options["init_spread"])
    return restart_keys(seed, options["restarts"], *spread, dtype)


def _collapsed(problem, route):
    """The problem over class means that `route` asks for, or None (the full route)."""
    if route not in ROUTES:
        raise InputError(f"route must be one of {', '.join(map(repr, ROUTES))}; got {route!r}")
    collapsed = None if route == "full" else problem.collapsed()
    if route == "collapsed" and collapsed is None:
        raise InputError(
            f"route='collapsed': the {type(problem).__name__} model has no collapsed form "
            "(its minimizers are not proven collapsed); use route='auto' or 'full'"
        )
    return collapsed


# XLA's CPU backend hands the full gradient's float64 products over the N columns to its
# YNN fusions, which ran them ~2x slower than its own loops at N = 10^6 (1.2 s against 0.55 s
# on 2 cores). The option is experimental: a jaxlib that does not know it gets the default.
EXPAND_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def _expand(problem, collapsed, reduced: Solution) -> Solution:
    """`_expanded`, compiled with EXPAND_OPTIONS where the backend knows them."""
    try:
        return _expand_tuned(problem, collapsed, reduced)
    except Exception as error:  # an unknown option is refused when compiling
        if "ynn_fusion_type" not in str(error):
            raise
        return _expand_default(problem, collapsed, reduced)


def _expanded(problem, collapsed, reduced: Solution) -> Solution:
    """The collapsed route's solution on the full problem: its parameters expanded to every
    column, the gradient norm and convergence judged on the full objective (a point that
    passed on the class means fails here only by rounding: then ``stalled``). The loss stays
    the one the solver reached, the same function summed by class (the restarts' losses are
    compared on it); it agrees with the full objective's value to rounding."""
    params = collapsed.expand(reduced.params)
    grad = jax.grad(problem.loss)(params)
    grad_norm = _lbfgs.norm(grad)
    grad_tol = tolerance(problem, params, reduced.gtol)
    result = _judged(grad_norm, grad_tol, reduced.result)
    return dataclasses.replace(
        reduced,
        params=params,
        grad_norm=grad_norm,
        result=result,
        grad_tol=grad_tol,
        route="collapsed",
    )


_expand_tuned = jax.jit(_expanded, compiler_options=EXPAND_OPTIONS)
_expand_default = jax.jit(_expanded)


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
