"""The claims `ufm verify` checks for the plain UFM.

Each is one concrete parameter point of a published statement or of our own derivation;
the source string says which and what of it was read.
"""

from typing import Any

from ...claims import Claim
from . import codes
from .convex_claims import CLAIMS as CONVEX_CLAIMS
from .convex_claims import CONVEX
from .landscape_claims import CLAIMS as LANDSCAPE_CLAIMS

CODE = "0e2a53daa3f3"  # Fsoft-AIC/Neural-Collapse-in-Deep-Linear-Networks, the commit read
ZHU = (
    "Zhu et al. 2021, arXiv 2105.02375: the abstract says the only global minimizers of the "
    "weight-decayed cross-entropy UFM are simplex ETFs; the theorem (recalled as Thm 3.1) and "
    "its hypotheses (d >= K - 1, the bias) are recalled, not read; norms and loss: "
    "derivations/plain_ufm.py steps 3-4 [read: abstract; theorem number and hypotheses recalled]"
)
TB31 = (
    "Tirer & Bruna 2022, arXiv 2202.08087, Thm 3.1, read as restated (Thm 2.1, paper "
    "normalization) in the body of Tirer, Huang & Niles-Weed 2023, arXiv 2210.16658; in the "
    "canonical convention: derivations/plain_ufm.py step 6 "
    "[read: paper body; as restated in a later paper]"
)
TB32 = (
    "ours: derivations/plain_ufm.py step 7 (minimizing over the bias leaves the centred labels); "
    "that Tirer & Bruna 2022 (arXiv 2202.08087) state this case is recalled, their text was "
    "not read [ours: derivation plain_ufm.py step 7]"
)
DANG = (
    "Dang et al. 2023, arXiv 2301.00437, the M = 1 case: the abstract says the class vectors of "
    "bias-free imbalanced MSE are orthogonal with lengths set by the class counts; the closed "
    "form (stationary x_k, clamped at 0 below n_k = N^2 lambda_W lambda_H) was read in their "
    f"official code; re-derived in derivations/plain_ufm.py step 8 [read: official code @{CODE}]"
)
ZERO = (
    "ours: the zero solution is global iff ||grad_Z L(0)||_op <= sqrt(lambda_W lambda_H), "
    "derivations/plain_ufm.py step 9 [ours: derivation plain_ufm.py step 9]"
)
TEAM = (
    "ours: an unregularized bias leaves the centred labels Y_c, whose singular values are "
    "soft-thresholded (derivations/plain_ufm.py steps 5, 7); the abstract of Liu 2024, arXiv "
    "2411.17278, names the same matrix for the deep model "
    "[ours: derivation plain_ufm.py steps 5, 7]"
)
NARROW = (
    "ours: the nuclear-norm problem under rank Z <= d separates by von Neumann's trace "
    "inequality, derivations/plain_ufm.py steps 10-11 [ours: derivation plain_ufm.py steps 10-11]"
)


def _plain(loss: str, **hyper) -> dict[str, Any]:
    base = {"loss": loss, "K": 4, "n": 5, "d": 8}
    return base | hyper


IMB = (100, 100, 10, 10)  # N = 220: minority classes die once N^2 lW lH > 10, i.e. lam > 0.01437

PLAIN: tuple[Claim, ...] = (
    # --- cross-entropy, balanced: simplex ETF, or zero past c = K sqrt(n lW lH) = 1 -----------
    Claim(
        "ce-etf",
        ZHU,
        "CE, no bias: every global minimizer is a simplex ETF (c = 0.089 < 1)",
        "plain",
        _plain("ce", lambda_W=0.01, lambda_H=0.01),
        quick=True,
    ),
    Claim(
        "ce-etf-below-threshold",
        ZHU,
        "CE, no bias: still a simplex ETF just below c = 1 (c = 0.89)",
        "plain",
        _plain("ce", lambda_W=0.1, lambda_H=0.1),
        quick=True,
    ),
    Claim(
        "ce-zero-above-threshold",
        ZERO,
        "CE, no bias: W = H = 0 is global past c = 1 (c = 1.07)",
        "plain",
        _plain("ce", lambda_W=0.12, lambda_H=0.12),
        quick=True,
    ),
    Claim(
        "ce-etf-regularized-bias",
        ZHU,
        "CE with a regularized bias: simplex ETF and b = 0 (K=10, n=100, d=64, all lambdas 5e-4)",
        "plain",
        {
            "loss": "ce",
            "K": 10,
            "n": 100,
            "d": 64,
            "bias": True,
            "lambda_W": 5e-4,
            "lambda_H": 5e-4,
            "lambda_b": 5e-4,
        },
    ),
    Claim(
        "ce-etf-free-bias",
        ZHU,
        "CE with an unregularized bias: simplex ETF, b constant",
        "plain",
        _plain("ce", bias=True, lambda_W=0.01, lambda_H=0.01),
    ),
    Claim(
        "ce-etf-d-equals-K-minus-1",
        ZHU,
        "CE: the ETF already fits in d = K-1 = 3 dimensions",
        "plain",
        _plain("ce", d=3, lambda_W=0.01, lambda_H=0.01),
    ),
    Claim(
        "ce-narrow-not-applicable",
        ZHU,
        "CE with d = 2 < K-1: the theorem does not apply; ufm must not predict",
        "plain",
        _plain("ce", d=2, lambda_W=0.01, lambda_H=0.01),
        expect="inconclusive",
    ),
    # --- cross-entropy, imbalanced: only the zero threshold is known ---------------------------
    Claim(
        "ce-imbalanced-zero",
        ZERO,
        "imbalanced CE: zero is global iff lambda_max(P D P) = 100 <= N^2 lW lH (= 121 here)",
        "plain",
        {"loss": "ce", "K": 4, "n": IMB, "d": 8, "lambda_W": 0.05, "lambda_H": 0.05},
    ),
    Claim(
        "ce-imbalanced-free-bias-zero",
        ZERO,
        "imbalanced CE, free bias: zero with b = log(n/N) iff lambda_max(D - nn^T/N) <= N^2 lW lH",
        "plain",
        {"loss": "ce", "K": 4, "n": IMB, "d": 8, "bias": True, "lambda_W": 0.05, "lambda_H": 0.05},
    ),
    Claim(
        "ce-imbalanced-convex-inside-zero",
        CONVEX,
        "imbalanced CE just inside the zero threshold (N^2 lW lH = 77 < 100): the convex "
        "program's minimizer, certified by its duality gap",
        "plain",
        {"loss": "ce", "K": 4, "n": IMB, "d": 8, "lambda_W": 0.04, "lambda_H": 0.04},
    ),
    # --- MSE, balanced -------------------------------------------------------------------------
    Claim(
        "mse-orthogonal-frame",
        TB31,
        "MSE, no bias: class means form an orthogonal frame (c = 0.2)",
        "plain",
        _plain("mse", lambda_W=0.05, lambda_H=0.01),
        quick=True,
    ),
    Claim(
        "mse-orthogonal-frame-below-threshold",
        TB31,
        "MSE, no bias: orthogonal frame at c = 0.89",
        "plain",
        _plain("mse", lambda_W=0.1, lambda_H=0.1),
    ),
    Claim(
        "mse-zero-above-threshold",
        TB31,
        "MSE, no bias: W = H = 0 past c = 1 (c = 1.07)",
        "plain",
        _plain("mse", lambda_W=0.12, lambda_H=0.12),
        quick=True,
    ),
    Claim(
        "mse-bias-etf",
        TB32,
        "MSE, unregularized bias: simplex ETF, b = 1/K (c = 0.2)",
        "plain",
        _plain("mse", bias=True, lambda_W=0.05, lambda_H=0.01),
        quick=True,
    ),
    Claim(
        "mse-bias-zero-above-threshold",
        TB32,
        "MSE, unregularized bias: W = H = 0, b = 1/K past c = 1",
        "plain",
        _plain("mse", bias=True, lambda_W=0.12, lambda_H=0.12),
        quick=True,
    ),
    # --- MSE, d below the number of label directions: the d largest are kept -----------------
    Claim(
        "mse-narrow-tight-frame",
        NARROW,
        "MSE, no bias, d = 3 < K = 4: the loss is 3/4 (c - c^2/2) + 1/8 = 0.26 and W Hbar has "
        "3 singular values 1 - c = 0.8; which 3-dim subspace is free (a tight frame)",
        "plain",
        _plain("mse", d=3, lambda_W=0.05, lambda_H=0.01),
    ),
    Claim(
        "mse-narrow-K6-d3",
        NARROW,
        "MSE, no bias, K=6, n=4, d=3 (c = 0.12): loss (d/K)(c - c^2/2) + (K-d)/(2K) = 0.3064, "
        "W Hbar has d singular values 1 - c = 0.88",
        "plain",
        {"loss": "mse", "K": 6, "n": 4, "d": 3, "lambda_W": 0.01, "lambda_H": 0.01},
    ),
    Claim(
        "mse-narrow-free-bias-K6-d3",
        NARROW,
        "MSE, unregularized bias, K=6, n=4, d=3 < K-1: loss (d/K)(c - c^2/2) + (K-1-d)/(2K) = "
        "0.22307, b = 1/K, d singular values 1 - c",
        "plain",
        {"loss": "mse", "K": 6, "n": 4, "d": 3, "bias": True, "lambda_W": 0.01, "lambda_H": 0.01},
    ),
    Claim(
        "mse-narrow-imbalanced",
        NARROW,
        "MSE, no bias, n = (8,8,8,3,2), d = 3: the three largest classes keep their GOF values, "
        "classes 3 and 4 are off by the width although alive at any width (N^2 lW lH = 0.02)",
        "plain",
        {"loss": "mse", "K": 5, "n": (8, 8, 8, 3, 2), "d": 3, "lambda_W": 5e-3, "lambda_H": 5e-3},
        quick=True,
    ),
    Claim(
        "mse-narrow-imbalanced-threshold",
        NARROW,
        "MSE, no bias, n = (8,8,8,3,2), d = 3, N^2 lW lH = 2.54: class 4 off by the threshold, "
        "class 3 (alive at any width) off by the width",
        "plain",
        {"loss": "mse", "K": 5, "n": (8, 8, 8, 3, 2), "d": 3, "lambda_W": 0.055, "lambda_H": 0.055},
    ),
    Claim(
        "mse-narrow-imbalanced-tie",
        NARROW,
        "MSE, no bias, n = (8,8,3,3,2), d = 3: the cut falls between the two classes of 3, any "
        "unit combination of them is kept; compared through singular values only",
        "plain",
        {"loss": "mse", "K": 5, "n": (8, 8, 3, 3, 2), "d": 3, "lambda_W": 5e-3, "lambda_H": 5e-3},
    ),
    Claim(
        "mse-narrow-free-bias-imbalanced",
        NARROW,
        "MSE, unregularized bias, n = (8,8,8,3,2), d = 3: the 3 largest of the 4 directions of "
        "the centred labels are kept, b = n/N",
        "plain",
        {
            "loss": "mse",
            "K": 5,
            "n": (8, 8, 8, 3, 2),
            "d": 3,
            "bias": True,
            "lambda_W": 5e-3,
            "lambda_H": 5e-3,
        },
    ),
    # --- MSE, imbalanced: general orthogonal frame and minority collapse ----------------------
    Claim(
        "mse-gof-all-alive",
        DANG,
        "imbalanced MSE: general orthogonal frame, every class alive",
        "plain",
        {"loss": "mse", "K": 4, "n": IMB, "d": 8, "lambda_W": 0.005, "lambda_H": 0.005},
        quick=True,
    ),
    Claim(
        "mse-gof-below-minority-threshold",
        DANG,
        "imbalanced MSE: minorities alive just below N^2 lW lH = n_min (8.2 < 10)",
        "plain",
        {"loss": "mse", "K": 4, "n": IMB, "d": 8, "lambda_W": 0.013, "lambda_H": 0.013},
    ),
    Claim(
        "mse-minority-collapse",
        DANG,
        "imbalanced MSE: minority classes switched off past N^2 lW lH = n_min (12.4 > 10)",
        "plain",
        {"loss": "mse", "K": 4, "n": IMB, "d": 8, "lambda_W": 0.016, "lambda_H": 0.016},
        quick=True,
    ),
    Claim(
        "mse-imbalanced-zero",
        DANG,
        "imbalanced MSE: every class off once N^2 lW lH >= max n_k",
        "plain",
        {"loss": "mse", "K": 4, "n": IMB, "d": 8, "lambda_W": 0.05, "lambda_H": 0.05},
    ),
    Claim(
        "mse-bias-imbalanced",
        TEAM,
        "imbalanced MSE, free bias: logits = soft-thresholded centred labels, b = n/N",
        "plain",
        {
            "loss": "mse",
            "K": 4,
            "n": IMB,
            "d": 8,
            "bias": True,
            "lambda_W": 0.005,
            "lambda_H": 0.005,
        },
    ),
    Claim(
        "mse-bias-imbalanced-minority",
        TEAM,
        "imbalanced MSE, free bias: the minority direction is switched off",
        "plain",
        {"loss": "mse", "K": 4, "n": IMB, "d": 8, "bias": True, "lambda_W": 0.02, "lambda_H": 0.02},
    ),
)


GNC = (
    "Jiang et al. 2023, arXiv 2310.05351 (ICML 2024): the abstract says that with more classes "
    "than dimensions the classifiers and features show a generalized neural collapse in which "
    "the minimum one-vs-rest margin is maximized, proven for the UFM with a spherical "
    "constraint under technical conditions on d and K; the softmax code (unit classifiers "
    "maximizing the least distance of each to the convex hull of the others) was read in the "
    "authors' official code @f933aaf20594 (GNC2.py) and a third-party summary of the paper; the "
    "theorem, its conditions and its limit (temperature to infinity, recalled) were not read"
)
ON_UFM = (
    "the weight-decay UFM is not the paper's spherical setting: an observation of ufm's "
    "solver, no theorem"
)
POLYGON = (
    "compared with the softmax code computed by ufm/models/plain/softmax_code.py (the regular "
    "K-gon, rho_ovr = 1 - cos(2 pi/K); also the code of largest minimum angle and least log "
    f"energy on the circle); {GNC}; {ON_UFM} [ours: numerics]"
)
ORTHOPLEX = (
    "compared with the softmax code computed by ufm/models/plain/softmax_code.py (the "
    "cross-polytope, rho_ovr = 1, in every restart); the cross-polytope is also the only 2d "
    "points in R^d at minimum angle 90 degrees (Rankin 1955); Alcala et al. 2026, arXiv "
    "2603.20587 (abstract read: the configurations are characterized for d+2 <= K <= 2d; that "
    f"the one at K = 2d is the cross-polytope is recalled); {GNC}; {ON_UFM} [ours: numerics]"
)
ICOSAHEDRON = (
    "compared with the softmax code computed by ufm/models/plain/softmax_code.py (the "
    "icosahedron, rho_ovr = 1 - 1/sqrt 5), also Tammes-optimal for 12 points (Fejes Toth 1943) "
    f"and universally optimal (Cohn & Kumar 2007); {GNC}; {ON_UFM} [ours: numerics]"
)
ANTIPRISM = (
    "ufm's question: compared with the softmax code computed by ufm/models/plain/softmax_code.py "
    "(the Tammes square antiprism of Schuette & van der Waerden 1951, rho_ovr = 1 - 1/(1 + 2 "
    "sqrt 2)) at small weight decay; the antiprism of least log energy and GNC2 (Liu et al. "
    "2023, arXiv 2303.06484; Wu & Papyan 2024, arXiv 2405.17767) reported beside; "
    f"{GNC}; {ON_UFM} [ours: numerics]"
)
BIPYRAMID = (
    "compared with the softmax code computed by ufm/models/plain/softmax_code.py (rho_ovr = 1, "
    "reached by a continuum of configurations: the triangular bipyramid, the octahedron less a "
    "vertex that the search returns, ...); the bipyramid is the Thomson and log-energy optimum "
    f"for 5 points in R^3 (Schwartz 2013, arXiv 1001.3702); {GNC}; {ON_UFM} [ours: numerics]"
)
HOT_COLD = (
    "ufm's question: compared with the softmax code (rho_ovr = 1) at small weight decay; as "
    "lambda -> 0 the weight-decay minimizer maximizes the margin per unit of penalty (the "
    "regularization path of a homogeneous model, recalled) with free class norms, and the "
    "minimizer's exceeds the code's 1; an author's summary of Alcala et al. 2026, arXiv "
    "2603.20587 (read; the paper itself not read) mentions two families of codes, from 'hot' "
    f"and 'cold' losses, in this regime; {GNC}; {ON_UFM} [ours: numerics]"
)


def _codes(K: int, d: int, lam: float = 5e-3) -> dict[str, Any]:
    return {"loss": "ce", "K": K, "n": 3, "d": d, "lambda_W": lam, "lambda_H": lam}


SOFTMAX = codes.softmax_code_match  # rho_ovr of W and of the centred means vs the code's

CODES: tuple[Claim, ...] = (
    Claim(
        "codes-ce-pentagon-K5-d2",
        POLYGON,
        "CE, K=5, d=2: the classifier rows and centred class means are a softmax code (rho_ovr "
        "within 1e-6 of the code's 1 - cos 72 deg = 0.690983): the regular pentagon",
        "plain",
        _codes(5, 2),
        quick=True,
        procedure=SOFTMAX,
        expect="confirmed",
    ),
    Claim(
        "codes-ce-heptagon-K7-d2",
        POLYGON,
        "CE, K=7, d=2: the classifier rows and centred class means are a softmax code, the "
        "regular heptagon (rho_ovr 1 - cos(2 pi/7) = 0.376510)",
        "plain",
        _codes(7, 2),
        procedure=SOFTMAX,
        expect="confirmed",
    ),
    Claim(
        "codes-ce-orthoplex-K6-d3",
        ORTHOPLEX,
        "CE, K=6=2d, d=3: the classifier rows and centred class means are a softmax code "
        "(rho_ovr 1), the cross-polytope (octahedron)",
        "plain",
        _codes(6, 3),
        quick=True,
        procedure=SOFTMAX,
        expect="confirmed",
    ),
    Claim(
        "codes-ce-orthoplex-K8-d4",
        ORTHOPLEX,
        "CE, K=8=2d, d=4: the classifier rows and centred class means are a softmax code "
        "(rho_ovr 1), the cross-polytope in R^4",
        "plain",
        _codes(8, 4),
        procedure=SOFTMAX,
        expect="confirmed",
    ),
    Claim(
        "codes-ce-icosahedron-K12-d3",
        ICOSAHEDRON,
        "CE, K=12, d=3: the classifier rows and centred class means are a softmax code, the "
        "icosahedron (rho_ovr 1 - 1/sqrt 5 = 0.552786)",
        "plain",
        _codes(12, 3),
        procedure=SOFTMAX,
        expect="confirmed",
    ),
    Claim(
        "codes-ce-K8-d3-tammes",
        ANTIPRISM,
        "CE, K=8, d=3, lambda = 1e-6: the classifier rows are the softmax code, the Tammes "
        "square antiprism, rho_ovr 0.738796 (they are not: a square antiprism with h^2 = 0.2731, "
        "rho_ovr 0.738532; h^2 falls from 0.299 at lambda = 5e-3 to 0.2699 at 1e-8, toward the "
        "code's 0.2612, a slow approach and no equality at any lambda tried)",
        "plain",
        _codes(8, 3, 1e-6),
        procedure=SOFTMAX,
        expect="refuted",
    ),
    Claim(
        "codes-ce-K5-d3-bipyramid",
        BIPYRAMID,
        "CE, K=5, d=3 (lambda = 5e-3): the classifier rows and centred class means are a softmax "
        "code (rho_ovr 1), here the triangular bipyramid, though the class norms are not equal",
        "plain",
        _codes(5, 3),
        procedure=SOFTMAX,
        expect="confirmed",
    ),
    Claim(
        "codes-ce-K5-d3-cold",
        HOT_COLD,
        "CE, K=5, d=3, lambda = 1e-6: the classifier rows are a softmax code, rho_ovr 1 (they are "
        "not: a lower-symmetry configuration with unequal norms, rho_ovr 0.9766, whose margin per "
        "unit of penalty, 1.006, exceeds the code's 1)",
        "plain",
        _codes(5, 3, 1e-6),
        procedure=SOFTMAX,
        expect="refuted",
    ),
)

CLAIMS = PLAIN + CONVEX_CLAIMS + CODES + LANDSCAPE_CLAIMS
