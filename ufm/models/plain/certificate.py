"""A certificate of global optimality for any point of the plain UFM (CE or MSE, any bias).

derivations/plain_convex.py steps 1-6. With mu = sqrt(lambda_W lambda_H) the factorized loss is
bounded below by the convex program in the logits Z = W H,

    g(Z, b) = (1/N) sum_i loss(z_i + b, y_i) + mu ||Z||_* + lambda_b/2 ||b||^2,

whose Fenchel dual, at per-sample dual vectors g_i (the logit gradients loss'(z_i)), is

    D = -(1/N) sum_i loss*(g_i) - ||(1/N) sum_i g_i||^2 / (2 lambda_b)
        s.t. ||[g_1 ... g_N] / N||_op <= mu

(sum_i g_i = 0 instead of the penalty with a free bias, neither without a bias). The logit
gradients at the point, pulled into the constraint, give a dual-feasible D: the loss is then
at most ``gap`` = loss - D above the global minimum, for every width d. At a global minimum
||G||_op = mu on the active directions and the gap is zero (up to rounding and the solver's
tolerance); at a spurious point the gap stays positive.
"""

import numpy as np
import scipy.special

CERTIFIED_RTOL = 1e-8  # a gap below this, relative to max(|loss|, 1), certifies the point


def _conjugate_sum(loss: str, Y: np.ndarray, t: float, G: np.ndarray, counts: np.ndarray):
    """sum_i loss*(t g_i) over the samples, for the per-column gradients g (columns of G)
    each standing for `counts` samples."""
    if loss == "ce":
        P = Y + t * G  # y + t (p - y): still a probability vector (y one-hot or soft)
        return float(np.sum(scipy.special.xlogy(P, P) @ counts))
    tg = t * G  # MSE: loss(z) = |z - e|^2/2, loss*(g) = |g|^2/2 + g . e
    return float((np.sum(tg * tg, axis=0) / 2 + np.sum(tg * Y, axis=0)) @ counts)


def _gradients(loss: str, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Per-column logit gradients g (K x columns), for one-hot or soft targets Y."""
    if loss == "mse":
        return Z - Y
    return scipy.special.softmax(Z, axis=0) - Y


def _feasible(loss: str, G: np.ndarray, Y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The gradients moved so that sum_i g_i = 0 exactly over the samples (a free bias):
    MSE subtracts their mean; CE mixes every p with one common probability vector, the
    least that removes the defect (at a near-optimal free bias it is ~1e-16)."""
    weights = counts / counts.sum()
    if loss == "mse":
        return G - (G @ weights)[:, None]
    P = G + Y
    w = Y @ weights  # class frequencies: the constraint is the weighted mean of p = w
    delta = P @ weights - w
    if not np.any(delta):
        return G
    # v >= 0 needs theta >= max_j (delta_j / (w_j + delta_j)) over delta_j > 0
    ratio = np.where(delta > 0, delta / (w + delta), 0.0)
    theta = min(1.0, 2 * float(ratio.max()) + 1e-300)
    v = np.clip(w - (1 - theta) * delta / theta, 0.0, None)
    P = (1 - theta) * P + theta * (v / v.sum())[:, None]
    return P - Y


def certificate(
    loss: str,
    Z: np.ndarray,
    labels: np.ndarray,
    mu: float,
    value: float,
    bias: str = "none",
    lambda_b: float = 0.0,
    counts: np.ndarray | None = None,
    *,
    targets: np.ndarray | None = None,
) -> dict[str, float | bool]:
    """The certificate of a point with logits Z (K x N, bias included), labels, and objective
    `value`. ``bias``: ``none``, ``free`` or ``regularized`` (penalty lambda_b). `counts`:
    how many samples each column of Z stands for (class means: the class counts; the
    default is one each), so the same bound serves the reduced convex program.

    Returns ``grad_op`` = ||grad_Z L||_op (the data term's gradient, G = [g_i]/N),
    ``grad_op_over_mu`` (<= 1 at a global minimum), ``dual`` (a lower bound on the global
    minimum), ``gap`` = value - dual and ``certified`` = gap <= CERTIFIED_RTOL max(|value|, 1).

    `targets` (K x columns, each a probability vector) replaces `labels` for soft labels
    (CE(z, y) = logsumexp(z) - y.z): the conjugate at g = p - y is still sum_j p_j log p_j
    and y + t g stays in the simplex (derivations/next_token.py step 2).
    """
    Z = np.asarray(Z, dtype=float)
    K = Z.shape[0]
    counts = np.ones(Z.shape[1]) if counts is None else np.asarray(counts, dtype=float)
    N = counts.sum()
    root = np.sqrt(counts)[None, :]  # a column standing for m samples: sqrt(m) in the norm
    Y = np.eye(K)[np.asarray(labels)].T if targets is None else np.asarray(targets, dtype=float)
    G = _gradients(loss, Z, Y)
    grad_op = float(np.linalg.norm(G * root / N, 2)) if G.size else 0.0
    op = grad_op
    if bias == "free":
        G = _feasible(loss, G, Y, counts)
        op = float(np.linalg.norm(G * root / N, 2))
    t = min(1.0, mu / op) if op > 0 else 1.0
    dual = -_conjugate_sum(loss, Y, t, G, counts) / N
    if bias == "regularized":
        r = t * (G @ counts) / N
        dual -= float(r @ r) / (2 * lambda_b)
    gap = value - dual
    return {
        "grad_op": grad_op,
        "grad_op_over_mu": grad_op / mu,
        "dual": dual,
        "gap": gap,
        "certified": bool(gap <= CERTIFIED_RTOL * max(abs(value), 1.0)),
    }
