"""The claims `ufm verify` checks for the plain UFM.

Each is one concrete parameter point of a published statement or of our own derivation;
the source string says which and what of it was read.
"""

from typing import Any

from ...claims import Claim
from . import codes

ZHU = "Zhu et al. 2021, arXiv 2105.02375, Thm 3.1"
TB31 = "Tirer & Bruna 2022, arXiv 2202.08087, Thm 3.1"
TB32 = "Tirer & Bruna 2022, arXiv 2202.08087, Thm 3.2"
DANG = "Dang et al. 2023, arXiv 2301.00437, M=1 (imbalanced MSE)"
ZERO = "zero-solution certificate, plain_ufm.md §5 [D, V]"
TEAM = "plain_ufm.md §4 [D, V]; its spectrum is that of Liu 2024, arXiv 2411.17278 (abstract)"
NARROW = "team derivation [D, V]: rank-d nuclear-norm problem; derivations/plain_ufm.py 10-11"


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
        "ce-imbalanced-seli-not-applicable",
        ZERO,
        "imbalanced CE just inside the zero threshold (N^2 lW lH = 77 < 100): no closed form",
        "plain",
        {"loss": "ce", "K": 4, "n": IMB, "d": 8, "lambda_W": 0.04, "lambda_H": 0.04},
        expect="inconclusive",
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


JIANG = (
    "Jiang et al. 2023, arXiv 2310.05351 (abstract [P]: GNC, the minimum one-vs-rest margin "
    "maximized, proved for the sphere-constrained UFM under conditions; the regular polygon "
    "for d=2 [R]); for this weight-decay UFM: an observation, no theorem"
)
ALCALA = (
    "Alcala, Andreeva, Kobzar, Mixon et al. 2026, arXiv 2603.20587 (abstract [P]: the codes "
    "are characterized for d+2 <= K <= 2d; the orthoplex at K = 2d [R]); for this weight-decay "
    "UFM: an observation, no theorem"
)
CODE_REPORT = (
    "Report: no theorem for K > d+1 beyond the above; best known codes: Tammes (largest "
    "minimum angle), Thomson / log energy (GNC2 uniformity, Liu et al. 2023, arXiv 2303.06484; "
    "Wu & Papyan 2024, arXiv 2405.17767); see ufm/models/plain/codes.py for each code's provenance"
)
HOT_COLD = (
    "Alcala et al. 2026, arXiv 2603.20587 (an author's summary [P]: two families of codes, "
    "'hot' and 'cold' losses, in the orthoplex regime); observation"
)


def _codes(K: int, d: int, lam: float = 5e-3) -> dict[str, Any]:
    return {"loss": "ce", "K": K, "n": 3, "d": d, "lambda_W": lam, "lambda_H": lam}


CODES: tuple[Claim, ...] = (
    Claim(
        "codes-ce-pentagon-K5-d2",
        JIANG,
        "CE, K=5, d=2: the centred class means are a regular pentagon (cosines within 1e-6)",
        "plain",
        _codes(5, 2),
        quick=True,
        procedure=codes.spherical_code,
        expect="confirmed",
    ),
    Claim(
        "codes-ce-heptagon-K7-d2",
        JIANG,
        "CE, K=7, d=2: the centred class means are a regular heptagon",
        "plain",
        _codes(7, 2),
        procedure=codes.spherical_code,
        expect="confirmed",
    ),
    Claim(
        "codes-ce-orthoplex-K6-d3",
        ALCALA,
        "CE, K=6=2d, d=3: the centred class means are the cross-polytope (octahedron)",
        "plain",
        _codes(6, 3),
        quick=True,
        procedure=codes.spherical_code,
        expect="confirmed",
    ),
    Claim(
        "codes-ce-orthoplex-K8-d4",
        ALCALA,
        "CE, K=8=2d, d=4: the centred class means are the cross-polytope in R^4",
        "plain",
        _codes(8, 4),
        procedure=codes.spherical_code,
        expect="confirmed",
    ),
    Claim(
        "codes-ce-icosahedron-K12-d3",
        f"{JIANG}; icosahedron: Tammes and universally optimal (Cohn & Kumar 2007)",
        "CE, K=12, d=3: the centred class means are the icosahedron (cosines +-1/sqrt 5, -1)",
        "plain",
        _codes(12, 3),
        procedure=codes.spherical_code,
        expect="confirmed",
    ),
    Claim(
        "codes-ce-K8-d3-tammes",
        CODE_REPORT,
        "CE, K=8, d=3: the centred class means are the Tammes-optimal square antiprism (they "
        "are not: a square antiprism with h^2 = 0.299, between Tammes 0.2612 and the "
        "log-optimal 0.3188; GNC2 reported for all three)",
        "plain",
        _codes(8, 3),
        procedure=codes.spherical_code,
        expect="refuted",
    ),
    Claim(
        "codes-ce-K5-d3-bipyramid",
        CODE_REPORT,
        "CE, K=5, d=3 (lambda = 5e-3): the class-mean directions are the triangular bipyramid "
        "(Thomson and log-energy optimum; GNC2 equal), though the norms are not equal",
        "plain",
        _codes(5, 3),
        procedure=codes.spherical_code,
        expect="confirmed",
    ),
    Claim(
        "codes-ce-K5-d3-cold",
        HOT_COLD,
        "CE, K=5, d=3, lambda = 2e-4: the class-mean directions are the triangular bipyramid "
        "(they are not: a lower-symmetry code, min angle 87.3 deg, appears at small lambda)",
        "plain",
        _codes(5, 3, 2e-4),
        procedure=codes.spherical_code,
        expect="refuted",
    ),
)

CLAIMS = PLAIN + CODES
