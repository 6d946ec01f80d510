"""The next-token UFM's certified minimum: the weighted soft-label convex program.

derivations/next_token.py. With mu = sqrt(lambda_W lambda_H), D = diag(pi) and
Q = Z D^{1/2} (Z = W H, K x M), the factorization bound lambda_W/2 ||W||^2 + lambda_H/2
||H D^{1/2}||^2 >= mu ||W H D^{1/2}||_* gives

    min_Q  sum_m pi_m CE(Q e_m / sqrt(pi_m), p_m) + mu ||Q||_*,

a lower bound on the UFM's loss for every width d, attained (the UFM's minimum) when
d >= rank(Q*). It is the plain UFM's program (`ufm.models.plain.convex`) with soft targets
and the contexts' frequencies as column weights, solved by the same code and certified by
the same duality gap. The balanced one-hot case is the plain CE UFM with n = 1 and
lambda_H(plain) = lambda_H / K (step 4): its simplex ETF, in closed form.
"""

import dataclasses
import functools

import numpy as np

from ... import _theory as th
from ..plain import convex

SOURCE = (
    "ours: the next-token UFM (a free feature per context, soft next-token targets weighted "
    "by the contexts' frequencies) and its convex program, derivations/next_token.py steps 1-3; "
    "after the setting of Wu & Papyan 2024, arXiv 2405.17767 (linguistic collapse)"
)
SOURCE_ETF = (
    "ours: one-hot balanced targets reduce to the plain CE UFM (n = 1, lambda_H / K), whose "
    "minimizer is the simplex ETF (derivations/next_token.py step 4; Zhu et al. 2021)"
)


@dataclasses.dataclass(frozen=True)
class Bound:
    """The convex program's solution: ``value`` (its minimum, certified to ``gap``),
    ``logits`` (K x M), ``rank``, ``dual``, ``gap``, ``converged``, ``status``,
    ``grad_op_over_mu``."""

    value: float
    logits: np.ndarray
    rank: int
    dual: float
    gap: float
    converged: bool
    status: str
    grad_op_over_mu: float

    def certificate(self) -> dict[str, float]:
        return {
            "duality_gap": self.gap,
            "dual": self.dual,
            "rank": self.rank,
            "grad_op_over_mu": self.grad_op_over_mu,
        }


@functools.lru_cache(maxsize=32)
def _cached(targets_bytes, shape, weights_bytes, mu: float) -> Bound:
    targets = np.frombuffer(targets_bytes).reshape(shape)
    weights = np.frombuffer(weights_bytes)
    sol = convex.solve(weights, mu, "none", targets=targets)
    return Bound(sol.value, sol.logits, sol.rank, sol.dual, sol.gap, sol.converged,
                 sol.status, sol.certificate)  # fmt: skip


def convex_bound(targets: np.ndarray, weights: np.ndarray, mu: float) -> Bound:
    """The minimum of the convex program (module docstring) for these targets (K x M) and
    context weights (M,), cached by value (a solve, a check and a report share it)."""
    targets = np.ascontiguousarray(targets, dtype=float)
    weights = np.ascontiguousarray(weights, dtype=float)
    return _cached(targets.tobytes(), targets.shape, weights.tobytes(), float(mu))


def realize(bound: Bound, weights: np.ndarray, d: int, lambda_W: float, lambda_H: float):
    """One minimizer (W (K x d), H (d x M)) of the UFM attaining the bound (d >= rank):
    the balanced factorization of Q = Z D^{1/2} (`ufm._theory.realize` with the weights as
    counts, which is the per-column penalty lambda_H/2 pi_m ||h_m||^2)."""
    (H, W), _ = th.realize(bound.logits, np.asarray(weights, float), d, (lambda_H, lambda_W))
    return W, H


def plain_mapping(K: int, d: int, lambda_W: float, lambda_H: float) -> dict:
    """The plain CE UFM with the same minimizer as the one-hot balanced next-token UFM:
    ``ufm.make("plain", **plain_mapping(...))`` (derivations/next_token.py step 4)."""
    return {"loss": "ce", "K": K, "n": 1, "d": d, "lambda_W": lambda_W, "lambda_H": lambda_H / K}
