"""Parameters constrained to be >= 0 entry by entry (`AbstractProblem.nonnegative`): how
`ufm.solve.run_start` solves such a problem, and the projected gradient that judges it.

Stages of the solver's own `minimize` (same optimizer; jitted, vmappable, compiled once):

0. squared parametrization: every constrained entry is x = v**2, and the loss is minimized
   over v (and the unconstrained leaves) from v = sqrt(|x0|), smooth and with no bound
   left, to the coarse tolerance of gtol = `COARSE_GTOL` (or gtol if larger) and for at
   most half of max_steps. It finds the neighbourhood of the constrained minimum, but it
   cannot finish the job: entries that belong at 0 only approach it, slowly where their
   gradient vanishes there too (f ~ v**4), and small free entries are judged by the
   shrunk gradient 2 v grad_x.
1. active-set rounds, at most `ROUNDS`: the constrained entries whose gradient g pushes
   them down and which a gradient step of length 1/weight_decay (the longest Newton step:
   the curvature is at least the weight decay) would take past the bound, g > 0 and
   x <= g / weight_decay, are pinned at exactly 0, and the loss is minimized over x itself
   as f(max(x, 0)): every point evaluated is feasible, so the line search accepts only
   decreases of the objective itself, and an entry that a step takes below 0 counts as 0
   (the function is flat on that side; the round's result clips it). The rounds stop once
   the projected test below passes; one round usually does it, an entry pinned wrongly has
   g < 0 at the next round's start and is free again.

Converged: the projected gradient (the gradient with the entries at x = 0 whose gradient
is positive zeroed; x is exactly >= 0) has norm <= `ufm.solve.tolerance` at gtol, the
solver's unconstrained test: the first-order (KKT) conditions of min f subject to x >= 0.
`progress` reports come from each stage's `minimize`: their step count restarts at every
stage, and in stage 0 their gradient is the one in v.
"""

import jax
import jax.numpy as jnp

from . import _lbfgs
from ._solution import RESULTS
from .errors import InputError

COARSE_GTOL = 1e-3  # stage 0's relative tolerance (`ufm.solve.tolerance`); the rounds polish
ROUNDS = 10  # active-set rounds at most; one sufficed in every case we ran after stage 0


def bounded_names(problem, params: dict) -> tuple[str, ...]:
    """``problem.nonnegative()``, checked against the parameter names (an InputError)."""
    names = tuple(problem.nonnegative())
    unknown = [name for name in names if name not in params]
    if unknown:
        raise InputError(
            f"{type(problem).__name__}.nonnegative() names {unknown}, which are not "
            f"parameters; the parameters are {sorted(params)}"
        )
    return names


def projected_gradient(params: dict, grad: dict, names) -> dict:
    """`grad` with the entries of the `names` leaves zeroed where the parameter is at its
    bound (x == 0) and the gradient points out of the feasible set (g > 0): what is left
    must vanish at a constrained minimum."""
    at_bound = lambda k: (params[k] == 0) & (grad[k] > 0)
    return {k: jnp.where(at_bound(k), 0, g) if k in names else g for k, g in grad.items()}


def _map(params: dict, names, fn) -> dict:
    """`params` with fn(name, leaf) in place of every leaf named in `names`."""
    return {k: fn(k, x) if k in names else x for k, x in params.items()}


def run(problem, params, tols, max_steps: int, minimize):
    """Optimize one start of a problem with nonnegative parameters (module docstring).
    `tols`: (the convergence test's tolerance, stage 0's coarse one), functions of the
    params; `minimize(fun, params, tol, max_steps)`: `ufm.solve.minimizer`'s loop. Returns
    (params, loss, projected grad_norm, steps of every stage, result)."""
    names = bounded_names(problem, params)
    tol, coarse = tols
    relu = lambda y: jnp.maximum(y, 0)
    curvature = problem.weight_decay().astype(jax.tree.leaves(params)[0].dtype)

    def norm(x, grad):
        return _lbfgs.norm(projected_gradient(x, grad, names))

    def cond(carry):
        x, value, grad, steps, stage = carry
        unfinished = (stage <= ROUNDS) & (steps < max_steps) & jnp.isfinite(value)
        return (stage == 0) | unfinished & (norm(x, grad) > tol(x))

    def body(carry):
        x, _, grad, steps, stage = carry
        first = stage == 0  # v = sqrt(x), nothing pinned; later stages: x, some pinned
        active = {k: ~first & (grad[k] > 0) & (x[k] <= grad[k] / curvature) for k in names}
        pin = lambda k, y: jnp.where(active[k], 0, y)
        to_x = lambda p: _map(p, names, lambda k, v: pin(k, jnp.where(first, v**2, relu(v))))
        start = _map(x, names, lambda k, y: pin(k, jnp.where(first, jnp.sqrt(y), y)))
        p, _, _, more, _ = minimize(
            lambda p: problem.loss(to_x(p)),
            start,
            lambda p: jnp.where(first, coarse(to_x(p)), tol(to_x(p))),
            jnp.where(first, max_steps - max_steps // 2, max_steps - steps),
        )
        x = to_x(p)
        value, grad = jax.value_and_grad(problem.loss)(x)
        return x, value, grad, steps + more, stage + 1

    x = _map(params, names, lambda _, y: jnp.abs(y))  # the start, made feasible
    value, grad = jax.value_and_grad(problem.loss)(x)
    carry = (x, value, grad, jnp.asarray(0), jnp.asarray(0))
    x, value, grad, steps, _ = jax.lax.while_loop(cond, body, carry)
    grad_norm = norm(x, grad)
    result = RESULTS.where(
        grad_norm <= tol(x),
        RESULTS.successful,
        RESULTS.where(
            ~jnp.isfinite(value),
            RESULTS.nonfinite,
            RESULTS.where(steps >= max_steps, RESULTS.max_steps_reached, RESULTS.stalled),
        ),
    )
    return x, value, grad_norm, steps, result
