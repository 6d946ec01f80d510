"""L-BFGS with a lean step: the default method of `ufm.solve`.

Why not optax's: on the problems ufm solves an evaluation of the loss and gradient is cheap
(a few matrix products), so the optimizer's own work per step decides the speed. Here a step
is a handful of fused passes over the unknowns:

- the direction comes from the compact representation of the L-BFGS matrix (Byrd, Nocedal &
  Schnabel 1994; Nocedal & Wright, Numerical Optimization, eq. 7.24): with the stored pairs
  as the rows of one matrix B = [S; Y] (2m x n; one array per parameter, with a leading
  row axis: a flat copy of the parameters would cost more than the step itself),
  H g = gamma g + B^T c, where c solves two
  m x m triangular systems built from the Gram matrix B B^T. One product B [g s y] per step
  keeps a = B g and the Gram matrix up to date; one product B^T c gives the direction;
- the line search tries the full step first, which the scaling gamma = s.y / y.y makes
  acceptable almost always, and stops at the first point meeting the weak Wolfe conditions
  (sufficient decrease with c1 = 1e-4, curvature with c2 = 0.9; near the minimum, where the
  values no longer resolve the decrease, the approximate Wolfe conditions of Hager & Zhang
  2005, on the slopes alone); otherwise it interpolates
  (a quadratic fit while no point has decreased enough, bisection of the bracket after, or
  doubling while the slope is still steep), one evaluation per trial;
- the value and gradient at the accepted point are those of the last trial: one evaluation
  per step when the first trial is accepted.

A line search that finds no sufficient decrease clears the memory and tries the steepest
descent direction; if that fails too, the solver has stalled (the gradient is at the
precision's floor). The stopping rule is `ufm.solve`'s (`_outcome`).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _progress
from ._solution import RESULTS

C1 = 1e-4  # sufficient decrease
C2 = 0.9  # curvature (weak Wolfe)
NEAR = 1e-10  # relative change of the value below which the slopes decide (approximate Wolfe)
TRIALS = 30  # line-search evaluations at most per step (each at least halves the bracket)
STALL_STEPS = 20  # accepted steps in a row without a lower loss: rounding has the last word


class Outcome(NamedTuple):
    params: dict
    value: jax.Array
    grad_norm: jax.Array
    steps: jax.Array
    result: RESULTS
    evaluations: jax.Array  # loss-and-gradient evaluations, the first one included


def outcome_code(grad_norm, tol, value, moved):
    """Why the loop stopped, as a RESULTS item: converged, non-finite, stalled or max_steps."""
    return RESULTS.where(
        grad_norm <= tol,
        RESULTS.successful,
        RESULTS.where(
            ~jnp.isfinite(value),
            RESULTS.nonfinite,
            RESULTS.where(moved, RESULTS.max_steps_reached, RESULTS.stalled),
        ),
    )


# Written as products and sums, not dot/matmul: XLA's CPU backend runs a (6 x 64k) matrix-
# vector product ~15x slower than the same product fused as elementwise multiply-and-sum.


def _dot(a, b):
    """The inner product of two pytrees of the same structure."""
    leaves = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return sum(jnp.sum(x * y) for x, y in leaves)


def norm(a):
    """The Euclidean norm of a pytree (all leaves as one vector)."""
    return jnp.sqrt(_dot(a, a))


def _rows(B, vectors):
    """(B_i . v_j) for the rows B_i of `B` (leaves with a leading row axis) and the pytrees
    `vectors`: a (rows, len(vectors)) matrix."""
    columns = []
    for v in vectors:
        leaves = zip(jax.tree.leaves(B), jax.tree.leaves(v), strict=True)
        columns.append(sum(jnp.sum((b * x[None]).reshape(b.shape[0], -1), 1) for b, x in leaves))
    return jnp.stack(columns, 1)


def _combine(c, b):
    """sum_i c_i b_i over the rows of one leaf."""
    return sum(c[i] * b[i] for i in range(b.shape[0]))


def _coefficients(gg, gram, a, age):
    """(gamma, c) with H g = gamma g + sum_i c_i B_i for the L-BFGS matrix H of the stored
    pairs (compact form; module docstring), and the slope g . (-H g). `gg` = g . g, `a` = B g,
    `age`: the pair number in each slot (-1: empty). No pairs, or a direction that does not
    descend: the steepest descent direction of length 1 (gamma = 1 / ||g||, c = 0)."""
    m = age.shape[0]
    valid = age >= 0
    both = valid[:, None] & valid[None, :]
    rows = jnp.concatenate([valid, valid])
    dtype = gram.dtype
    SY, YY = gram[:m, m:], jnp.where(both, gram[m:, m:], 0)  # empty slots may hold old pairs
    a = jnp.where(rows, a, 0)
    empty = jnp.diag(jnp.where(valid, 0.0, 1.0).astype(dtype))
    R = jnp.where(both & (age[:, None] <= age[None, :]), SY, 0) + empty
    D = jnp.where(valid, jnp.diagonal(SY), 0)
    newest = jnp.argmax(age)
    gamma = SY[newest, newest] / jnp.where(valid[newest], YY[newest, newest], 1)
    p = _solve(R, a[:m])
    top = _solve(R.T, D * p + gamma * (YY @ p) - gamma * a[m:])
    c = jnp.where(rows, jnp.concatenate([top, -gamma * p]), 0)
    slope = -(gamma * gg + c @ a)
    steepest = ~jnp.any(valid) | ~(slope < 0) | ~jnp.isfinite(slope)
    unit = 1 / jnp.maximum(jnp.sqrt(gg), jnp.finfo(dtype).tiny)
    gamma = jnp.where(steepest, unit, gamma)
    c = jnp.where(steepest, 0, c)
    return gamma, c, jnp.where(steepest, -unit * gg, slope), steepest


def _solve(R, v):
    """R^-1 v for the m x m matrix R (triangular up to the slots' order; m is tiny)."""
    return jnp.linalg.solve(R, v[:, None])[:, 0]


class _Search(NamedTuple):
    t: jax.Array
    low: jax.Array  # largest step with sufficient decrease so far (0: none)
    high: jax.Array  # smallest step without it (inf: none)
    x: jax.Array  # the last trial point, its value and gradient
    value: jax.Array
    grad: jax.Array
    trials: jax.Array
    done: jax.Array
    final: jax.Array  # the next trial is `low`, taken whatever it shows


def _line_search(vg, x, value, grad, slope, d):
    """Weak Wolfe line search along d from x (value, grad and slope = grad . d there).
    Returns (step, point, value, grad, evaluations, decreased): the accepted point; if no
    trial meets both conditions within TRIALS, the longest that decreased enough (evaluated
    once more: one loop, so the loss is compiled once); if none did, the start."""
    dtype = slope.dtype

    def cond(s):
        return ~s.done & ((s.trials < TRIALS) | s.final)

    def body(s):
        xt = jax.tree.map(lambda x, d: x + s.t * d, x, d)
        vt, gt = vg(xt)
        slope_t = _dot(gt, d)
        # sufficient decrease; or, where values no longer resolve the decrease, its
        # approximate form on the slopes (Hager & Zhang 2005): with the value within
        # NEAR of the start, the slope has not turned by more than (1 - 2 c1)
        exact = vt <= value + C1 * s.t * slope
        near = vt <= value + NEAR * jnp.abs(value)
        decrease = jnp.isfinite(vt) & (exact | near & (slope_t <= (2 * C1 - 1) * slope))
        flat = slope_t >= C2 * slope
        high = jnp.where(decrease, s.high, s.t)
        low = jnp.where(decrease, s.t, s.low)
        quad = -slope * s.t**2 / (2 * (vt - value - slope * s.t))
        shrink = jnp.where(
            jnp.isfinite(quad) & (s.low == 0),
            jnp.clip(quad, 0.1 * s.t, 0.5 * s.t),
            jnp.where(s.low == 0, 0.1 * s.t, (s.low + s.t) / 2),
        )
        grow = jnp.where(jnp.isinf(s.high), 2 * s.t, (s.t + s.high) / 2)
        done = decrease & flat | s.final
        final = ~done & (s.trials + 1 >= TRIALS) & (low > 0)
        t = jnp.where(done, s.t, jnp.where(final, low, jnp.where(decrease, grow, shrink)))
        return _Search(t, low, high, xt, vt, gt, s.trials + 1, done, final)

    one, zero = jnp.asarray(1.0, dtype), jnp.asarray(0.0, dtype)
    inf, no = jnp.asarray(jnp.inf, dtype), jnp.asarray(False)
    start = _Search(one, zero, inf, x, value, grad, jnp.asarray(0), no, no)
    s = jax.lax.while_loop(cond, body, start)
    found = lambda: (s.t, s.x, s.value, s.grad)
    stay = lambda: (zero, x, value, grad)
    t, xt, vt, gt = jax.lax.cond(s.done, found, stay)
    return t, xt, vt, gt, s.trials, s.done


class _State(NamedTuple):
    x: jax.Array
    value: jax.Array
    grad: jax.Array
    gg: jax.Array  # grad . grad
    B: jax.Array  # rows: s of each slot, then y of each slot
    gram: jax.Array  # B B^T
    a: jax.Array  # B grad
    age: jax.Array  # pair number in each slot, -1 empty
    pairs: jax.Array  # pairs stored so far
    step: jax.Array
    evaluations: jax.Array
    stuck: jax.Array  # accepted steps in a row without a lower loss
    moved: jax.Array


def lbfgs(fun, params, tol, max_steps: int, memory_size: int, progress: bool = False):
    """Minimize `fun` from `params` (a pytree) until ||grad|| <= tol(params), max_steps, a
    non-finite loss, or a stall. Returns an `Outcome`."""
    vg = jax.value_and_grad(fun)
    m = memory_size
    dtype = jax.tree.leaves(params)[0].dtype

    def cond(s):
        small = jnp.sqrt(s.gg) <= tol(s.x)
        return (s.step < max_steps) & ~small & jnp.isfinite(s.value) & s.moved

    def body(s):
        # optimization barriers: without them XLA fuses the small m x m algebra into every
        # elementwise pass over the unknowns and recomputes d inside each of its users
        coefficients = _coefficients(s.gg, s.gram, s.a, s.age)
        gamma, c, slope, fresh = jax.lax.optimization_barrier(coefficients)
        d = jax.tree.map(lambda g, b: -(gamma * g + _combine(c, b)), s.grad, s.B)
        d = jax.lax.optimization_barrier(d)
        t, x, value, grad, trials, decreased = _line_search(vg, s.x, s.value, s.grad, slope, d)
        # the pair (t d, grad change) goes into the oldest slot; one that fails the
        # curvature test (s . y > 0) leaves that slot empty
        slot = s.pairs % m
        B = jax.tree.map(
            lambda b, x, x0, g, g0: b.at[slot].set(x - x0).at[m + slot].set(g - g0),
            s.B, x, s.x, grad, s.grad,
        )  # fmt: skip
        B = jax.lax.optimization_barrier(B)
        sx = jax.tree.map(jnp.subtract, x, s.x)
        a = _rows(B, [grad])[:, 0]
        # B s and B y from the carried products: for the rows kept, B s = t B d with
        # B d = -(gamma B g_old + B B^T c) and B y = B grad - B g_old (B g_old: the carried
        # `a`); for the two new rows, s . s, s . y and y . y directly
        row = jnp.arange(2 * m)
        new = row % m == slot
        g_old_s, g_old_g = _dot(sx, s.grad), _dot(grad, s.grad)
        ss, s_grad = _dot(sx, sx), _dot(sx, grad)
        Bs = jnp.where(new, 0, -t * (gamma * s.a + s.gram @ c))
        Bs = Bs.at[slot].set(ss).at[m + slot].set(s_grad - g_old_s)
        By = a - jnp.where(new, jnp.where(row == slot, g_old_s, g_old_g - s.gg), s.a)
        sy = Bs[m + slot]
        store = decreased & (sy > 0) & jnp.isfinite(sy)
        age = jnp.where(fresh, -1, s.age)  # a steepest-descent step forgets the pairs
        age = age.at[slot].set(jnp.where(store, s.pairs, -1))
        gram = s.gram.at[:, slot].set(Bs).at[:, m + slot].set(By)
        gram = gram.at[slot, :].set(Bs).at[m + slot, :].set(By)
        stuck = jnp.where(value < s.value, 0, s.stuck + 1)
        moved = (decreased | ~fresh) & (stuck < STALL_STEPS)
        gg = _dot(grad, grad)
        if progress:
            jax.debug.callback(_progress.report, s.step + 1, value, jnp.sqrt(gg), tol(x))
        return _State(
            x, value, grad, gg, B, gram, a, age, s.pairs + jnp.where(store, 1, 0),
            s.step + 1, s.evaluations + trials, stuck, moved,
        )  # fmt: skip

    value, grad = vg(params)
    zero = jnp.asarray(0)
    B = jax.tree.map(lambda x: jnp.zeros((2 * m, *x.shape), x.dtype), params)
    state = _State(
        params, value, grad, _dot(grad, grad), B, jnp.zeros((2 * m, 2 * m), dtype),
        jnp.zeros(2 * m, dtype), jnp.full(m, -1), zero, zero, jnp.asarray(1), zero,
        jnp.asarray(True),
    )  # fmt: skip
    s = jax.lax.while_loop(cond, body, state)
    grad_norm = jnp.sqrt(s.gg)
    result = outcome_code(grad_norm, tol(s.x), s.value, s.moved)
    return Outcome(s.x, s.value, grad_norm, s.step, result, s.evaluations)
