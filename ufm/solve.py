"""The one solver loop for every model: an optax update inside a `lax.while_loop`.

It stops when the gradient norm of the full objective is <= gtol (converged), at max_steps,
when the loss turns non-finite, or when the optimizer stops moving. Restarts are a vmapped
axis of PRNG keys; the best converged restart is returned with every restart's loss.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

from ._solution import RESULTS, Solution
from .errors import InputError
from .models import AbstractProblem

METHODS = ("lbfgs", "adam", "sgd")


def _optimizer(
    method: str, learning_rate, memory_size: int
) -> optax.GradientTransformationExtraArgs:
    if method == "lbfgs":
        return optax.lbfgs(memory_size=memory_size)
    if method == "adam":
        return optax.with_extra_args_support(optax.adam(learning_rate))
    return optax.with_extra_args_support(optax.sgd(learning_rate, momentum=0.9))


def minimize(fun, params, optimizer, gtol, max_steps: int, *, linesearch: bool):
    """Run `optimizer` on `fun` from `params` until ||grad|| <= gtol.

    `linesearch`: the optimizer keeps the value and gradient at the new point in its state
    (optax's L-BFGS), so they are reused instead of recomputed.
    Returns (params, value, grad_norm, steps, result).
    """
    value, grad = jax.value_and_grad(fun)(params)
    if linesearch:
        value_and_grad = optax.value_and_grad_from_state(fun)
    else:
        value_and_grad = lambda params, state: jax.value_and_grad(fun)(params)

    def cond(carry):
        _, _, value, grad, step, moved = carry
        return (step < max_steps) & (otu.tree_norm(grad) > gtol) & jnp.isfinite(value) & moved

    def body(carry):
        params, state, value, grad, step, _ = carry
        # optax mixes int32 step counts with floats; it is not clean under strict promotion.
        with jax.numpy_dtype_promotion("standard"):
            updates, state = optimizer.update(
                grad, state, params, value=value, grad=grad, value_fn=fun
            )
            params = optax.apply_updates(params, updates)
            value, grad = value_and_grad(params, state=state)
        return params, state, value, grad, step + 1, otu.tree_norm(updates) > 0

    with jax.numpy_dtype_promotion("standard"):
        state = optimizer.init(params)
    carry = (params, state, value, grad, jnp.asarray(0), jnp.asarray(True))
    params, _, value, grad, steps, moved = jax.lax.while_loop(cond, body, carry)
    grad_norm = otu.tree_norm(grad)
    result = RESULTS.where(
        grad_norm <= gtol,
        RESULTS.successful,
        RESULTS.where(
            ~jnp.isfinite(value),
            RESULTS.nonfinite,
            RESULTS.where(moved, RESULTS.max_steps_reached, RESULTS.stalled),
        ),
    )
    return params, value, grad_norm, steps, result


def run_start(
    problem, params, learning_rate, gtol, method: str, max_steps: int, memory_size: int, eliminate
):
    """Optimize one start; returns (params, loss, grad_norm, steps, result)."""
    optimizer = _optimizer(method, learning_rate, memory_size)
    linesearch = method == "lbfgs"
    # optimal_features is None for models without a closed form (decided while tracing)
    if not eliminate or problem.optimal_features(params) is None:
        return minimize(problem.loss, params, optimizer, gtol, max_steps, linesearch=linesearch)
    # variable projection: H = H*(rest) exactly; judge convergence on the full objective
    complete = lambda rest: rest | {"H": problem.optimal_features(rest)}
    reduced = lambda rest: problem.loss(complete(rest))
    rest = {k: v for k, v in params.items() if k != "H"}
    rest, _, _, steps, inner = minimize(
        reduced, rest, optimizer, gtol, max_steps, linesearch=linesearch
    )
    params = complete(rest)
    value, grad = jax.value_and_grad(problem.loss)(params)
    grad_norm = otu.tree_norm(grad)
    result = RESULTS.where(
        grad_norm <= gtol,
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


def solve_starts(problem, params, learning_rate, gtol, method, max_steps, memory_size, eliminate):
    """Optimize every start (leading axis of `params`) and keep the best: a `Solution`."""
    run = lambda p: run_start(
        problem, p, learning_rate, gtol, method, max_steps, memory_size, eliminate
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
    return Solution(
        params=jax.tree.map(pick, params),
        loss=loss[best],
        grad_norm=grad_norm[best],
        steps=steps[best],
        result=jax.tree.map(pick, result),
        restart_losses=loss,
        restart_converged=converged,
        gtol=gtol,
        method=method,
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


def check_options(
    *, method, restarts, max_steps, memory_size, gtol, init_scale, init_spread, learning_rate
) -> None:
    """A one-line ValueError naming the first solver option out of range."""
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    for name, value, low in (
        ("restarts", restarts, 1),
        ("max_steps", max_steps, 1),
        ("memory_size", memory_size, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{name} must be an integer >= {low}; got {value!r}")
    for name, value in (
        ("gtol", gtol),
        ("init_scale", init_scale),
        ("init_spread", init_spread),
        ("learning_rate", learning_rate),
    ):
        if not (isinstance(value, int | float) and 0 < value < float("inf")):
            raise InputError(f"{name} must be a finite number > 0; got {value!r}")
    if init_spread < 1:
        raise InputError(f"init_spread must be a finite number >= 1; got {init_spread!r}")


def solve(
    problem: AbstractProblem,
    *,
    seed: int = 0,
    restarts: int = 1,
    method: str = "lbfgs",
    gtol: float = 1e-10,
    max_steps: int = 10_000,
    init_scale: float = 1.0,
    init_spread: float = 2.0,
    learning_rate: float = 1e-2,
    memory_size: int = 3,
    eliminate: bool = True,
    throw: bool = False,
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
    the objective is <= `gtol` or `max_steps` is reached. Restarts run as one vmapped,
    jitted computation; changing seed, init_scale, learning_rate or gtol does not recompile.

    With `eliminate` (default) and a model whose features have a closed-form optimum given
    the other parameters (MSE: `problem.optimal_features`), the optimizer runs over the
    other parameters with H = H*(rest) (variable projection: same minimizers, 10-100x fewer
    unknowns); the convergence test is still on the gradient of the full objective.

    Returns the best restart (lowest loss among converged ones). ``sol.converged`` and
    ``sol.status`` say whether and why it stopped; with ``throw=True`` a non-converged
    result raises RuntimeError instead. Run with ``jax.config.update("jax_enable_x64", True)``
    for float64: float32 cannot reach the default gtol.
    """
    check_options(
        method=method,
        restarts=restarts,
        max_steps=max_steps,
        memory_size=memory_size,
        gtol=gtol,
        init_scale=init_scale,
        init_spread=init_spread,
        learning_rate=learning_rate,
    )
    dtype = problem.lambda_W.dtype  # pyright: ignore[reportAttributeAccessIssue]
    keys, scales = restart_keys(seed, restarts, init_scale, init_spread, dtype)
    sol = _solve(
        problem,
        keys,
        scales,
        jnp.asarray(learning_rate, dtype),
        jnp.asarray(gtol, dtype),
        method,
        max_steps,
        memory_size,
        bool(eliminate),
    )
    if throw and not sol.converged:
        raise RuntimeError(sol.status)
    return sol
