"""Closed-form pieces shared by models, and the `Theory` record every model returns.

Everything here is numpy in float64, whatever jax's x64 flag says: predictions are small
(K x K) and must not lose digits. Formulas: derivations/plain_ufm.py.
"""

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from .errors import InputError

RANK_RTOL = 1e-12  # singular values below this fraction of the largest are round-off
TIE_RTOL = 1e-9  # singular values of the labels this close count as equal (eigh: ~1e-15)


@dataclasses.dataclass(frozen=True)
class Theory:
    """What theory predicts for one problem.

    regime: ``collapsed``, ``minority_collapse``, ``zero`` or ``not_applicable``.
    geometry: ``simplex_etf``, ``orthogonal_frame``, ``general_orthogonal_frame``,
        ``general_frame``, ``uncentred_etf`` (a simplex ETF plus a common row: dhkd),
        ``tight_frame`` (K > d class means spanning R^d with
        Hbar Hbar^T proportional to I_d, any such frame: not unique), ``zero``, or None when
        not applicable.
    loss: the predicted global minimum of the problem's loss (None when not applicable).
    reason: the branch taken, or why the theory does not apply.
    source: paper, theorem and derivation file.
    quantities: named predictions that do not depend on the rotation symmetry
        (Gram matrices ``W_gram`` = W W^T and ``Hbar_gram`` = Hbar^T Hbar, class-mean
        logits ``logits`` = W Hbar, bias ``b`` (``b_centred`` = b - mean(b) where only b up
        to a constant is determined), squared norms ``w_norm2``, ``hbar_norm2``). Where the
        minimizer is not unique beyond rotations (which classes share a narrow width), only
        quantities common to all minimizers are given, e.g. ``logits_sv``, the singular
        values of W Hbar.
    params: one global minimizer realized in the problem's dimensions, or None.
    layers: for deep models, one dict per layer m = 1..M of predictions that the layer's
        factors and features must match: ``W_sv`` (singular values of W_m), ``W_norm2``,
        ``Hbar_gram`` (class means of the layer-m features H_m = W_{m-1} ... W_1 H_1) and
        ``head_gram`` (Gram of W_M ... W_m).
    certificate: where the prediction is a convex program's numerical solution, how it is
        certified: ``duality_gap`` (value minus a dual bound: the value is within it of the
        minimum), ``dual``, ``rank`` and ``grad_op_over_mu``; None for closed forms.
    """

    regime: str
    geometry: str | None
    loss: float | None
    reason: str
    source: str
    quantities: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    params: dict[str, np.ndarray] | None = None
    layers: tuple[dict[str, np.ndarray], ...] = ()
    certificate: dict[str, float] | None = None

    @property
    def applicable(self) -> bool:
        return self.regime != "not_applicable"

    def summary(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "regime": self.regime,
            "geometry": self.geometry,
            "reason": self.reason,
            "source": self.source,
            "certificate": self.certificate,
        }


def not_applicable(reason: str, source: str) -> Theory:
    return Theory("not_applicable", None, None, reason, source)


def zero_point_gradient_norm(p: np.ndarray, counts: np.ndarray) -> float:
    """Spectral norm of the logit gradient G = (p 1^T - Y)/N at logits p 1^T
    (derivations/plain_ufm.py step 9).

    Computed from the K x K matrix G G^T = (N p p^T - p n^T - n p^T + D) / N^2.
    W = H = 0 (with the best bias) is a global minimizer iff this is <= sqrt(lambda_W lambda_H):
    the factorized loss is bounded below by the convex problem in Z = W H for every width d.
    """
    n = counts.astype(float)
    N = n.sum()
    GGt = (N * np.outer(p, p) - np.outer(p, n) - np.outer(n, p) + np.diag(n)) / N**2
    return float(np.sqrt(max(np.linalg.eigvalsh((GGt + GGt.T) / 2).max(), 0.0)))


def realize(
    logits: np.ndarray, counts: np.ndarray, d: int, lambdas: tuple[float, ...]
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """The cheapest factors of class-mean logits Zbar = X_M ... X_1 Hbar, and their Grams.

    `lambdas` = (lambda_H, lambda_W1, ..., lambda_WM): the penalty of each factor, features
    first; M = 1 is the plain UFM. With collapsed features Z = Zbar Y, the factorization
    bound (derivations/deep_linear.py steps 1 and 5; derivations/plain_ufm.py step 1 for
    M = 1) is attained by balanced factors
    with chained singular vectors: if Q = Zbar D^{1/2} = U S V^T, factor j has singular
    values S^{1/(M+1)} (mu/lambda_j)^{1/2}, mu = (prod lambda_j)^{1/(M+1)}, so
        Hbar = E S^{1/(M+1)} c_0 V^T D^{-1/2},  X_j = E S^{1/(M+1)} c_j E^T,
        X_M = U S^{1/(M+1)} c_M E^T,  c_j = (mu/lambda_j)^{1/2},
    with E the first rank(Q) columns of the d x d identity. Needs d >= rank(Zbar).
    Returns [Hbar (d, K), X_1, ..., X_M] (X_M is K x d) and the Grams of the product
    W = X_M ... X_1: ``W_gram``, ``Hbar_gram``, ``logits``.
    """
    K = logits.shape[0]
    sqrt_n = np.sqrt(counts.astype(float))
    U, S, Vt = np.linalg.svd(logits * sqrt_n[None, :])
    S = _drop_roundoff(S)  # a root of 1e-16 would put 1e-8 into the factors
    rank = int(np.count_nonzero(S))
    if rank > d:
        raise InputError(f"d={d} is below the rank {rank} of the predicted logits")
    lam = np.asarray(lambdas, dtype=float)
    depth = lam.size - 1
    mu = float(np.exp(np.mean(np.log(lam))))
    r = min(S.size, d)  # S has min(rows, columns) entries
    root = S[:r] ** (1 / (depth + 1))
    scale = np.sqrt(mu / lam)
    Hbar = np.zeros((d, logits.shape[1]))  # one column per class (or per weighted column)
    Hbar[:r] = (scale[0] * root[:, None] * Vt[:r]) / sqrt_n
    factors = [Hbar]
    for j in range(1, depth):
        X = np.zeros((d, d))
        X[range(r), range(r)] = scale[j] * root
        factors.append(X)
    last = np.zeros((K, d))
    last[:, :r] = scale[-1] * U[:, :r] * root[None, :]
    factors.append(last)
    W = product(factors[1:])
    grams = {"W_gram": W @ W.T, "Hbar_gram": Hbar.T @ Hbar, "logits": W @ Hbar}
    return factors, grams


def product(matrices: list[np.ndarray]) -> np.ndarray:
    """X_M ... X_1 for matrices = [X_1, ..., X_M]."""
    out = matrices[-1]
    for X in reversed(matrices[:-1]):
        out = out @ X
    return out


def direction_minimizer(s: np.ndarray, N: int, mu: float, depth: int):
    """Global minimizer of the scalar problem of one singular direction
    (derivations/deep_linear.py steps 2-3).

        psi(z) = (s - z)^2/(2N) + (M+1)/2 mu z^{2/(M+1)},  z >= 0,  M = depth.

    With a = z/s and gamma = N mu s^{-2M/(M+1)}, psi = s^2/(2N) g(a) where
    g(a) = (1 - a)^2 + (M+1) gamma a^{2/(M+1)}, stationary where (1 - a) a^p = gamma,
    p = (M-1)/(M+1) (derivations/deep_linear.py). M = 1: a = max(0, 1 - gamma) (soft
    threshold). M >= 2: (1 - a) a^p peaks at a_m = (M-1)/(2M); the largest root on
    [a_m, 1] is the only candidate besides a = 0, and it is kept iff g(a) < g(0) = 1, i.e.
    iff a > (M-1)/M (the first-order transition at gamma* = h((M-1)/M)). At the tie the zero
    branch is returned. Returns (a, psi_min) elementwise; s = 0 gives (0, 0).
    """
    s = np.atleast_1d(np.asarray(s, dtype=float))
    a = np.zeros_like(s)
    for i, si in enumerate(s):
        if si > 0:
            a[i] = _own_fraction(N * mu * si ** (-2 * depth / (depth + 1)), depth)
    value = (s - a * s) ** 2 / (2 * N) + (depth + 1) / 2 * mu * (a * s) ** (2 / (depth + 1))
    return a, value


def _own_fraction(gamma: float, depth: int) -> float:
    if depth == 1:
        return max(0.0, 1.0 - gamma)
    p = (depth - 1) / (depth + 1)
    h = lambda a: (1 - a) * a**p - gamma
    a_m = (depth - 1) / (2 * depth)
    if h(a_m) < 0:
        return 0.0
    from scipy.optimize import brentq  # on first use: scipy.optimize costs ~0.3 s to import

    a = brentq(h, a_m, 1.0, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    g = (1 - a) ** 2 + (depth + 1) * gamma * a ** (2 / (depth + 1))
    return a if g < 1 else 0.0


class SpectralMSE(NamedTuple):
    """What `spectral_mse` returns."""

    logits: np.ndarray  # class-mean logits Zbar (K, K), one realization
    loss: float  # the minimum
    active: int  # directions kept and switched on
    nonzero: int  # nonzero singular values of the target
    b: np.ndarray | None  # the bias, or None without one
    cut: int = 0  # directions on at any width but switched off because width < their number
    tie: bool = False  # the width cuts through equal singular values: Zbar is not unique


def spectral_mse(counts: np.ndarray, mu: float, depth: int, bias: bool, width: int | None = None):
    """MSE class-mean logits, minimum and active directions (derivations/deep_linear.py steps 2-5).

    Without bias the target is Y: one direction per class, s_k = sqrt(n_k), aligned with
    e_k, so Zbar = diag(a_k). With an unregularized bias b = n/N the target is the centred
    labels Y_c, Y_c Y_c^T = D - n n^T/N = U S^2 U^T, and Z = A Y_c with
    A = sum_i a_i u_i u_i^T, so Zbar = A (I - n 1^T/N). Each direction's own fraction a_i
    and value come from `direction_minimizer`.

    `width` (depth 1 only; the feature dimension d): Z = W H has rank <= d, so at most d
    directions can be on. By von Neumann's trace inequality the rank-constrained optimum
    keeps the d largest singular values of the target (the gain of keeping a direction,
    (s - N mu)^2/(2N), grows with s) and the others take their zero-branch value s^2/(2N)
    (team derivation; derivations/plain_ufm.py steps 10-11). Where the cut falls between
    equal singular values (balanced classes, or tied counts) any unit vector of their
    singular space may be kept: the realization here keeps the first in a stable order, and
    ``tie`` says that only rotation- and choice-invariant quantities are determined.
    """
    n = counts.astype(float)
    N = n.sum()
    K = n.size
    if width is not None and depth != 1:
        raise InputError("spectral_mse: width is derived for depth 1 only")
    if not bias:
        U, s, nonzero = np.eye(K), np.sqrt(n), K
    else:
        evals, U = np.linalg.eigh(np.diag(n) - np.outer(n, n) / N)
        on = evals > 1e-12 * evals.max()  # D - n n^T/N always has the null vector 1
        s, nonzero = np.where(on, np.sqrt(np.clip(evals, 0, None)), 0.0), int(np.sum(on))
    a, value = direction_minimizer(s, int(N), mu, depth)
    keep, cut, tie = _widest(s, a, width)
    a = np.where(keep, a, 0.0)
    value = np.where(keep, value, s**2 / (2 * N))
    A = (U * a) @ U.T
    b = None
    if bias:
        A, b = A @ (np.eye(K) - np.outer(n, np.ones(K)) / N), n / N
    return SpectralMSE(A, float(value.sum()), int(np.sum(a > 0)), nonzero, b, cut, tie)


def _widest(s: np.ndarray, a: np.ndarray, width: int | None) -> tuple[np.ndarray, int, bool]:
    """(kept directions, how many switched-on ones the width cuts, whether the cut falls
    between equal singular values). The on directions are the largest s (a is monotone)."""
    on = int(np.sum(a > 0))
    if width is None or on <= width:
        return np.ones(s.size, bool), 0, False
    order = np.argsort(-s, kind="stable")
    keep = np.zeros(s.size, bool)
    keep[order[:width]] = True
    tie = bool(np.isclose(s[order[width - 1]], s[order[width]], rtol=TIE_RTOL, atol=0.0))
    return keep, on - width, tie


def _drop_roundoff(S: np.ndarray) -> np.ndarray:
    """Singular values with those below RANK_RTOL times the largest set to exactly 0."""
    return np.where(S > RANK_RTOL * max(S.max(initial=0.0), 1e-300), S, 0.0)


def logits_rank(logits: np.ndarray) -> int:
    return int(np.count_nonzero(_drop_roundoff(np.linalg.svd(logits, compute_uv=False))))


def layer_quantities(layer: dict[str, Any], labels: np.ndarray, K: int) -> dict[str, np.ndarray]:
    """The rotation-invariant quantities of one layer, named as in `Theory.layers`."""
    W = np.asarray(layer["W"], dtype=float)
    H = np.asarray(layer["H"], dtype=float)
    head = np.asarray(layer["head"], dtype=float)
    counts = np.bincount(labels, minlength=K)
    Hbar = (H @ np.eye(K)[labels]) / counts[None, :]
    sv = np.linalg.svd(W, compute_uv=False)[: min(K, *W.shape)]
    return {
        "W_sv": sv,
        "W_norm2": np.array(np.sum(W**2)),
        "Hbar_gram": Hbar.T @ Hbar,
        "head_gram": head @ head.T,
    }
