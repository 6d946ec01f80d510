"""Batched damped Newton for many tiny problems: the sweep's route for collapsed problems.

A sweep solves thousands of small problems (the plain UFM over its K class means has
K d + d K (+ K) unknowns: 64-68 at K=4, d=8). A vmapped L-BFGS loop runs in lockstep until
its slowest lane finishes, and near a phase boundary one point needs 10-100x the steps of
its neighbours. Here a batch of `lanes` lanes works through a queue of jobs (point,
restart) inside one `lax.while_loop`: when a lane's job stops (converged, stalled, max
steps or non-finite) its result is written at the job's index and the lane loads the next
job, so no lane idles while work remains (`queue_minimize`).

Each lane runs Levenberg-Marquardt damped Newton on the flattened unknowns x: the dense
Hessian H (forward-over-reverse), the step p solving (H + mu I) p = -g by Cholesky (where
H + mu I fails to factor, i.e. is indefinite, mu is raised to max(16 mu, RAISE max diag H)
and, if that fails too, past a Gershgorin bound on -lambda_min(H), and the step
recomputed), accepted when the loss falls by at least ACCEPT of
the decrease the quadratic model predicts, or, at round-off level, when the loss does not
rise beyond rounding and the gradient norm falls. mu follows Nielsen's rule (times
max(1/3, 1 - (2 rho - 1)^3) on acceptance, rho = actual / predicted decrease; times nu,
nu doubling, on rejection), floored at MU_FLOOR x max diag(H). Every taken step lowers the
loss, so a lane leaves a saddle of the non-convex (factorized) objective unless it starts
exactly on one.

A job stops when ||g|| <= its tolerance (the caller's: for the collapsed plain UFM, the
full problem's test at the expanded point), after `max_steps` Newton steps (taken or not),
when its start's loss is non-finite, or after STALL_STEPS rejected steps in a row.
`solve_points` runs the plain sweep's jobs (points x restarts of collapsed problems) and
judges each result on the full problem, as `ufm.solve` does; for the plain MSE UFM it runs
Newton over (W, b) with the features at their ridge optimum (`_plain_mse_eliminated`: half
the unknowns, an eighth of the factorization's work).

Measured on a 2-core CPU (K=4, n=5, d=8, 64 lanes): a lane-step costs ~60-90 us with 64
unknowns (CE; Hessian and Cholesky about equal), CE points take ~14 steps on average
(at most ~25 on a 32 x 32 grid of lambdas in [1e-4, 1]) where L-BFGS needs up to ~900.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from . import _lbfgs
from ._solution import RESULTS
from .solve import starts, tolerance

STALL_STEPS = 30  # rejected steps in a row: the loss cannot be lowered at this precision
MU_START = 1e-3  # damping of a job's first step, relative to max diag(H)
MU_FLOOR = 1e-10  # smallest damping, relative to max diag(H): above its rounding
RAISE = 1e-6  # damping after a failed factorization, at least (relative to max diag(H))
NU_CAP = 2.0**10  # largest factor of one rejection
ACCEPT = 1e-4  # smallest actual / predicted decrease of a taken step
ROUNDOFF = 1e3  # a loss rise within ROUNDOFF x eps x |loss| counts as no rise (rounding)
# why a job stopped (internal; `solve_points` judges the full problem after)
CONVERGED, MAX_STEPS, NONFINITE, STALLED = 0, 1, 2, 3


def _damped_step(g, hess, mu):
    """(p, predicted decrease, ok) per lane: p solves (H + mu I) p = -g; ok is False where
    the Cholesky factorization failed (H + mu I not positive definite in floating point),
    and there p = 0 and the predicted decrease is 0.

    Lane by lane (lax.map), not one batched LAPACK call: jaxlib splits a batched
    factorization or triangular solve over the CPU thread pool and waits for it, and two
    such calls at once (the sweep has a chunk in flight while the next one starts) can
    deadlock a 2-core machine (see `ufm._linalg`)."""
    eye = jnp.eye(g.shape[-1], dtype=g.dtype)

    def one(lane):
        g, hess, mu = lane
        chol = jnp.linalg.cholesky(hess + mu * eye)
        ok = jnp.all(jnp.isfinite(chol))
        chol = jnp.where(ok, chol, eye)
        p = -jax.scipy.linalg.cho_solve((chol, True), g)
        return jnp.where(ok, p, 0.0), ok

    p, ok = jax.lax.map(one, (g, hess, mu))
    # the model's decrease -(g.p + p.H.p/2) equals (mu |p|^2 - g.p) / 2 for this p
    predicted = 0.5 * (mu * jnp.sum(p * p, axis=-1) - jnp.sum(g * p, axis=-1))
    return p, jnp.where(ok, predicted, 0.0), ok


def _propose(g, hess, mu):
    """The damped step of every lane, with mu raised where H + mu I is indefinite (first to
    max(16 mu, RAISE x max diag(H)), then past a Gershgorin bound on -lambda_min(H)):
    (p, predicted decrease, the mu used)."""
    first = _damped_step(g, hess, mu) + (mu,)

    def raised(attempt):
        p, predicted, ok, mu = attempt
        bigger = jnp.maximum(16 * mu, RAISE * _max_diag(hess))
        mu = jnp.where(ok, mu, bigger)
        return _damped_step(g, hess, mu) + (mu,)

    def gershgorin(attempt):
        p, predicted, ok, mu = attempt
        # H + s I is positive definite for s > max_i (sum_j |H_ij| - 2 H_ii)
        diag = jnp.diagonal(hess, axis1=-2, axis2=-1)
        shift = jnp.max(jnp.sum(jnp.abs(hess), axis=-1) - 2 * diag, axis=-1)
        mu = jnp.where(ok, mu, jnp.maximum(2 * mu, 1.01 * shift + mu))
        return _damped_step(g, hess, mu) + (mu,)

    retry = lambda fix, attempt: jax.lax.cond(jnp.all(attempt[2]), lambda a: a, fix, attempt)
    p, predicted, _, mu = retry(gershgorin, retry(raised, first))
    return p, predicted, mu


def _max_diag(hess):
    return jnp.max(jnp.abs(jnp.diagonal(hess, axis1=-2, axis2=-1)), axis=-1)


def _judge(lane, f, g, hess):
    """Take or reject every lane's evaluated trial point (a fresh lane takes its start) and
    update its damping, step count and run of rejections."""
    fresh, norm = lane["fresh"], lambda v: jnp.linalg.norm(v, axis=-1)
    finite = jnp.isfinite(f) & jnp.all(jnp.isfinite(g), -1) & jnp.all(jnp.isfinite(hess), (-2, -1))
    actual, predicted = lane["f"] - f, lane["predicted"]
    eps = jnp.finfo(f.dtype).eps
    sufficient = (actual > 0) & (actual >= ACCEPT * predicted)
    roundoff = (actual >= -ROUNDOFF * eps * jnp.abs(lane["f"])) & (norm(g) < norm(lane["g"]))
    take = fresh | (finite & (predicted > 0) & (sufficient | roundoff))
    rho = actual / jnp.where(predicted > 0, predicted, 1.0)
    shrink = jnp.clip(1 - (2 * rho - 1) ** 3, 1 / 3, 2.0)
    mu = jnp.where(take, lane["mu"] * shrink, lane["mu"] * lane["nu"])
    nu = jnp.where(take, 2.0, jnp.minimum(2 * lane["nu"], NU_CAP))
    pick = lambda new, old: jnp.where(take.reshape(take.shape + (1,) * (new.ndim - 1)), new, old)
    out = {"x": pick(lane["y"], lane["x"]), "f": pick(f, lane["f"]), "g": pick(g, lane["g"])}
    out["hess"] = pick(hess, lane["hess"])
    scale = _max_diag(out["hess"])
    mu = jnp.where(fresh, MU_START * scale, jnp.maximum(mu, MU_FLOOR * scale))
    out["mu"], out["nu"] = mu, jnp.where(fresh, 2.0, nu)
    out["steps"] = lane["steps"] + (~fresh).astype(lane["steps"].dtype)
    out["stuck"] = jnp.where(take, 0, lane["stuck"] + 1)
    return lane | out


def _stopped(lane, tol, active, max_steps):
    """(done, code) per lane: which lanes' jobs stop now, and why."""
    converged = jnp.linalg.norm(lane["g"], axis=-1) <= tol
    nonfinite = ~jnp.isfinite(lane["f"])
    stalled = lane["stuck"] >= STALL_STEPS
    done = active & (converged | nonfinite | stalled | (lane["steps"] >= max_steps))
    code = jnp.where(
        converged,
        CONVERGED,
        jnp.where(nonfinite, NONFINITE, jnp.where(stalled, STALLED, MAX_STEPS)),
    )
    return done, code


def _write(out, job, done, lane, code):
    """Store the stopped lanes' results at their jobs' rows (other lanes write nowhere)."""
    row = jnp.where(done, job, out["x"].shape[0])  # out of range: dropped
    put = lambda array, value: array.at[row].set(value, mode="drop")
    return {
        "x": put(out["x"], lane["x"]),
        "steps": put(out["steps"], lane["steps"]),
        "code": put(out["code"], code),
    }


def _refill(lane, job, next_job, done, jobs: int):
    """Give every stopped lane the next job of the queue (`jobs` when the queue is empty:
    the lane idles); returns (lane, job, next_job)."""
    rank = jnp.cumsum(done) - 1
    job = jnp.where(done, jnp.minimum(next_job + rank, jobs), job)
    lane = lane | {
        "fresh": done,
        "steps": jnp.where(done, 0, lane["steps"]),
        "stuck": jnp.where(done, 0, lane["stuck"]),
    }
    return lane, job, next_job + jnp.sum(done)


def queue_minimize(evaluate, tolerance_of, x0, lanes: int, max_steps: int):
    """Minimize P problems (one per row of x0, (P, n)) with `lanes` lanes at a time.

    evaluate(jobs (B,), x (B, n)) -> (loss (B,), gradient (B, n), Hessian (B, n, n)) of
    each lane's problem at its point; tolerance_of(jobs, x) -> (B,) the gradient norm at
    which each counts as converged. Returns {"x": (P, n) the final points, "steps": (P,)
    Newton steps, "code": (P,) CONVERGED / MAX_STEPS / NONFINITE / STALLED, "iterations":
    the loop's iterations (one evaluation of every lane each)}.
    """
    jobs, n = x0.shape
    lanes = min(lanes, jobs)
    job = jnp.arange(lanes)
    lane = {
        "x": x0[:lanes],
        "y": x0[:lanes],
        "f": jnp.full((lanes,), jnp.inf, x0.dtype),
        "g": jnp.zeros((lanes, n), x0.dtype),
        "hess": jnp.zeros((lanes, n, n), x0.dtype),
        "mu": jnp.ones((lanes,), x0.dtype),
        "nu": jnp.full((lanes,), 2.0, x0.dtype),
        "predicted": jnp.zeros((lanes,), x0.dtype),
        "steps": jnp.zeros((lanes,), jnp.int32),
        "stuck": jnp.zeros((lanes,), jnp.int32),
        "fresh": jnp.ones((lanes,), bool),
    }
    out = {
        "x": jnp.zeros_like(x0),
        "steps": jnp.zeros((jobs,), jnp.int32),
        "code": jnp.full((jobs,), MAX_STEPS, jnp.int32),
    }

    def body(carry):
        lane, job, next_job, out, iterations = carry
        lane = _judge(lane, *evaluate(job, lane["y"]))
        active = job < jobs
        done, code = _stopped(lane, tolerance_of(job, lane["x"]), active, max_steps)
        out = _write(out, job, done, lane, code)
        lane, job, next_job = _refill(lane, job, next_job, done, jobs)
        p, predicted, mu = _propose(lane["g"], lane["hess"], lane["mu"])
        start = x0[jnp.minimum(job, jobs - 1)]
        lane = lane | {
            "y": jnp.where(lane["fresh"][:, None], start, lane["x"] + p),
            "predicted": predicted,
            "mu": mu,
        }
        return lane, job, next_job, out, iterations + 1

    carry = (lane, job, jnp.asarray(lanes), out, jnp.asarray(0))
    carry = jax.lax.while_loop(lambda c: jnp.any(c[1] < jobs), body, carry)
    return carry[3] | {"iterations": carry[4]}


def value_grad_hessian(fun, x):
    """(fun(x), its gradient, its Hessian) of a scalar function of a flat vector."""
    swapped = lambda z: jax.value_and_grad(fun)(z)[::-1]
    grad, along, value = jax.linearize(swapped, x, has_aux=True)
    return value, grad, jax.vmap(along)(jnp.eye(x.shape[0], dtype=x.dtype))


def solve_points(problem_at, dynamic, keys, scales, gtol, lanes: int, max_steps: int):
    """Solve Q stacked problems (`dynamic`: their array leaves, leading axis Q;
    problem_at(leaves) -> the problem) with R restarts each (keys (Q, R, 2), scales (R,))
    on their collapsed problems, as one queue of Q x R jobs; the starts are
    ``starts(problem.collapsed(), keys, scales)`` (for the plain MSE UFM without their
    features, which are eliminated: `_objective`). Every job's point is expanded and judged
    on the full problem (gradient norm <= `ufm.solve.tolerance`); of each point's restarts
    the lowest converged loss is kept (else the lowest finite loss), as
    `ufm.solve.solve_starts` does.

    Returns ({"params", "loss", "grad_norm", "steps", "status" (a RESULTS index),
    "restarts_converged"} per point, the queue loop's iteration count)."""
    objective_at = lambda dyn: _objective(problem_at(dyn).collapsed())
    inits = jax.lax.map(
        lambda dk: objective_at(dk[0])[2](starts(problem_at(dk[0]).collapsed(), dk[1], scales)),
        (dynamic, keys),
    )
    points, restarts = keys.shape[:2]
    _, unravel = ravel_pytree(jax.tree.map(lambda a: a[0, 0], inits))
    x0 = jax.vmap(jax.vmap(lambda p: ravel_pytree(p)[0]))(inits)
    x0 = x0.reshape(points * restarts, -1)
    point_of = jnp.arange(points * restarts) // restarts
    row = lambda job: point_of[jnp.minimum(job, len(point_of) - 1)]
    decay = jax.vmap(lambda dyn: problem_at(dyn).collapsed().weight_decay())(dynamic)

    def evaluate(job, x):
        one = lambda dyn, z: value_grad_hessian(lambda v: objective_at(dyn)[0](unravel(v)), z)
        return jax.vmap(one)(jax.tree.map(lambda a: a[row(job)], dynamic), x)

    def tolerance_of(job, x):
        size = jnp.maximum(jnp.linalg.norm(x, axis=-1), 1.0)
        return gtol * decay[row(job)].astype(x.dtype) * size

    found = queue_minimize(evaluate, tolerance_of, x0, lanes, max_steps)

    def judge(dyn, x, code):
        problem = problem_at(dyn)
        return _judge_full(problem, objective_at(dyn)[1](unravel(x)), code, gtol)

    rows = jax.tree.map(lambda a: a[point_of], dynamic)
    judged = jax.vmap(judge)(rows, found["x"], found["code"]) | {"steps": found["steps"]}
    return _best(judged, points, restarts), found["iterations"]


def _objective(collapsed):
    """(loss, complete, reduce) of the problem Newton runs on: the collapsed problem's loss
    over its parameters, or, for the plain MSE UFM, the loss with its features S
    eliminated (`_plain_mse_eliminated`); complete(unknowns) -> the collapsed problem's
    parameters, reduce(collapsed parameters) -> the unknowns."""
    full = getattr(collapsed, "full", None)
    if type(collapsed).__name__ == "CollapsedPlain" and full.loss_name == "mse":
        return _plain_mse_eliminated(collapsed)
    return collapsed.loss, lambda params: params, lambda params: params


def _plain_mse_eliminated(collapsed):
    """The plain MSE UFM over its class means with S at its ridge optimum given (W, b):

        min_S L_c = (c / 2N) sum_k n_k t_k^T (W W^T + c I_K)^{-1} t_k
                    + lambda_W/2 ||W||^2 (+ lambda_b/2 ||b||^2),

    c = N lambda_H, t_k = e_k - b, the optimum s_k = sqrt(n_k) W^T (W W^T + c I)^{-1} t_k
    (per class: min_m n_k/2N (||W m - t_k||^2 + c ||m||^2) = n_k c/2N t^T (W W^T + cI)^{-1} t).
    Same minimizers in (W, b) as the collapsed problem (variable projection), K d (+ K)
    unknowns instead of 2 K d (+ K); at S = S*(W, b) the gradient in S vanishes, so the
    reduced gradient norm is the collapsed problem's. Solves are an unrolled Cholesky
    (K x K), differentiable in every mode."""
    full = collapsed.full
    counts = np.asarray(full.counts, dtype=float)

    def parts(rest):
        W = rest["W"]
        c = full.N * full.lambda_H.astype(W.dtype)
        eye = jnp.eye(full.K, dtype=W.dtype)
        targets = eye - rest["b"][:, None] if full.bias else eye
        return W, c, _spd_inverse(W @ W.T + c * eye), targets

    def loss(rest):
        W, c, inverse, T = parts(rest)
        weights = jnp.asarray(counts, W.dtype)[None, :]
        value = c / (2 * full.N) * jnp.sum((inverse @ T) * T * weights)
        value = value + full.lambda_W / 2 * jnp.sum(W**2)
        if full.bias:
            value = value + full.lambda_b / 2 * jnp.sum(rest["b"] ** 2)
        return value

    def complete(rest):
        W, _, inverse, T = parts(rest)
        means = W.T @ (inverse @ T)  # W^T A^{-1} T, d x K
        return rest | {"H": means * jnp.asarray(np.sqrt(counts), W.dtype)[None, :]}

    reduce = lambda params: {k: v for k, v in params.items() if k != "H"}
    return loss, complete, reduce


@jax.custom_jvp
def _spd_inverse(A):
    """A^{-1} of a small symmetric positive definite matrix by an unrolled Cholesky (no
    LAPACK call); its derivative -A^{-1} dA A^{-1} is a rule, so every order of
    differentiation costs matrix products only."""
    L = _cholesky(A)
    return _lower_solve(L, _lower_solve(L, jnp.eye(A.shape[0], dtype=A.dtype)), transpose=True)


@_spd_inverse.defjvp
def _spd_inverse_jvp(primals, tangents):
    inverse = _spd_inverse(primals[0])
    return inverse, -inverse @ tangents[0] @ inverse


def _cholesky(A):
    """The lower Cholesky factor of a small SPD matrix, unrolled (no LAPACK call)."""
    n = A.shape[0]
    L = jnp.zeros_like(A)
    for j in range(n):
        v = A[j:, j] - L[j:, :j] @ L[j, :j]
        pivot = jnp.sqrt(v[0])
        L = L.at[j, j].set(pivot).at[j + 1 :, j].set(v[1:] / pivot)
    return L


def _lower_solve(L, B, transpose: bool = False):
    """L^{-1} B (or L^{-T} B) for a small lower-triangular L, unrolled."""
    n = L.shape[0]
    X = jnp.zeros_like(B)
    order = range(n - 1, -1, -1) if transpose else range(n)
    for i in order:
        if transpose:
            row = L[i + 1 :, i] @ X[i + 1 :]
        else:
            row = L[i, :i] @ X[:i]
        X = X.at[i].set((B[i] - row) / L[i, i])
    return X


def _judge_full(problem, collapsed_params, code, gtol):
    """One job's result on the full problem: its expanded params, loss, gradient norm and
    RESULTS index (successful iff the full gradient norm is within `ufm.solve.tolerance`;
    a job that converged on the collapsed problem but not on the full one: stalled)."""
    params = problem.collapsed().expand(collapsed_params)
    loss, grad = jax.value_and_grad(problem.loss)(params)
    grad_norm = _lbfgs.norm(grad)
    tol = tolerance(problem, params, gtol)
    result = _lbfgs.outcome_code(grad_norm, tol, loss, code == MAX_STEPS)
    return {"params": params, "loss": loss, "grad_norm": grad_norm, "status": result._value}


def _best(judged, points: int, restarts: int):
    """Per point, the restart `ufm.solve.solve_starts` keeps: the lowest converged loss,
    else the lowest finite loss; with the count of converged restarts."""
    per_point = jax.tree.map(lambda a: a.reshape(points, restarts, *a.shape[1:]), judged)
    converged = per_point["status"] == RESULTS.successful._value
    loss = jnp.where(jnp.isfinite(per_point["loss"]), per_point["loss"], jnp.inf)
    best = jnp.where(
        jnp.any(converged, axis=1),
        jnp.argmin(jnp.where(converged, loss, jnp.inf), axis=1),
        jnp.argmin(loss, axis=1),
    )
    pick = lambda a: a[jnp.arange(points), best]
    return jax.tree.map(pick, per_point) | {"restarts_converged": jnp.sum(converged, axis=1)}
