"""How `ufm verify` judges the cross-entropy UFM with more classes than dimensions (K > d + 1).

No simplex ETF fits in R^d when K > d + 1, and no theorem gives the minimizer of the
weight-decay UFM there. Generalized neural collapse (Jiang et al. 2023, arXiv 2310.05351;
abstract read, the definition of the one-vs-rest distance read in the authors' code, the
theorem not read) points, for the UFM with a spherical constraint, to the *softmax code*:
unit classifiers maximizing rho_ovr, the least distance of each to the convex hull of the
others (`softmax_code.py`, computed there on its own). `softmax_code_match`, the procedure of
the `codes-*` claims, asks whether the minimizer's normalized classifier rows and centred
class means reach the code's rho_ovr within `CODE_TOL` (``confirmed``; ``refuted`` below it,
``inconclusive`` when no restart converged or the minimizer beats the computed code, i.e. the
code search fell short). rho_ovr, not the configuration, is compared: the code need not be unique
(K = 5, d = 3). Beside it the reason reports the cosine gap to the computed code, the
normalized margin (`normalized_margin`) and the best known spherical codes below (Tammes,
log energy, each with its provenance), as `softmax_code_match` reports them.

The configuration comparison is invariant under rotations and class permutations: the sorted
multiset of pairwise cosines of the centred, normalized class means (a fingerprint: equal for
congruent configurations; equality alone does not prove congruence, as homometric sets exist,
but it separates the codes here), its largest difference from the code's, the minimum angle,
the spread of the class-mean norms (NC2 equinorm), and GNC2 hyperspherical uniformity
(`ufm.metrics.gnc2`, log kernel: the mean and variance of log 1/|u_k - u_k'| over pairs; Liu
et al. 2023, arXiv 2303.06484; Wu & Papyan 2024, arXiv 2405.17767).
"""

import dataclasses

import numpy as np
import scipy.optimize

from ... import metrics
from ...claims import Outcome
from ...claims import verdict as _verdict
from ...solve import solve
from . import softmax_code as sc

CODE_TOL = 1e-6  # largest cosine difference; converged solves (gtol 1e-10) reach ~1e-9
RESTARTS = 8  # the configuration is read off the best converged restart
CODE_RESTARTS = 8  # restarts of the softmax code's own search


@dataclasses.dataclass(frozen=True)
class Code:
    name: str
    vectors: np.ndarray  # (K, d) unit rows
    provenance: str


def _unit(V: np.ndarray) -> np.ndarray:
    return V / np.linalg.norm(V, axis=1)[:, None]


# --- exact constructions (rows are unit vectors) ------------------------------------------
def polygon(K: int) -> np.ndarray:
    """Regular K-gon in R^2: the unique optimum on the circle for the largest minimum angle
    2 pi / K (elementary), and for the log and Riesz energies (Fejes Toth)."""
    t = 2 * np.pi * np.arange(K) / K
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def cross_polytope(d: int) -> np.ndarray:
    """The 2d vectors +-e_i (orthoplex): cosines 0 and -1. For K = 2d points in R^d its
    minimum angle pi/2 is the largest possible (Rankin 1955, the bound K <= 2d for angles
    >= pi/2); the unique such code up to isometry."""
    eye = np.eye(d)
    return np.stack([eye, -eye], axis=1).reshape(2 * d, d)


def icosahedron() -> np.ndarray:
    """The 12 cyclic permutations of (0, +-1, +-phi), normalized: cosines +-1/sqrt 5 and -1.
    Tammes-optimal for 12 points (Fejes Toth 1943: his bound is attained) and universally
    optimal (Cohn & Kumar 2007, arXiv math/0607446)."""
    phi = (1 + np.sqrt(5)) / 2
    base = [(0.0, a, b * phi) for a in (1, -1) for b in (1, -1)]
    rows = [np.roll(v, shift) for shift in range(3) for v in base]
    return _unit(np.array(rows))


TAMMES_8_H2 = 1 / (1 + 2 * np.sqrt(2))  # = (2 sqrt 2 - 1)/7 = 0.261204, its largest cosine


def square_antiprism(h2: float = TAMMES_8_H2) -> np.ndarray:
    """Two squares at heights +-h, the lower turned by 45 degrees; h^2 = `h2`. Cosines: h^2
    (square edges), 2h^2 - 1, r^2/sqrt 2 - h^2 (slant edges) and -r^2/sqrt 2 - h^2, with
    r^2 = 1 - h^2. The default makes square and slant edges equal (an equilateral antiprism):
    the Tammes optimum for 8 points (Schuette & van der Waerden 1951), minimum angle
    arccos(1/(1 + 2 sqrt 2)) = 74.8585 degrees."""
    h, r = np.sqrt(h2), np.sqrt(1 - h2)
    t = np.pi / 2 * np.arange(4)
    top = np.stack([r * np.cos(t), r * np.sin(t), np.full(4, h)], axis=1)
    bottom = np.stack([r * np.cos(t + np.pi / 4), r * np.sin(t + np.pi / 4), np.full(4, -h)], 1)
    return np.vstack([top, bottom])


def log_optimal_antiprism() -> np.ndarray:
    """The square antiprism of least log energy (best GNC2 log mean), h^2 found numerically
    (0.31879); the log-energy and Thomson optima for 8 points are believed to be square
    antiprisms (numerical record, e.g. Ballinger et al. 2009, arXiv math/0611451)."""
    return square_antiprism(_best_h2(lambda V: gnc2(V)[0]))


def triangular_bipyramid() -> np.ndarray:
    """Poles +-e_3 and an equilateral triangle on the equator: cosines -1, -1/2 and 0. The
    Thomson and log-energy optimum for 5 points (Schwartz 2013, arXiv 1001.3702;
    Dragnev, Legg & Townsend 2002); one of the many Tammes optima (angle pi/2)."""
    t = 2 * np.pi * np.arange(3) / 3
    equator = np.stack([np.cos(t), np.sin(t), np.zeros(3)], axis=1)
    return np.vstack([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], equator])


def known_code(K: int, d: int) -> Code | None:
    """The best known code for K points in R^d among the constructions above, if any."""
    if d == 2:
        return Code(f"regular {K}-gon", polygon(K), "optimal on the circle")
    if K == 2 * d:
        return Code(f"cross-polytope in R^{d}", cross_polytope(d), "Rankin 1955")
    if (K, d) == (12, 3):
        return Code("icosahedron", icosahedron(), "Fejes Toth 1943, Cohn & Kumar 2007")
    if (K, d) == (8, 3):
        return Code("Tammes square antiprism", square_antiprism(), "Schuette & vdW 1951")
    if (K, d) == (5, 3):
        return Code("triangular bipyramid", triangular_bipyramid(), "Thomson/log optimum")
    return None


def alternatives(K: int, d: int) -> list[Code]:
    """Codes optimal for other criteria, reported beside the best known one."""
    if (K, d) == (8, 3):
        return [Code("log-optimal antiprism", log_optimal_antiprism(), "numerical")]
    return []


# --- invariant comparison ----------------------------------------------------------------
def pair_cosines(V: np.ndarray) -> np.ndarray:
    """Sorted cosines of the K(K-1)/2 pairs of rows: invariant under rotations and
    permutations of the rows."""
    U = _unit(np.asarray(V, dtype=float))
    return np.sort((U @ U.T)[np.triu_indices(len(U), 1)])


def gnc2(V: np.ndarray) -> tuple[float, float]:
    """GNC2 (log kernel) of the rows: pair mean and pair variance of log 1/|u_k - u_k'|."""
    mean, var = metrics.gnc2(np.asarray(V, dtype=float), kernel="log")
    return float(mean), float(var)


def describe(V: np.ndarray) -> dict[str, float | np.ndarray]:
    """Distinct cosines (to 6 digits), minimum angle in degrees, GNC2, norm spread."""
    cos = pair_cosines(V)
    norms = np.linalg.norm(V, axis=1)
    mean, var = gnc2(V)
    return {
        "cosines": np.unique(np.round(cos, 6) + 0.0),  # + 0.0: no "-0" in the text
        "min_angle": float(np.degrees(np.arccos(np.clip(cos[-1], -1, 1)))),
        "gnc2_mean": mean,
        "gnc2_var": var,
        "norm_cv": float(norms.std() / norms.mean()),
    }


def cosine_gap(V: np.ndarray, code: np.ndarray) -> float:
    """max |sorted pair cosines of V - those of code|: 0 for a rotated, permuted or rescaled
    copy of the code (the fingerprint of the module docstring)."""
    return float(np.max(np.abs(pair_cosines(V) - pair_cosines(code))))


def _best_h2(objective) -> float:
    """The antiprism height^2 in (0.05, 0.6) minimizing `objective(vectors)`."""
    res = scipy.optimize.minimize_scalar(
        lambda h2: objective(square_antiprism(h2)),
        bounds=(0.05, 0.6),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return float(res.x)


def centred_means(problem, params) -> tuple[np.ndarray, np.ndarray]:
    """(class means minus their mean (K, d), classifier rows W (K, d)) of a solution."""
    H, labels = np.asarray(params["H"], dtype=float), np.asarray(problem.labels)
    Mt = metrics.centred_means(H, labels, problem.K, weighted_mean=False)
    return np.asarray(Mt).T, np.asarray(problem.classifier(params), dtype=float)


def _cosines(V: np.ndarray) -> str:
    return "{" + ", ".join(f"{c:.4g}" for c in describe(V)["cosines"]) + "}"


def _text(name: str, info: dict) -> str:
    cosines = ", ".join(f"{c:.4g}" for c in info["cosines"])
    return (
        f"{name}: cosines {{{cosines}}}, min angle {info['min_angle']:.4f} deg, GNC2 "
        f"{info['gnc2_mean']:.6f} (var {info['gnc2_var']:.2e})"
    )


def _known_code_parts(means: np.ndarray, K: int, d: int) -> list[str]:
    """The Tammes / log-energy codes of `known_code` and `alternatives`, beside the found
    centred means: their cosines, and the found means' cosine gap to each."""
    code = known_code(K, d)
    if code is None:
        return []
    parts = [
        _text(f"{code.name} ({code.provenance})", describe(code.vectors))
        + f", its cosine gap to the found means {cosine_gap(means, code.vectors):.2e}"
    ]
    if (K, d) == (8, 3):  # name the found geometry: the nearest square antiprism
        h2 = _best_h2(lambda V: cosine_gap(means, V))
        gap_h = cosine_gap(means, square_antiprism(h2))
        parts.append(f"nearest square antiprism h^2 = {h2:.6f} (cosine gap {gap_h:.1e})")
    for alt in alternatives(K, d):
        parts.append(
            _text(alt.name, describe(alt.vectors)) + f", gap {cosine_gap(means, alt.vectors):.2e}"
        )
    return parts


def normalized_margin(W: np.ndarray, class_means: np.ndarray) -> float:
    """min_{k != j} <w_k - w_j, h_k> / (|W|_F |Hbar|_F / K), h_k the (uncentred) class means.

    Invariant under W -> a W, Hbar -> Hbar / a and under rescaling both. For unit rows w_k and
    unit h_k attaining dist(w_k, hull of the others) it equals rho_ovr(W): a softmax code with
    equal one-vs-rest distances scores its rho. As lambda -> 0 the bias-free weight-decay
    minimizer maximizes this ratio (the regularization path of a homogeneous model tends to
    the max-margin direction, recalled, not read; |W|^2 + |H|^2 >= 2 |W| |H| sets the unit),
    with the class norms free, which the spherical constraint of the softmax code fixes; a
    minimizer scoring above the code's rho shows the two criteria part."""
    M = sc._margins(np.asarray(W, float), np.asarray(class_means, float))
    off = ~np.eye(len(M), dtype=bool)
    return float(M[off].min() / (np.linalg.norm(W) * np.linalg.norm(class_means) / len(M)))


def softmax_code_match(problem) -> Outcome:
    """Is the CE minimizer's classifier (and are its centred class means) a softmax code?

    The code is computed by `softmax_code.softmax_code`, independently of the UFM solver; the
    minimizer is a softmax code iff rho_ovr of its normalized rows W (and of its centred
    means) reaches the code's rho within `CODE_TOL` (rho_ovr is the code's criterion, and the
    code need not be unique). Extra information: the cosine gap to the computed code, the
    normalized margin, the Tammes / log-energy codes of `known_code`."""
    K, d = problem.K, problem.d
    code = sc.softmax_code(K, d, restarts=CODE_RESTARTS, seed=0)
    predicted = f"softmax code, rho_ovr {code.rho:.9f}"
    sol = solve(problem, restarts=RESTARTS)
    if not sol.converged:
        return Outcome("inconclusive", f"no restart converged: {sol.status}", predicted, "-")
    means, W = centred_means(problem, sol.params)
    rho_w, rho_m = sc.rho_ovr(W), sc.rho_ovr(means)
    found = f"rho_ovr of W {rho_w:.9f}, of the means {rho_m:.9f}"
    if max(rho_w, rho_m) > code.rho + CODE_TOL:
        reason = f"{found} beat the computed code's {code.rho:.9f}: the code search fell short"
        return Outcome("inconclusive", reason, predicted, found)
    norms = np.linalg.norm(W, axis=1)
    align = float(np.min(np.sum(_unit(W) * _unit(means), axis=1)))
    parts = [
        f"softmax code (best of {CODE_RESTARTS} annealed restarts, polished): rho_ovr "
        f"{code.rho:.9f}, cosines {_cosines(code.vectors)}, "
        f"restarts' fingerprint spread {code.fingerprint_spread():.1e}",
        f"found (best of {RESTARTS} restarts, loss spread {sol.loss_spread:.1e}): {found}, "
        f"rho gap {code.rho - rho_w:.2e} (tol {CODE_TOL:g}), cosine gap of W to the computed "
        f"code {cosine_gap(W, code.vectors):.2e}, |w_k| CV {norms.std() / norms.mean():.2e}, "
        f"min cos(w_k, mean_k) {align:.9f}",
    ]
    if not problem.bias:
        H, labels = np.asarray(sol.params["H"], float), np.asarray(problem.labels)
        class_means = np.stack([H[:, labels == k].mean(axis=1) for k in range(K)])
        gamma = normalized_margin(W, class_means)
        parts.append(f"normalized margin {gamma:.6f} vs the code's {code.rho:.6f}")
    parts += _known_code_parts(means, K, d)
    ok = code.rho - rho_w <= CODE_TOL and code.rho - rho_m <= CODE_TOL
    return Outcome(_verdict(ok), "; ".join(parts), predicted, found)
