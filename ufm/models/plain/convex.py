"""The plain cross-entropy UFM solved exactly, as a convex program in the class-mean logits.

derivations/plain_convex.py derives the program and its dual. With mu = sqrt(lambda_W
lambda_H), w_k = n_k/N and Q = Zbar D^{1/2} (Zbar: the K x K class-mean logits W Hbar,
one column per class), every global minimizer of the factorized loss (d >= rank Zbar)
solves

    min_{Q, b}  sum_k w_k ce(Q e_k / sqrt(n_k) + b, k) + mu ||Q||_* + lambda_b/2 ||b||^2

with b = 0 when there is no bias, free when lambda_b = 0. Its Fenchel dual is

    max_{p_k in simplex}  sum_k w_k H(p_k) - ||sum_k w_k (p_k - e_k)||^2 / (2 lambda_b)
    s.t.  || [w_k (p_k - e_k) / sqrt(n_k)]_k ||_op <= mu

(H the entropy; with a free bias the penalty becomes the constraint sum_k w_k p_k = w,
without a bias it is absent). Every dual-feasible point bounds the minimum from below, so
primal minus dual is a certified bound on how far the primal value is from the minimum.

The solver minimizes the smooth factored form Q = A B^T, with mu ||Q||_* replaced by
mu/2 (||A||^2 + ||B||^2) (derivations/plain_convex.py step 3): L-BFGS, then Newton steps,
then one proximal-gradient step that sets the switched-off singular values exactly to zero.
Nothing is assumed of that nonconvex form: the answer is certified by the dual point built
from its gradients (`certificate.certificate` with the class counts as column weights:
softmax columns pulled toward e_k until the operator-norm constraint holds), and used only
if the duality gap is below ``tol`` relative to the value. numpy in float64; the problem has
K^2 + K unknowns, whatever N is.

The same code solves the soft-label program of the next-token UFM (`solve(..., targets=Y)`,
derivations/next_token.py): M weighted columns with probability-vector targets y_m in place
of the one-hot e_k, sum_m w_m CE(Q e_m / sqrt(n_m), y_m) + mu ||Q||_*, Q of size K x M.
"""

import dataclasses

import numpy as np
from numpy.linalg import norm

from .certificate import certificate

GAP_RTOL = 1e-11  # a duality gap below this, relative to max(|value|, 1), certifies the value


@dataclasses.dataclass(frozen=True)
class ConvexSolution:
    """The minimizer of the reduced convex program and its certificate.

    logits: Zbar = Q D^{-1/2}, the class-mean logits W Hbar (K x K, column k = class k;
        K x M with soft targets, column m = column m of the targets), bias excluded.
        b: the bias (None without one; with a free bias only b up to a constant is
        determined, this is the one the solver reached).
    value: the primal objective at (Q, b), the minimum of the plain UFM's loss.
    dual: the dual objective at the dual point built from it (a lower bound on the minimum).
    gap: value - dual >= 0. converged: gap <= tol * max(|value|, 1). status: why it stopped.
    rank: the rank of Zbar (soft-thresholding gives exact zeros).
    certificate: ||grad_Q||_op / mu at (Q, b); <= 1 at the exact minimum.
    """

    logits: np.ndarray
    b: np.ndarray | None
    value: float
    dual: float
    gap: float
    iterations: int
    converged: bool
    status: str
    rank: int
    certificate: float


@dataclasses.dataclass(frozen=True)
class _Program:
    n: np.ndarray  # column weights: class counts (plain) or context frequencies (next-token)
    mu: float
    bias: str  # "none", "free" or "regularized"
    lambda_b: float
    Y: np.ndarray  # targets (K x M): one-hot I_K for the plain UFM, soft in general

    @property
    def w(self) -> np.ndarray:
        return self.n / self.n.sum()

    @property
    def shapes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The shapes of the factors A (K x r) and B (M x r) of Q = A B^T, r = min(K, M)."""
        K, M = self.Y.shape
        return (K, min(K, M)), (M, min(K, M))

    def columns(self, Q: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The class-mean logit columns z_k = Q e_k / sqrt(n_k) + b."""
        return Q / np.sqrt(self.n)[None, :] + b[:, None]

    def smooth(self, Q: np.ndarray, b: np.ndarray):
        """(value, grad_Q, grad_b, softmax columns) of the data term plus the bias penalty."""
        Z = self.columns(Q, b)
        top = Z.max(axis=0)
        E = np.exp(Z - top[None, :])
        total = E.sum(axis=0)
        P = E / total[None, :]
        lse = top + np.log(total)
        fit = np.sum(self.Y * Z, axis=0)  # one-hot: the diagonal of Z
        value = float(self.w @ (lse - fit)) + self.lambda_b / 2 * float(b @ b)
        G = (P - self.Y) * self.w[None, :]  # d value / d z_k, column k
        grad_b = G.sum(axis=1) + self.lambda_b * b if self.bias != "none" else np.zeros_like(b)
        return value, G / np.sqrt(self.n)[None, :], grad_b, P

    def value(self, Q: np.ndarray, b: np.ndarray) -> float:
        nuclear = float(np.linalg.svd(Q, compute_uv=False).sum())
        return self.smooth(Q, b)[0] + self.mu * nuclear


def _shrink(X: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Singular-value soft-thresholding, the proximal map of threshold * ||.||_*."""
    U, s, Vt = np.linalg.svd(X)
    s = np.maximum(s - threshold, 0.0)
    rank = int(np.count_nonzero(s))
    return (U[:, :rank] * s[:rank]) @ Vt[:rank], rank


def _unpack(x: np.ndarray, shapes, has_b: bool):
    (K, r), (M, _) = shapes
    A, B = x[: K * r].reshape(K, r), x[K * r : (K + M) * r].reshape(M, r)
    return A, B, (x[(K + M) * r :] if has_b else np.zeros(K))


def _flat(*parts) -> np.ndarray:
    return np.concatenate([p.ravel() for p in parts])


def _factored(program: _Program):
    """(value, gradient) and Hessian-vector product of the program with Q = A B^T and
    mu ||Q||_* replaced by its variational form mu/2 (||A||^2 + ||B||^2), on the flat
    vector [A, B, b] (derivations/plain_convex.py step 3)."""
    n, shapes, mu, has_b = program.n, program.shapes, program.mu, program.bias != "none"
    root = np.sqrt(n)[None, :]

    def fun(x: np.ndarray):
        A, B, b = _unpack(x, shapes, has_b)
        value, grad_Q, grad_b, _ = program.smooth(A @ B.T, b)
        value += mu / 2 * (float(np.sum(A * A)) + float(np.sum(B * B)))
        parts = [grad_Q @ B + mu * A, grad_Q.T @ A + mu * B] + ([grad_b] if has_b else [])
        return value, _flat(*parts)

    def hessp(x: np.ndarray):
        """The Hessian at x, as a function of the direction."""
        A, B, b = _unpack(x, shapes, has_b)
        _, grad_Q, _, P = program.smooth(A @ B.T, b)

        def apply(v: np.ndarray) -> np.ndarray:
            dA, dB, db = _unpack(v, shapes, has_b)
            dZ = (dA @ B.T + A @ dB.T) / root + db[:, None]
            dG = (P * dZ - P * np.sum(P * dZ, axis=0)[None, :]) * program.w[None, :]
            parts = [dG / root @ B + grad_Q @ dB + mu * dA]
            parts.append((dG / root).T @ A + grad_Q.T @ dA + mu * dB)
            if has_b:
                parts.append(dG.sum(axis=1) + program.lambda_b * db)
            return _flat(*parts)

        return apply

    return fun, hessp


DENSE_NEWTON = 400  # unknowns up to which the Newton system is formed and solved densely


def _newton(fun, hessp, x: np.ndarray, steps: int = 10) -> np.ndarray:
    """Newton steps from a point L-BFGS left near the minimum, kept while they lower the
    gradient norm without raising the value beyond rounding. The Hessian is singular along
    the rotations A -> A R, B -> B R: the step is the least-squares one (dense, small
    problems) or MINRES's (large ones)."""
    value, grad = fun(x)
    for _ in range(steps):
        apply = hessp(x)
        if x.size <= DENSE_NEWTON:
            H = np.stack([apply(e) for e in np.eye(x.size)], axis=1)
            step = -np.linalg.lstsq((H + H.T) / 2, grad, rcond=1e-13)[0]
        else:
            import scipy.sparse.linalg

            H = scipy.sparse.linalg.LinearOperator((x.size, x.size), apply)
            step, _ = scipy.sparse.linalg.minres(H, -grad, rtol=1e-12, maxiter=2000)
        new_value, new_grad = fun(x + step)
        rounding = 4 * np.finfo(float).eps * max(abs(value), 1.0)
        if not (new_value <= value + rounding and norm(new_grad) < 0.5 * norm(grad)):
            break
        x, value, grad = x + step, new_value, new_grad
    return x


def solve(
    counts,
    mu: float,
    bias: str = "none",
    lambda_b: float = 0.0,
    *,
    tol: float = GAP_RTOL,
    seed: int = 0,
    targets=None,
) -> ConvexSolution:
    """Minimize the reduced program (module docstring) for class counts `counts`,
    mu = sqrt(lambda_W lambda_H) and `bias` in ``none``, ``free``, ``regularized``.

    `targets` (K x M, columns probability vectors; None: the one-hot I_K of the plain UFM):
    the soft-label program of the same form, sum_m w_m CE(Q e_m / sqrt(n_m) + b, y_m)
    + mu ||Q||_*, with `counts` the M column weights n_m (any positive scale: w = n/sum n;
    derivations/next_token.py). The logits returned are then K x M."""
    n = np.asarray(counts, dtype=float)
    Y = np.eye(n.size) if targets is None else np.asarray(targets, dtype=float)
    K = Y.shape[0]
    program = _Program(n, float(mu), bias, float(lambda_b) if bias == "regularized" else 0.0, Y)
    rng = np.random.default_rng(seed)
    (_, r), (M, _) = program.shapes
    centred = lambda size: (np.eye(size) - 1 / size)[:, :r]  # one-hot: the simplex ETF's
    x0 = [centred(K) + 1e-2 * rng.standard_normal((K, r))]
    x0 += [centred(M) + 1e-2 * rng.standard_normal((M, r))]
    x0 += [np.log(program.w) if bias == "free" else np.zeros(K)] if bias != "none" else []
    x0 = np.concatenate([p.ravel() for p in x0])
    fun, hessp = _factored(program)
    import scipy.optimize

    res = scipy.optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100_000, "maxfun": 200_000, "ftol": 0.0, "gtol": 0.0, "maxcor": 30},
    )
    A, B, b = _unpack(_newton(fun, hessp, res.x), program.shapes, bias != "none")
    Q = A @ B.T
    # one proximal-gradient step: exact zeros on the switched-off directions (their
    # singular values of Q - N grad_Q sit strictly inside N mu at the minimum)
    _, grad_Q, _, _ = program.smooth(Q, b)
    Q_prox, rank = _shrink(Q - n.sum() * grad_Q, n.sum() * program.mu)
    if program.value(Q_prox, b) <= program.value(Q, b):
        Q = Q_prox
    value = program.value(Q, b)
    Z = program.columns(Q, b)
    bound = certificate("ce", Z, None, program.mu, value, bias, program.lambda_b, n, targets=Y)
    dual, gap = bound["dual"], max(bound["gap"], 0.0)
    converged = gap <= tol * max(abs(value), 1.0)
    return ConvexSolution(
        logits=Q / np.sqrt(n)[None, :],
        b=None if bias == "none" else b,
        value=value,
        dual=dual,
        gap=gap,
        iterations=int(res.nit),
        converged=converged,
        status=("converged: " if converged else "not converged: ")
        + f"duality gap {gap:.3g}"
        + f" (tolerance {tol:g} x max(|value|, 1)); L-BFGS: {res.message}",
        rank=rank,
        certificate=bound["grad_op_over_mu"],
    )


def conic(counts, mu: float, bias: str = "none", lambda_b: float = 0.0):
    """The same program written directly in cvxpy and solved by Clarabel, an interior-point
    conic solver (the route of Hong & Ling 2023): an independent check of `solve`, used by
    tests/test_convex.py and benchmarks/bench_convex.py. Needs cvxpy (the test extra).
    Returns (value, class-mean logits Zbar)."""
    import cvxpy as cp

    n = np.asarray(counts, float)
    K, w = n.size, n / n.sum()
    Q = cp.Variable((K, K))
    Zbar = Q @ np.diag(1 / np.sqrt(n))
    b = cp.Variable(K) if bias != "none" else None
    if b is not None:
        Zbar = Zbar + cp.reshape(b, (K, 1), order="F") @ np.ones((1, K))
    data = sum(w[k] * (cp.log_sum_exp(Zbar[:, k]) - Zbar[k, k]) for k in range(K))
    objective = data + mu * cp.normNuc(Q)
    if bias == "regularized":
        objective = objective + lambda_b / 2 * cp.sum_squares(b)
    problem = cp.Problem(cp.Minimize(objective))
    problem.solve(solver="CLARABEL")
    return problem.value, Q.value @ np.diag(1 / np.sqrt(n))
