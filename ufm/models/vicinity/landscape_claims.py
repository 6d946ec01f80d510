"""How `ufm verify` judges the vicinity UFM's landscape claim (`ufm.landscape`): the mirror
minimum at d = K (ufm/models/vicinity/problem.py's docstring).

At d = K the minimizers of the beta-free loss are {Q H*: Q in O(K)}, two components. With
H0 = H* (balanced, collapsed) the reflected component keeps a local minimum: a reflection
Q = I - 2 u u^T moves H* by 2 sqrt(n rho) whatever the unit vector u, and the beta-free loss
depends on the class means only through their singular values (balanced targets are the
identity), so the loss is the same for every u: the minima form a (K-1)-dimensional family
(u on the sphere S^{K-1}), and the Hessian has K - 1 zero eigenvalues there that no symmetry
of f explains (H0 breaks the rotations). `ufm.landscape` calls it ``degenerate``; its index
is 0.
"""

from ...claims import Outcome
from ...claims import verdict as _verdict
from ...landscape import landscape

THEORY_RTOL = 1e-9


def mirror_minimum(problem, restarts: int = 32) -> Outcome:
    """Two groups, neither with a negative eigenvalue: the lower at the closed form's loss
    (Cor 2.2), the higher with exactly K - 1 zero eigenvalues (the family of mirror images)."""
    result = landscape(problem, restarts)
    groups = result.groups
    reason = f"{result.converged}/{result.restarts} converged: {result.describe()}"
    if len(groups) < 2:
        return Outcome("inconclusive", reason, "two minima", f"{len(groups)} group(s)")
    low, high = groups[0], groups[1]
    theory = result.theory_loss
    ok = (
        len(groups) == 2
        and low.index == 0
        and high.index == 0
        and low.kind == "global_minimum"
        and theory is not None
        and abs(low.loss - theory) <= THEORY_RTOL * abs(theory)
        and high.loss > low.loss
        and high.spectrum.unexplained_zeros == problem.K - 1
    )
    reason += (
        f"; closed form {theory}; mirror {high.loss - low.loss:.4g} above, with "
        f"{high.spectrum.unexplained_zeros} zero eigenvalues (smallest "
        f"{', '.join(f'{v:.2g}' for v in high.spectrum.smallest[:4])}); hits: global "
        f"{low.fraction:.0%}, mirror {high.fraction:.0%}"
    )
    found = f"global {low.fraction:.0%}, mirror {high.fraction:.0%} (+{high.loss - low.loss:.3g})"
    return Outcome(_verdict(ok), reason, "global + mirror minimum", found)
