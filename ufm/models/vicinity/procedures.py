"""How `ufm verify` judges the vicinity UFM's theorems that are not about one minimizer.

Each procedure takes a `VicinityProblem` (built from the claim's parameters) and returns an
`Outcome`: ``confirmed`` when the numbers agree with the theorem within the stated
tolerance, ``refuted`` when they do not, ``inconclusive`` when a solve did not converge.
Theorems: Tirer, Huang & Niles-Weed 2023 (arXiv 2210.16658); formulas derived in
derivations/vicinity.py.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ...claims import Outcome
from ...claims import verdict as _verdict
from ...errors import InputError
from ...solve import solve
from . import central_path, linear_response
from .problem import VicinityProblem
from .theory import nc1_ratio

IDENTITY_RTOL = 1e-7  # backward-step identity: the solver's H against Newton's root
NC1_RTOL = 1e-4  # NC1 ratio, within-class noise of size 1e-3: error O(size^2), 2e-7 measured
SLOPE_RTOL = 5e-2  # regularizer log-derivatives, solved against first order


def _with_H0(problem: VicinityProblem, H0) -> VicinityProblem:
    """The same problem near a given H0 (kept by `with_parameter`, not regenerated)."""
    return dataclasses.replace(problem, H0=np.asarray(H0), origin={"H0": "array"})


def _solved_H(problem: VicinityProblem) -> np.ndarray | None:
    """The solved H, or None if the solver did not converge. Solved as `_with_H0` of its own
    H0: `origin` (how H0 was made) is a static field that the loss never reads, so problems
    that differ only in it would each compile the same solve again; one origin for every
    procedure's solves shares one compilation (the numbers are the same)."""
    sol = solve(_with_H0(problem, problem.H0))
    return np.asarray(sol.params["H"]) if sol.converged else None


def _noise(problem: VicinityProblem, seed: int, size: float) -> np.ndarray:
    """Gaussian (d, N) noise of Frobenius norm `size` times ||H0||."""
    E = np.random.default_rng(seed).standard_normal(problem.H0.shape)
    return size * float(jnp.linalg.norm(problem.H0)) * E / np.linalg.norm(E)


def flow(problem: VicinityProblem) -> Outcome:
    """Thm 3.1 on the flow from H0, recorded at 201 times up to tau = 8/lambda_H."""
    taus = 8 / float(problem.lambda_H) * np.linspace(0.0, 1.0, 201) ** 2
    path = central_path.flow(problem, jnp.asarray(taus))
    checks = central_path.monotonicity(path)
    nc1 = np.asarray(path.nc1)
    worst = ", ".join(f"{k} {v['worst_violation']:.1e}" for k, v in checks.items())
    reason = (
        f"NC1 {nc1[0]:.4g} -> {nc1[-1]:.4g} over tau in [0, {taus[-1]:g}] "
        f"({int(path.steps)} Tsit5 steps); largest moves against the theorem: {worst} "
        f"(tolerance {central_path.MONOTONE_RTOL:g})"
    )
    ok = all(c["holds"] for c in checks.values())
    return Outcome(
        _verdict(ok), reason, "3 monotone quantities", f"NC1 {nc1[0]:.3g}->{nc1[-1]:.3g}"
    )


def implicit_step(problem: VicinityProblem) -> Outcome:
    """The solved minimizer against an independent Newton root of H = H0 - grad L(H)/beta."""
    H = _solved_H(problem)
    if H is None:
        return Outcome("inconclusive", "the solver did not converge", "H = backward step", "-")
    newton = np.asarray(central_path.backward_step(problem))
    H0 = np.asarray(problem.H0)
    step = np.linalg.norm(H - H0)
    residual = H - H0 + np.asarray(problem.reduced_gradient(jnp.asarray(H))) / float(problem.beta)
    diff = np.linalg.norm(H - newton) / step
    res = np.linalg.norm(residual) / step
    reason = (
        f"|H_solved - H_newton| = {diff:.1e} and |H - H0 + grad L(H)/beta| = {res:.1e}, "
        f"both relative to the step |H - H0| = {step:.3g} (tolerance {IDENTITY_RTOL:g})"
    )
    ok = diff <= IDENTITY_RTOL and res <= IDENTITY_RTOL
    return Outcome(_verdict(ok), reason, "H = backward step", f"difference {diff:.1e}")


def theorem_4_2(problem: VicinityProblem) -> Outcome:
    """Thm 4.2's singular values of Eq. 5's blocks, and the full derived spectrum of F_kk."""
    result = linear_response.theorem_4_2_check(problem)
    f, p = result["found"], result["predicted"]
    reason = (
        f"sigma(F_kk) in [{f['diag_min']:.10g}, {f['diag_max']:.10g}] (predicted "
        f"[{p['diag_min']:.10g}, 1]); F_kk' rank {f['off_rank']}, sigma_max {f['off_max']:.10g} "
        f"(predicted {p['off_max']:.10g}); largest error {max(result['errors'].values()):.1e} "
        "including the full F_kk spectrum"
    )
    return Outcome(
        _verdict(result["holds"]),
        reason,
        f"sigma_min {p['diag_min']:.6g}, off {p['off_max']:.3g}",
        f"sigma_min {f['diag_min']:.6g}, off {f['off_max']:.3g}",
    )


def first_order(problem: VicinityProblem) -> Outcome:
    """Re-solve at H0 = H* + eps E (eps = 1e-2, 1e-3) and compare the change of the
    minimizer with F[eps E] (exact F at H*): the error must fall like eps^2."""
    base = np.asarray(problem.H0)
    if problem.collapsed_base()[1] > 1e-10:
        raise InputError("first_order needs H0 = a collapsed minimizer (noise=0)")
    F, _ = linear_response.at_base(problem)
    F = jax.jit(F)  # one compilation for both eps (op by op, the CG loop compiles per call)
    H_base = _solved_H(problem)
    E = _noise(problem, seed=0, size=1.0)
    errors = []
    for eps in (1e-2, 1e-3):
        H = _solved_H(_with_H0(problem, base + eps * E))
        if H is None or H_base is None:
            return Outcome("inconclusive", "a re-solve did not converge", "O(eps^2)", "-")
        predicted = np.asarray(F(jnp.asarray(eps * E)))
        errors.append(np.linalg.norm(H - H_base - predicted) / np.linalg.norm(eps * E))
    ratio = errors[0] / errors[1]
    reason = (
        f"|dH_solved - F[dH0]| / |dH0| = {errors[0]:.2e} at eps = 1e-2, {errors[1]:.2e} at "
        f"1e-3: ratio {ratio:.1f} (first order: about 10, between 5 and 20)"
    )
    ok = 5 <= ratio <= 20 and errors[1] <= 1e-2
    return Outcome(_verdict(ok), reason, "error ratio 10 per decade", f"ratio {ratio:.1f}")


def nc1_reduction(problem: VicinityProblem) -> Outcome:
    """Within-class noise of relative size 1e-3 around H* (noise=0): the solved NC1 ratio
    against gamma_par^2 e_par + gamma_perp^2 e_perp; and Cor 3.2's reduction for generic
    noise (size 0.1) at beta, 10 beta and 100 beta."""
    K, n = problem.K, problem.counts[0]
    lW, lH, beta = (float(x) for x in (problem.lambda_W, problem.lambda_H, problem.beta))
    base = np.asarray(problem.H0)
    y = problem.labels
    E = _noise(problem, seed=1, size=1e-3)
    E -= (E @ np.eye(K)[y] / n)[:, y]  # within-class, zero mean per class
    U = np.linalg.svd(base @ np.eye(K)[y] / n, full_matrices=False)[0]
    e_par = float(np.sum((U.T @ E) ** 2) / np.sum(E**2))
    noisy = _with_H0(problem, base + E)
    H = _solved_H(noisy)
    if H is None:
        return Outcome("inconclusive", "the solver did not converge", "-", "-")
    found = linear_response.nc1(noisy, H) / linear_response.nc1(noisy, noisy.H0)
    predicted = float(nc1_ratio(K, n, lW, lH, beta, e_par))
    error = abs(found - predicted) / predicted
    generic = _with_H0(problem, base + _noise(problem, seed=2, size=0.1))
    ratios = []
    for b in (beta, 10 * beta, 100 * beta):
        p = generic.with_parameter("beta", b)
        H = _solved_H(p)
        if H is None:
            return Outcome("inconclusive", "the solver did not converge", "-", "-")
        ratios.append(linear_response.nc1(p, H) / linear_response.nc1(p, p.H0))
    reason = (
        f"within-class noise (e_par = {e_par:.3f}): NC1 ratio {found:.8f}, predicted "
        f"{predicted:.8f} (relative error {error:.1e}, tolerance {NC1_RTOL:g}); generic noise: "
        f"NC1 ratio {', '.join(f'{r:.4f}' for r in ratios)} at beta x 1, 10, 100 (all < 1)"
    )
    ok = error <= NC1_RTOL and max(ratios) < 1
    return Outcome(_verdict(ok), reason, f"ratio {predicted:.6f}", f"ratio {found:.6f}")


def regularizers(problem: VicinityProblem) -> Outcome:
    """d log NC1 / d log lambda over [lambda/2, 2 lambda], solved and first order."""
    slopes = {}
    for name in ("lambda_H", "lambda_W"):
        value = float(getattr(problem, name))
        curve = linear_response.nc1_curve(problem, name, [value / 2, 2 * value])
        if not np.all(curve["converged"]):
            return Outcome("inconclusive", "a solve did not converge", "-", "-")
        slope = lambda x: float(np.log(x[1] / x[0]) / np.log(4.0))
        slopes[name] = (slope(curve["nc1"]), slope(curve["linear_response"]))
    (sH, pH), (sW, pW) = slopes["lambda_H"], slopes["lambda_W"]
    agree = max(abs(sH - pH) / abs(pH), abs(sW - pW) / abs(pW))
    reason = (
        f"d log NC1 / d log lambda_H = {sH:.4g} (first order {pH:.4g}), "
        f"d log NC1 / d log lambda_W = {sW:.4g} (first order {pW:.4g}); relative difference "
        f"{agree:.1e} (tolerance {SLOPE_RTOL:g})"
    )
    ok = sH < 0 < sW and abs(sH) > abs(sW) and agree <= SLOPE_RTOL
    return Outcome(
        _verdict(ok), reason, f"slopes {pH:.3g} / {pW:.3g}", f"slopes {sH:.3g} / {sW:.3g}"
    )


PROCEDURES = {
    "flow": flow,
    "implicit_step": implicit_step,
    "theorem_4_2": theorem_4_2,
    "first_order": first_order,
    "nc1_reduction": nc1_reduction,
    "regularizers": regularizers,
}
