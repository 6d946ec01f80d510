"""The claims `ufm verify` checks for the next-token UFM.

Everything here is ufm's own: the model is our last-layer reading of the linguistic-collapse
setting of Wu & Papyan 2024 (arXiv 2405.17767, whose text was not read here), and the
program, the certificate and the one-hot reduction are derived in derivations/next_token.py.
"""

import numpy as np

from ...claims import Claim, Outcome
from ...claims import verdict as _verdict
from ...solve import solve
from .geometry import properties
from .problem import NextTokenProblem

ETF = (
    "ours: balanced one-hot next tokens reduce the next-token UFM to the plain CE UFM with "
    "n = 1 and lambda_H / K, whose minimizer is the simplex ETF (Zhu et al. 2021's closed form "
    "as ufm's plain model has it) [ours: derivation next_token.py step 4]"
)
CONVEX = (
    "ours: with soft targets weighted by the contexts' frequencies the factorization bound "
    "gives a convex program in Q = Z D^(1/2) with a certified dual, attained when d >= its "
    "rank [ours: derivation next_token.py steps 1-3]"
)
NARROW = (
    "ours: below the convex minimizer's rank the program is only a lower bound; the "
    "minimizer's geometry there (row norms against token frequency, interference, GNC2) is "
    "measured, not derived [ours: numerics]"
)
BOUND_RTOL = 1e-9  # the solver's loss may sit this far (relative) below the bound: rounding


def narrow_geometry(problem: NextTokenProblem, restarts: int = 4) -> Outcome:
    """d < rank of the convex minimizer: the program's minimum stays a strict lower bound
    (the best of `restarts` solves is above it) and the unembedding's geometry is reported."""
    bound = problem.bound()
    sol = solve(problem, restarts=restarts)
    if not sol.converged or not bound.converged:
        return Outcome("inconclusive", f"{sol.status}; {bound.status}", "-", "-")
    loss = float(sol.loss)
    g = properties(np.asarray(sol.params["W"]), problem.contexts.token_frequencies)
    above = loss - bound.value
    ok = bound.rank > problem.d and above >= -BOUND_RTOL * abs(bound.value)
    reason = (
        f"convex rank {bound.rank} > d={problem.d}: loss {loss:.10g} is {above:.3g} above the "
        f"bound {bound.value:.10g}; corr(|w_k|, log q_k) {g['norm_logfreq_corr']:.3f}, "
        f"corr(|w_k|, q_k) {g['norm_freq_corr']:.3f}, mean |cos(w_k, w_l)| "
        f"{g['mean_abs_cos']:.3f} (simplex ETF: {1 / (problem.K - 1):.3f}), GNC2 log mean "
        f"{g['gnc2_log_mean']:.4f} var {g['gnc2_log_var']:.3g}, rank W {g['W_rank']}"
    )
    return Outcome(_verdict(ok), reason, "loss > bound, rank > d", f"gap {above:.3g}")


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "next-token-onehot-etf-K4",
        ETF,
        "one-hot balanced next tokens, K=4, d=3 = K-1: the simplex ETF with the plain model's "
        "norms",
        "next-token",
        {"source": "one-hot", "K": 4, "d": 3},
        quick=True,
        restarts=1,
    ),
    Claim(
        "next-token-onehot-etf-K10",
        ETF,
        "one-hot balanced next tokens, K=10, d=12: the simplex ETF, certified",
        "next-token",
        {"source": "one-hot", "K": 10, "d": 12, "lambda_H": 1e-2},
        restarts=2,
    ),
    Claim(
        "next-token-zipf-convex-K16",
        CONVEX,
        "Zipfian soft targets (synthetic order-1 language, K=16, d=16): the solver reaches the "
        "certified convex minimum (|loss gap| <= 1e-9)",
        "next-token",
        {"source": "synthetic", "K": 16, "d": 16},
        restarts=2,
    ),
    Claim(
        "next-token-narrow-K32-d8",
        NARROW,
        "Zipfian soft targets, K=32, d=8 < K: the convex minimizer's rank exceeds d, the solver "
        "stays above the bound; the unembedding's geometry is reported",
        "next-token",
        {"source": "synthetic", "K": 32, "d": 8},
        procedure=narrow_geometry,
        expect="confirmed",
    ),
)
