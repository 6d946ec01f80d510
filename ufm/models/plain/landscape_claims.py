"""The plain UFM's landscape claim (`ufm.landscape`): Zhu et al. 2021's benign landscape.

Exported as `CLAIMS`; ``claims.py`` adds them to the model's catalog.
"""

from ...claims import Claim, Outcome
from ...claims import verdict as _verdict
from ...landscape import landscape, zero_point

RESTARTS = 64
THEORY_RTOL = 1e-9  # the global minimum found against the closed form (`ufm.check`'s)


def benign(problem) -> Outcome:
    """Zhu et al.: every critical point is a global minimizer (a simplex ETF) or a strict
    saddle. Confirmed when the restarts reach no spurious or degenerate minimum, the global
    one matches the closed form, and W = H = 0 (critical: the gradient of every term of
    the loss vanishes there) has a negative Hessian eigenvalue."""
    result = landscape(problem, RESTARTS, points={"zero": zero_point(problem)})
    zero = result.points[0]
    bad = result.of_kind("spurious_minimum") + result.of_kind("degenerate")
    best = result.of_kind("global_minimum")
    theory = result.theory_loss
    matches = (
        bool(best)
        and theory is not None
        and abs(best[0].loss - theory) <= THEORY_RTOL * abs(theory)
    )
    if result.converged < result.restarts // 2:
        return Outcome("inconclusive", f"{result.converged} of {result.restarts} restarts "
                       "converged", "benign", "-")  # fmt: skip
    ok = not bad and matches and zero.stationary and zero.kind == "saddle"
    reason = (
        f"{result.converged}/{result.restarts} restarts converged: {result.describe()}; "
        f"closed form {theory}; zero point gradient {zero.grad_norm:.1e}, smallest "
        f"Hessian eigenvalue {zero.spectrum.smallest[0]:.4g}"
    )
    found = f"{len(bad)} spurious, zero: {zero.kind} (index {zero.index})"
    return Outcome(_verdict(ok), reason, "no spurious minimum; 0 a strict saddle", found)


ZHU = (
    "Zhu et al. 2021, arXiv 2105.02375: the abstract says the cross-entropy UFM with weight "
    "decay has a benign global landscape: the only global minimizers are simplex ETFs and "
    "every other critical point is a strict saddle with negative curvature; the theorem "
    "(recalled as Thm 3.2) and its hypothesis d > K are recalled, not read "
    "[read: abstract; theorem and hypotheses recalled]"
)

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "zhu-benign-landscape",
        ZHU,
        "plain CE, K=4, n=5, d=6, lambda = 5e-3: no spurious minimum among 64 starts, and "
        "W = H = 0 is a strict saddle",
        "plain",
        {"loss": "ce", "K": 4, "n": 5, "d": 6, "lambda_W": 5e-3, "lambda_H": 5e-3},
        expect="confirmed",
        procedure=benign,
    ),
)
