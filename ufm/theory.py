"""Closed-form pieces shared by models, and the `Theory` record every model returns.

Everything here is numpy in float64, whatever jax's x64 flag says: predictions are small
(K x K) and must not lose digits. Formulas follow ../shared/theory/plain_ufm.md §1, §5, §7.
"""

import dataclasses
from typing import Any

import numpy as np

RANK_RTOL = 1e-12  # singular values below this fraction of the largest are round-off


@dataclasses.dataclass(frozen=True)
class Theory:
    """What theory predicts for one problem.

    regime: ``collapsed``, ``minority_collapse``, ``zero`` or ``not_applicable``.
    geometry: ``simplex_etf``, ``orthogonal_frame``, ``general_orthogonal_frame``,
        ``general_frame``, ``zero``, or None when not applicable.
    loss: the predicted global minimum of the problem's loss (None when not applicable).
    reason: the branch taken, or why the theory does not apply.
    source: paper, theorem and derivation file.
    quantities: named predictions that do not depend on the rotation symmetry
        (Gram matrices ``W_gram`` = W W^T and ``Hbar_gram`` = Hbar^T Hbar, class-mean
        logits ``logits`` = W Hbar, bias ``b`` (``b_centred`` = b - mean(b) where only b up
        to a constant is determined), squared norms ``w_norm2``, ``hbar_norm2``).
    params: one global minimizer realized in the problem's dimensions, or None.
    """

    regime: str
    geometry: str | None
    loss: float | None
    reason: str
    source: str
    quantities: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    params: dict[str, np.ndarray] | None = None

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
        }


def not_applicable(reason: str, source: str) -> Theory:
    return Theory("not_applicable", None, None, reason, source)


def zero_point_gradient_norm(p: np.ndarray, counts: np.ndarray) -> float:
    """Spectral norm of the logit gradient G = (p 1^T - Y)/N at logits p 1^T (plain_ufm.md §7).

    Computed from the K x K matrix G G^T = (N p p^T - p n^T - n p^T + D) / N^2.
    W = H = 0 (with the best bias) is a global minimizer iff this is <= sqrt(lambda_W lambda_H):
    the factorized loss is bounded below by the convex problem in Z = W H for every width d.
    """
    n = counts.astype(float)
    N = n.sum()
    GGt = (N * np.outer(p, p) - np.outer(p, n) - np.outer(n, p) + np.diag(n)) / N**2
    return float(np.sqrt(max(np.linalg.eigvalsh((GGt + GGt.T) / 2).max(), 0.0)))


def realize(
    logits: np.ndarray, counts: np.ndarray, d: int, lambda_W: float, lambda_H: float
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Balanced factors of class-mean logits Zbar = W Hbar, and their Gram matrices.

    With collapsed features Z = Zbar Y and Q = Zbar D^{1/2} = U S V^T, the cheapest
    factorization (plain_ufm.md §1, factorization bound) is
        W    = (lambda_H/lambda_W)^{1/4} U S^{1/2},
        Hbar = (lambda_W/lambda_H)^{1/4} S^{1/2} V^T D^{-1/2},
    so W W^T = sqrt(lambda_H/lambda_W) (Q Q^T)^{1/2} and
    Hbar^T Hbar = sqrt(lambda_W/lambda_H) D^{-1/2} (Q^T Q)^{1/2} D^{-1/2}.
    Needs d >= rank(Zbar); returns W (K, d) and Hbar (d, K) padded with zeros.
    """
    K = logits.shape[0]
    sqrt_n = np.sqrt(counts.astype(float))
    U, S, Vt = np.linalg.svd(logits * sqrt_n[None, :])
    S = _drop_roundoff(S)  # sqrt(1e-16) would put 1e-8 into the factors
    rank = int(np.count_nonzero(S))
    if rank > d:
        raise ValueError(f"d={d} is below the rank {rank} of the predicted logits")
    r = min(K, d)
    W = np.zeros((K, d))
    Hbar = np.zeros((d, K))
    W[:, :r] = (lambda_H / lambda_W) ** 0.25 * U[:, :r] * np.sqrt(S[:r])[None, :]
    Hbar[:r, :] = (lambda_W / lambda_H) ** 0.25 * (np.sqrt(S[:r])[:, None] * Vt[:r]) / sqrt_n
    grams = {"W_gram": W @ W.T, "Hbar_gram": Hbar.T @ Hbar, "logits": W @ Hbar}
    return {"W": W, "Hbar": Hbar}, grams


def _drop_roundoff(S: np.ndarray) -> np.ndarray:
    """Singular values with those below RANK_RTOL times the largest set to exactly 0."""
    return np.where(S > RANK_RTOL * max(S.max(initial=0.0), 1e-300), S, 0.0)


def logits_rank(logits: np.ndarray) -> int:
    return int(np.count_nonzero(_drop_roundoff(np.linalg.svd(logits, compute_uv=False))))
