"""How `ufm verify` judges the deep linear UFM's landscape claims (`ufm.landscape`).

Near Dang et al.'s first-order transition (MSE, M >= 2) the zero point and the collapsed
point are both local minima; Garrod & Keating's low-rank minima appear with depth (CE).
"""

import numpy as np

from ...claims import Outcome
from ...claims import verdict as _verdict
from ...landscape import landscape, zero_point
from ...registry import make

THEORY_RTOL = 1e-9  # the global minimum found against the closed form (`ufm.check`'s)
RANK_RTOL = 1e-6  # singular values of the class-mean logits below this x the largest: 0


def _matches(loss: float, theory: float | None) -> bool:
    return theory is not None and abs(loss - theory) <= THEORY_RTOL * abs(theory)


def two_basins(problem, restarts: int = 64) -> Outcome:
    """Both the collapsed global minimum (at the closed form's loss) and a spurious local
    minimum above it are reached and classified as such, and W = H = 0 is a local minimum
    (every term of the data loss is a product of M + 1 >= 3 factors: its Hessian there is
    the penalties'). The fraction of restarts in each basin is reported."""
    result = landscape(problem, restarts, points={"zero": zero_point(problem)})
    best = result.of_kind("global_minimum")
    spurious = result.of_kind("spurious_minimum")
    zero = result.points[0]
    basins = ", ".join(f"{g.kind} {g.fraction:.0%} (loss {g.loss:.8g})" for g in result.groups)
    reason = (
        f"{result.converged}/{result.restarts} converged; basins: {basins}; closed form "
        f"{result.theory_loss}; W = H = 0: {zero.kind}, smallest eigenvalue "
        f"{zero.spectrum.smallest[0]:.4g}"
    )
    if result.converged < result.restarts // 2:
        return Outcome("inconclusive", reason, "two minima", "-")
    ok = (
        len(best) == 1
        and _matches(best[0].loss, result.theory_loss)
        and float(best[0].invariants["logits_sv"].max()) > 0
        and bool(spurious)
        and all(g.loss > best[0].loss for g in spurious)
        and zero.kind == "spurious_minimum"
    )
    found = (
        f"global {best[0].fraction:.0%}, spurious {sum(g.fraction for g in spurious):.0%}"
        if best
        else "-"
    )
    return Outcome(_verdict(ok), reason, "global + spurious minimum", found)


def _rank(sv: np.ndarray) -> int:
    return int(np.sum(sv > RANK_RTOL * sv.max())) if sv.max() > 0 else 0


def rank_with_depth(problem, depths: tuple[int, ...] = (1, 2, 3), restarts: int = 16) -> Outcome:
    """The rank of the class-mean logits of the lowest minimum found at each depth M (the
    claim's other parameters): K - 1 (a simplex ETF) at M = 1, below K - 1 at the largest
    depth (Garrod & Keating's regime for K >= 4, M >= 3). Each depth's lowest group must
    be a minimum (no negative eigenvalue)."""
    K = problem.K
    ranks, kinds, losses = {}, {}, {}
    for depth in depths:
        result = landscape(make("deep-linear", **(problem.hyperparameters() | {"depth": depth})),
                           restarts)  # fmt: skip
        if not result.groups:
            return Outcome("inconclusive", f"M={depth}: no restart converged", "-", "-")
        lowest = result.groups[0]
        ranks[depth], kinds[depth] = _rank(lowest.invariants["logits_sv"]), lowest.kind
        losses[depth] = f"{lowest.loss:.8g}, {len(result.groups)} groups: {result.describe()}"
    reason = "; ".join(f"M={m}: rank {ranks[m]}, {kinds[m]}, loss {losses[m]}" for m in depths)
    ok = (
        ranks[depths[0]] == K - 1
        and ranks[depths[-1]] < K - 1
        and all(kinds[m] == "global_minimum" for m in depths)
    )
    found = ", ".join(f"M={m}: {ranks[m]}" for m in depths)
    return Outcome(
        _verdict(ok), reason, f"rank K-1 = {K - 1} at M=1, lower at M={depths[-1]}", found
    )
