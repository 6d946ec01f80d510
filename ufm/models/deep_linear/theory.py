"""Closed forms of the deep linear UFM (numpy); derivations/deep_linear.py derives them."""

import numpy as np

SOURCE_MSE = (
    "Dang et al. 2023, arXiv 2301.00437 (deep linear MSE: abstract; official code at commit "
    "0e2a53daa3f3, one weight decay for all layers); derivations/deep_linear.py steps 1-5"
)
SOURCE_MSE_BIAS_IMB = (
    "derivations/deep_linear.py step 2 on the centred labels of derivations/plain_ufm.py step 7 "
    "(ours: unregularized bias, imbalanced)"
)
SOURCE_CE = (
    "the best of the known candidates, derivations/deep_linear.py step 6 (ours); Dang et al. "
    "2023, arXiv 2301.00437 (abstract read: the ETF across layers is global; hypotheses not "
    "read); Garrod & Keating 2024, arXiv 2410.23169 (abstract read: DNC is not generally "
    "optimal; the thresholds K >= 4 with M >= 3, or K >= 6 with M = 2, recalled)"
)
SOURCE_CE_M1 = (
    "Zhu et al. 2021, arXiv 2105.02375 (abstract read; the theorem, recalled as Thm 3.1, and its "
    "hypotheses recalled); derivations/deep_linear.py step 6 at M = 1"
)


# ----------------------------------------------------------------------------------------
# Closed forms (numpy). mu = (lambda_H prod_m lambda_Wm)^{1/(M+1)}.


def mu(lambda_H: float, lambda_W) -> float:
    """(lambda_H prod_m lambda_Wm)^{1/(M+1)}: the only combination the minimum depends on."""
    lam = np.concatenate([[lambda_H], np.atleast_1d(lambda_W)]).astype(float)
    return float(np.exp(np.mean(np.log(lam))))


def beta_star(depth: int) -> float:
    """Dang's threshold on beta_k = b/n_k: class k is off iff beta_k >= beta*_M."""
    M = depth
    return 1.0 if M == 1 else (M - 1) ** ((M - 1) / M) / M


def minority_threshold(N: int, lambda_H: float, lambda_W) -> float:
    """Class k of bias-free MSE is switched off iff n_k <= this count
    (derivations/deep_linear.py step 4).

    M = 1: N^2 lambda_W lambda_H. M >= 2: M^2 N (N lambda_H prod lambda_Wm)^{1/M} /
    (M-1)^{(M-1)/M}; at equality both branches are global (first-order transition).
    """
    lam = np.atleast_1d(np.asarray(lambda_W, dtype=float))
    M = lam.size
    if M == 1:
        return float(N**2 * lam[0] * lambda_H)
    return float(M**2 * N * (N * lambda_H * lam.prod()) ** (1 / M) / (M - 1) ** ((M - 1) / M))


def etf_energy(a, K: int, n: int, mu: float, depth: int):
    """Balanced CE loss of the best simplex-ETF-structured point with margin a
    (derivations/deep_linear.py step 6)."""
    a = np.asarray(a, dtype=float)
    q = 2 / (depth + 1)
    return np.log1p((K - 1) * np.exp(-a)) + (depth + 1) / 2 * (K - 1) * mu * (a * np.sqrt(n)) ** q


def orthoplex_energy(a, K: int, n: int, mu: float, depth: int):
    """Balanced CE loss of the rank-K/2 cross-polytope point (classes k, k + K/2 antipodal)."""
    a = np.asarray(a, dtype=float)
    q = 2 / (depth + 1)
    ce = np.log1p((K - 2) * np.exp(-a) + np.exp(-2 * a))
    return ce + (depth + 1) / 2 * (K / 2) * mu * (2 * a * np.sqrt(n)) ** q


def etf_slope(a, K: int, n: int, mu: float, depth: int):
    """d/da of `etf_energy` (a > 0)."""
    q = 2 / (depth + 1)
    return -(K - 1) / (np.exp(a) + K - 1) + (K - 1) * mu * np.sqrt(n) ** q * a ** (q - 1)


def orthoplex_slope(a, K: int, n: int, mu: float, depth: int):
    """d/da of `orthoplex_energy` (a > 0)."""
    q = 2 / (depth + 1)
    e1, e2 = np.exp(-a), np.exp(-2 * a)
    ce = -((K - 2) * e1 + 2 * e2) / (1 + (K - 2) * e1 + e2)
    return ce + K / 2 * mu * (2 * np.sqrt(n)) ** q * a ** (q - 1)


def _minimize_halfline(energy, slope) -> tuple[float, float]:
    """Global minimum of a smooth energy on a >= 0: a dense grid, then the root of the slope.

    The energies here have at most one interior local minimum besides a = 0, far from the
    grid's ends; a = 0 is always compared. The root of the slope (brentq) pins the
    minimizer to machine precision, which a search on values alone cannot (~sqrt(eps)).
    """
    grid = np.concatenate([[0.0], np.geomspace(1e-6, 300.0, 3000)])
    values = energy(grid)
    i = int(np.argmin(values))
    if i == 0:
        return 0.0, float(values[0])
    lo, hi = grid[max(i - 1, 1)], grid[min(i + 1, grid.size - 1)]
    from scipy.optimize import brentq  # on first use: a slow import

    a = float(brentq(slope, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps))
    return (a, float(energy(a))) if energy(a) < values[0] else (0.0, float(values[0]))


def etf_best(K: int, n: int, mu: float, depth: int) -> tuple[float, float]:
    """(margin, loss) of the best ETF-structured point, a = 0 (the zero solution) included."""
    args = (K, n, mu, depth)
    return _minimize_halfline(lambda a: etf_energy(a, *args), lambda a: etf_slope(a, *args))


def orthoplex_best(K: int, n: int, mu: float, depth: int) -> tuple[float, float]:
    """(a, loss) of the best orthoplex point (even K); a = 0 included."""
    args = (K, n, mu, depth)
    return _minimize_halfline(
        lambda a: orthoplex_energy(a, *args), lambda a: orthoplex_slope(a, *args)
    )


def etf_logits(K: int, a: float) -> np.ndarray:
    return a * (np.eye(K) - 1 / K)


def orthoplex_logits(K: int, a: float) -> np.ndarray:
    half = np.eye(K // 2)
    return a * np.block([[half, -half], [-half, half]])


def etf_beaten(K: int, depth: int) -> bool:
    """Garrod & Keating's regime, where no ETF-structured point is a global minimizer."""
    return (K >= 4 and depth >= 3) or (K >= 6 and depth == 2)
