"""How `ufm verify` judges the mixup UFM's geometric claims (Fisher, Meng, Papyan 2024).

The closed forms themselves are judged by `ufm.check` (claims with judge "theory"). The
procedures here test the properties the paper states in words, on the solver's minimizer:
the span and boundary geometry, calibration as regularization vanishes, and whether a learned
classifier is a simplex ETF. The paper's text was not available: the claims test the natural
formulation (derivations/mixup.py).
"""

import numpy as np

from ... import metrics
from ...check import check
from ...claims import Outcome
from ...claims import verdict as _verdict
from ...solve import solve
from .problem import MixupProblem, properties

GEOMETRY_TOL = 1e-6  # span residual, lam-spread, boundary gap: solver round-off is ~1e-8
CALIBRATION_TOL = 1e-6  # solver's calibration error against the closed form's
ETF_TOL = 1e-6  # Gram distance of W W^T from a simplex ETF


def geometry(problem: MixupProblem) -> Outcome:
    """Different-class features in span{w_c1, w_c2}, same-class features independent of lam,
    and the lam = 1/2 features on the decision boundary, at the solver's minimizer."""
    sol = solve(problem)
    if not sol.converged:
        return Outcome("inconclusive", sol.status, "-", "-")
    p = properties(problem, sol.params)
    worst = max(p["span_residual"], p["same_class_spread"], p["boundary_gap"])
    reason = (
        f"span residual {p['span_residual']:.1e}, same-class spread over lam "
        f"{p['same_class_spread']:.1e}, |z_c - z_c'| at lam = 1/2 {p['boundary_gap']:.1e} "
        f"(tolerance {GEOMETRY_TOL:g})"
    )
    return Outcome(_verdict(worst <= GEOMETRY_TOL), reason, "0, 0, 0", f"max {worst:.1e}")


def calibration(problem: MixupProblem) -> Outcome:
    """As lambda_H falls by decades, the logit gap z_c1 - z_c2 of different-class features
    approaches log(lam/(1-lam)); at every step the solver matches the closed form."""
    errors, mismatch = [], 0.0
    for factor in (1.0, 1e-1, 1e-2, 1e-3):
        p = problem.with_lambda_H(float(problem.lambda_H) * factor)
        sol = solve(p, max_steps=50_000)
        if not sol.converged:
            return Outcome("inconclusive", sol.status, "-", "-")
        found = properties(p, sol.params)["calibration_error"]
        predicted = properties(p, p.theory().params)["calibration_error"]
        mismatch = max(mismatch, abs(found - predicted))
        errors.append(found)
    falling = all(b < a for a, b in zip(errors, errors[1:], strict=False))
    reason = (
        f"max |gap - log(lam/(1-lam))| = {', '.join(f'{e:.3g}' for e in errors)} at lambda_H x "
        f"1, 0.1, 0.01, 0.001; solver vs closed form within {mismatch:.1e} "
        f"(tolerance {CALIBRATION_TOL:g})"
    )
    ok = falling and mismatch <= CALIBRATION_TOL and errors[-1] < 0.01 * errors[0]
    return Outcome(_verdict(ok), reason, "error -> 0", f"{errors[0]:.3g} -> {errors[-1]:.3g}")


def learned_etf(problem: MixupProblem, restarts: int = 4) -> Outcome:
    """Is the learned classifier a simplex ETF at the minimizer? Judged on the best of
    `restarts` converged runs, which `ufm.check` must find at the predicted minimum."""
    sol = solve(problem, restarts=restarts)
    report = check(problem, sol)
    if report.verdict != "agrees":
        return Outcome("inconclusive", f"not at the predicted minimum: {report.reason}", "-", "-")
    W = np.asarray(sol.params["W"])
    distance = float(metrics.nc2_etf_error(W @ W.T))
    mean_row = float(np.linalg.norm(W.sum(axis=0)) / np.linalg.norm(W))
    reason = (
        f"Gram distance of W W^T from a simplex ETF {distance:.1e} (tolerance {ETF_TOL:g}); "
        f"|sum_k w_k| / ||W|| = {mean_row:.3g}; loss = predicted minimum "
        f"(gap {report.loss_gap:.1e})"
    )
    return Outcome(_verdict(distance <= ETF_TOL), reason, "ETF", f"ETF distance {distance:.1e}")


PROCEDURES = {
    "mixup_geometry": geometry,
    "mixup_calibration": calibration,
    "mixup_learned_etf": learned_etf,
}
