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


def _conjugate_sum(loss: str, Z: np.ndarray, Y: np.ndarray, t: float, G: np.ndarray):
    """sum_i loss*(t g_i) for the per-sample gradients g_i (columns of G), and those g_i."""
    if loss == "ce":
        P = Y + t * G  # e_y + t (p - e_y): still a probability vector
        return float(np.sum(scipy.special.xlogy(P, P)))
    tg = t * G  # MSE: loss(z) = |z - e|^2/2, loss*(g) = |g|^2/2 + g . e
    return float(np.sum(tg * tg) / 2 + np.sum(tg * Y))


def _gradients(loss: str, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Per-sample logit gradients g_i (K x N)."""
    if loss == "mse":
        return Z - Y
    return scipy.special.softmax(Z, axis=0) - Y


def _feasible(loss: str, G: np.ndarray, Y: np.ndarray, free_bias: bool) -> np.ndarray:
    """The per-sample gradients moved so that sum_i g_i = 0 exactly (free bias): MSE
    subtracts their mean; CE mixes every p_i with one common probability vector, the least
    that removes the defect."""
    if not free_bias:
        return G
    if loss == "mse":
        return G - G.mean(axis=1, keepdims=True)
    N = G.shape[1]
    P = G + Y
    w = Y.mean(axis=1)  # class frequencies: the constraint is mean_i p_i = w
    delta = P.mean(axis=1) - w
    if not np.any(delta):
        return G
    ratio = np.where(delta > 0, delta / (w + delta), 0.0)
    theta = min(1.0, 2 * float(ratio.max()) + 1e-300)
    v = np.clip(w - (1 - theta) * delta / theta, 0.0, None)
    P = (1 - theta) * P + theta * (v / v.sum())[:, None]
    assert P.shape[1] == N
    return P - Y


def certificate(
    loss: str,
    Z: np.ndarray,
    labels: np.ndarray,
    mu: float,
    value: float,
    bias: str = "none",
    lambda_b: float = 0.0,
) -> dict[str, float | bool]:
    """The certificate of a point with logits Z (K x N, bias included), labels, and objective
    `value`. ``bias``: ``none``, ``free`` or ``regularized`` (penalty lambda_b).

    Returns ``grad_op`` = ||grad_Z L||_op (the data term's gradient, G = [g_i]/N),
    ``grad_op_over_mu`` (<= 1 at a global minimum), ``dual`` (a lower bound on the global
    minimum), ``gap`` = value - dual and ``certified`` = gap <= CERTIFIED_RTOL max(|value|, 1).
    """
    Z = np.asarray(Z, dtype=float)
    K, N = Z.shape
    Y = np.eye(K)[np.asarray(labels)].T
    G = _gradients(loss, Z, Y)
    grad_op = float(np.linalg.norm(G / N, 2)) if min(K, N) else 0.0
    G = _feasible(loss, G, Y, bias == "free")
    op = float(np.linalg.norm(G / N, 2))
    t = min(1.0, mu / op) if op > 0 else 1.0
    dual = -_conjugate_sum(loss, Z, Y, t, G) / N
    if bias == "regularized":
        r = t * G.mean(axis=1)
        dual -= float(r @ r) / (2 * lambda_b)
    gap = value - dual
    return {
        "grad_op": grad_op,
        "grad_op_over_mu": grad_op / mu,
        "dual": dual,
        "gap": gap,
        "certified": bool(gap <= CERTIFIED_RTOL * max(abs(value), 1.0)),
    }
