"""Closed forms and exact solvers of the mixup UFM; derivations/mixup.py derives them."""

import numpy as np
import scipy.special

SOURCE = (
    "ufm's formulation of the mixup UFM of Fisher, Meng & Papyan 2024, arXiv 2402.06171 "
    "(abstract read; the paper's text was not read)"
)
SOURCE_ETF = f"{SOURCE}; fixed simplex ETF: derivations/mixup.py steps 1-4 and 6 (ours, exact)"
SOURCE_LEARNED_CE = f"{SOURCE}; learned W taken to be a simplex ETF, as the abstract assumes"
SOURCE_LEARNED_MSE = f"{SOURCE}; learned W: derivations/mixup.py step 7 (ours, exact)"
ROUNDOFF = 64 * np.finfo(float).eps  # a gradient of CE on soft labels this small is exact
NEWTON_STEPS = 200  # damped Newton on a strictly convex problem: quadratic once steps are full


# ----------------------------------------------------------------------------------------
# Columns


# ----------------------------------------------------------------------------------------
# Closed forms (numpy), fixed simplex-ETF classifier of row norm r, lambda_bar = N lambda_H.


def kappa(K: int, r: float, lambda_bar: float) -> float:
    """kappa = r^2 K / ((K-1) lambda_bar): the centred logits solve z = kappa (y~ - p)."""
    return r**2 * K / ((K - 1) * lambda_bar)


def ce_logits(targets: np.ndarray, kappa: float, start: np.ndarray | None = None) -> np.ndarray:
    """Centred logits z (K, M) minimizing phi(z) = CE(z, y~) + ||z||^2 / (2 kappa) for each
    column of `targets` (K, M): Newton's method with a backtracking (Armijo) line search on
    a strictly convex problem, so it converges from z = 0 for every K and kappa (a full
    Newton step alone cycles for K >= 6 and large kappa), to machine precision. `start`
    (K, M): logits to start from (e.g. the solution at a nearby kappa).

    Tiny lambda (kappa up to 1e17 and beyond) works too: the steps stay in 1-perp (the
    minimizer is centred; along 1 the curvature is only 1/kappa), the gradient and Hessian
    are formed without cancellation, the Armijo test allows phi's round-off, and the
    iteration stops once the gradient is at round-off (steps along directions of curvature
    ~e^-20 never shrink below 1e-12 there, and do not change phi)."""
    Y = np.asarray(targets, dtype=float).T  # (M, K)
    Z = np.zeros_like(Y) if start is None else np.array(start, dtype=float).T
    Z = Z - Z.mean(axis=1, keepdims=True)
    Q = centred_basis(Y.shape[1])
    for _ in range(NEWTON_STEPS):
        grad, step = _newton_step(Z, Y, kappa, Q)
        at_roundoff = np.max(np.abs(grad), axis=1) <= ROUNDOFF  # its terms are <= 1 in size
        slope = np.sum(grad * step, axis=1)  # > 0: -step is a descent direction
        value, size = _phi(Z, Y, kappa)
        t = np.ones(len(Z))
        for _ in range(60):
            trial = _phi(Z - t[:, None] * step, Y, kappa)[0]
            short = trial > value - 1e-4 * t * slope + 8 * np.finfo(float).eps * size
            if not short.any():
                break
            t = np.where(short, t / 2, t)
        Z = Z - t[:, None] * step
        # a full Newton step this small leaves an error of its square: done
        small = np.max(np.abs(step), axis=1) <= 1e-12 * max(1.0, np.max(np.abs(Z)))
        if np.all(((t == 1) & small) | at_roundoff):
            break
    return Z.T


def _phi(Z: np.ndarray, Y: np.ndarray, kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """phi per row of Z (M, K), and the size of its terms (its round-off is eps times it)."""
    lse = scipy.special.logsumexp(Z, axis=1)
    fit = np.sum(Y * Z, axis=1)
    quad = np.sum(Z**2, axis=1) / (2 * kappa)
    return lse - fit + quad, np.abs(lse) + np.abs(fit) + quad


def _newton_step(Z, Y, kappa: float, Q) -> tuple[np.ndarray, np.ndarray]:
    """(gradient, Newton step) of phi at the rows of Z, the step solved in 1-perp (basis Q).

    1 - p_k is summed from the other probabilities, not subtracted from 1, so the gradient
    and the Hessian diagonal p_k (1 - p_k) keep their relative accuracy when one class
    takes nearly all the probability. Eigenvalues are floored at max(1/kappa, eps * the
    largest): the true ones are >= 1/kappa, and ones below round-off are not resolved."""
    K = Y.shape[1]
    others = 1 - np.eye(K)
    P = scipy.special.softmax(Z, axis=1)
    rest = P @ others  # 1 - p_k
    grad = np.where(P > 0.5, Y @ others - rest, P - Y) + Z / kappa
    hess = -P[:, :, None] * P[:, None, :]
    hess[:, np.arange(K), np.arange(K)] = P * rest
    w, V = np.linalg.eigh(Q.T @ hess @ Q + np.eye(K - 1) / kappa)
    floor = np.maximum(1 / kappa, np.finfo(float).eps * w[:, -1:])
    reduced = np.einsum(
        "mij,mj->mi", V, np.einsum("mji,mj->mi", V, grad @ Q) / np.maximum(w, floor)
    )
    return grad, reduced @ Q.T


def centred_basis(K: int) -> np.ndarray:
    """An orthonormal basis (K, K-1) of the vectors whose entries sum to zero."""
    return np.linalg.qr(np.eye(K) - 1 / K)[0][:, : K - 1]


def same_class_gap(K: int, kappa: float) -> float:
    """g* in (0, kappa): the root of g (e^g + K - 1) = kappa K (derivations/mixup.py step 3);
    the same-class feature is h = (K-1) g* / (r^2 K) w_c for every lam."""
    f = lambda g: g * (np.exp(g) + K - 1) - kappa * K
    # the root is below kappa and, once kappa K > 1, below log(kappa K) + 1 (there
    # g e^g >= kappa K already): a bracket whose ends never overflow e^g
    hi = min(kappa, np.log(kappa * K) + 1) if kappa * K > 1 else kappa
    from scipy.optimize import brentq  # on first use: a slow import

    return brentq(f, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps)


def mixed_gaps(K: int, kappa: float, lam: float) -> tuple[float, float]:
    """(u, v) = (z_c1 - z_o, z_c2 - z_o) for a different-class column (K >= 3), from
    u = kappa (lam - (e^u - 1)/D), v = kappa (1 - lam - (e^v - 1)/D), D = e^u + e^v + K - 2."""
    y = np.zeros((K, 1))
    y[0, 0], y[1, 0] = lam, 1 - lam
    z = ce_logits(y, kappa)[:, 0]
    return float(z[0] - z[2]), float(z[1] - z[2])


def mse_feature_scale(K: int, r: float, lambda_bar: float) -> float:
    """MSE-mixup under a fixed ETF: h = (lam w_c1 + (1-lam) w_c2) / (r^2 K/(K-1) + lambda_bar)."""
    return 1 / (r**2 * K / (K - 1) + lambda_bar)
