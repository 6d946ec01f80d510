"""The catalog of named paper claims: each is solved, checked against theory, and judged.

A claim is one concrete parameter point of a theorem. Points sit on both sides of every
threshold (collapse to zero, minority collapse) and include imbalanced classes. `expect` is
the verdict the numbers should give: ``agrees`` where the theorem applies, ``inconclusive``
where ufm must refuse to predict (outside the theorem's assumptions). A run passes when
every claim gets its expected verdict. Later models add their claims to `CATALOG`.

Sources: Zhu et al. 2021 (arXiv 2105.02375) Thm 3.1; Tirer & Bruna 2022 (arXiv 2202.08087)
Thms 3.1-3.2; Dang et al. 2023 (arXiv 2301.00437), M = 1; zero-solution certificate
(team derivation, derivations/plain_ufm.py); MSE with
d below the number of label directions (derivations/plain_ufm.py steps 10-11); CE with
K > d + 1 against spherical codes (verify_codes.py: Jiang et al. 2023, arXiv 2310.05351;
Alcala et al. 2026, arXiv 2603.20587; confirmed or refuted, not ``agrees``: no closed form).
Provenance: the papers' main statements were checked against their abstracts; theorem
numbers are as recalled in the theory notes ([R]). Every closed form is re-derived in
derivations/plain_ufm.py and confirmed here by the numerics, which is what a verdict rests on.
"""

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .check import check, found_quantities
from .errors import InputError
from .models import deep_linear, make
from .solve import solve
from .verify_codes import PROCEDURES as CODE_PROCEDURES
from .verify_mixup import PROCEDURES as MIXUP_PROCEDURES
from .verify_vicinity import PROCEDURES as VICINITY_PROCEDURES

PROCEDURES = VICINITY_PROCEDURES | MIXUP_PROCEDURES | CODE_PROCEDURES

ETF_RTOL = 1e-9  # a loss this far (relative) below the best ETF refutes ETF optimality

ZHU = "Zhu et al. 2021, arXiv 2105.02375, Thm 3.1"
TB31 = "Tirer & Bruna 2022, arXiv 2202.08087, Thm 3.1"
TB32 = "Tirer & Bruna 2022, arXiv 2202.08087, Thm 3.2"
DANG = "Dang et al. 2023, arXiv 2301.00437, M=1 (imbalanced MSE)"
ZERO = "zero-solution certificate, plain_ufm.md §5 [D, V]"
TEAM = "plain_ufm.md §4 [D, V]; its spectrum is that of Liu 2024, arXiv 2411.17278 (abstract)"
NARROW = "team derivation [D, V]: rank-d nuclear-norm problem; derivations/plain_ufm.py 10-11"


@dataclasses.dataclass(frozen=True)
class Claim:
    name: str  # unique
    source: str  # paper and theorem
    statement: str  # what the claim says, in words
    model: str
    hyper: dict[str, Any]
    expect: str = "agrees"
    quick: bool = False  # part of `ufm verify --quick`
    restarts: int = 3  # a global claim is judged on the best of several restarts
    # "theory" (ufm.check's verdict), "etf_global" or "etf_beaten"; or one of PROCEDURES
    # (vicinity: a theorem about the flow or the linear response, not one minimizer)
    judge: str = "theory"


def _plain(loss: str, **hyper) -> dict[str, Any]:
    base = {"loss": loss, "K": 4, "n": 5, "d": 8}
    return base | hyper


IMB = (100, 100, 10, 10)  # N = 220: minority classes die once N^2 lW lH > 10, i.e. lam > 0.01437

PLAIN_CLAIMS: tuple[Claim, ...] = (
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


# --- deep linear (Dang et al. 2023; Garrod & Keating 2024) ------------------------------------
DANG_DEEP = "Dang et al. 2023, arXiv 2301.00437 (deep linear MSE; closed forms [C, D, V])"
DANG_CE = "Dang et al. 2023, arXiv 2301.00437 (abstract: deep CE minimizers are ETF across layers)"
GK = "Garrod & Keating 2024, arXiv 2410.23169 (abstract: K>=4, L>=3 or K>=6, L=2: not DNC)"
TEAM_DEEP = "deep_linear.md §4 [D, V] (unregularized bias, imbalanced)"
IMB_DEEP = (200, 100, 50, 50)  # the paper's imbalanced setting


def _deep(loss: str, depth: int, **hyper) -> dict[str, Any]:
    return {"loss": loss, "K": 4, "n": 5, "d": 8, "depth": depth} | hyper


def _lam(value: float) -> dict[str, float]:
    return {"lambda_W": value, "lambda_H": value}


DEEP_CLAIMS: tuple[Claim, ...] = (
    Claim(
        "dl-mse-of",
        DANG_DEEP,
        "deep MSE, no bias, M=3: orthogonal frame at every layer (notes' worked example)",
        "deep-linear",
        _deep("mse", 3, **_lam(0.005)),
        quick=True,
        restarts=8,
    ),
    Claim(
        "dl-mse-bias-etf",
        DANG_DEEP,
        "deep MSE, last-layer bias, M=3: simplex ETF at every layer, b = 1/K",
        "deep-linear",
        _deep("mse", 3, bias=True, **_lam(0.005)),
        restarts=8,
    ),
    Claim(
        "dl-mse-of-M6",
        DANG_DEEP,
        "deep MSE, no bias, M=6: orthogonal frame at every layer",
        "deep-linear",
        _deep("mse", 6, **_lam(0.005)),
        restarts=16,
    ),
    Claim(
        "dl-mse-M1-plain",
        DANG_DEEP,
        "M=1 is the plain UFM: the deep closed form reproduces Tirer & Bruna's c - c^2/2",
        "deep-linear",
        _deep("mse", 1, lambda_W=0.05, lambda_H=0.01),
    ),
    Claim(
        "dl-mse-layer-lambdas",
        DANG_DEEP,
        "deep MSE, M=3, a different lambda per layer: only their product sets the loss",
        "deep-linear",
        _deep("mse", 3, lambda_W=(0.02, 0.005, 0.001), lambda_H=0.005),
        restarts=8,
    ),
    Claim(
        "dl-mse-gof",
        DANG_DEEP,
        "deep MSE, n=(200,100,50,50), M=6 (the paper's imbalanced run): general orthogonal frame",
        "deep-linear",
        _deep("mse", 6, n=IMB_DEEP, d=16, **_lam(5e-4)),
        restarts=16,
    ),
    Claim(
        "dl-mse-minority-alive",
        DANG_DEEP,
        "deep MSE, M=3, n=(100,100,10,10): minorities on below the threshold (6.4 < 10)",
        "deep-linear",
        _deep("mse", 3, n=IMB, **_lam(0.005)),
        quick=True,
        restarts=32,
    ),
    Claim(
        "dl-mse-minority-collapse",
        DANG_DEEP,
        "deep MSE, M=3, n=(100,100,10,10): minorities off just past the threshold (12.0 > 10)",
        "deep-linear",
        _deep("mse", 3, n=IMB, **_lam(0.008)),
        quick=True,
        restarts=16,
    ),
    Claim(
        "dl-mse-minority-alive-M6",
        DANG_DEEP,
        "deep MSE, M=6, n=(100,100,10,10): minorities on below the threshold (9.1 < 10)",
        "deep-linear",
        _deep("mse", 6, n=IMB, **_lam(0.0044)),
        restarts=32,
    ),
    Claim(
        "dl-mse-minority-collapse-M6",
        DANG_DEEP,
        "deep MSE, M=6, n=(100,100,10,10): minorities off past the threshold (11.0 > 10)",
        "deep-linear",
        _deep("mse", 6, n=IMB, **_lam(0.0052)),
        restarts=16,
    ),
    Claim(
        "dl-mse-below-zero-threshold",
        DANG_DEEP,
        "deep MSE, M=3: still an orthogonal frame just below beta* (lambda = 0.045 < 0.0455)",
        "deep-linear",
        _deep("mse", 3, **_lam(0.045)),
        restarts=16,
    ),
    Claim(
        "dl-mse-zero-past-threshold",
        DANG_DEEP,
        "deep MSE, M=3, lambda = 0.05: zero is global although a nonzero local minimum exists "
        "(the largest root is not the answer)",
        "deep-linear",
        _deep("mse", 3, **_lam(0.05)),
        restarts=16,
    ),
    Claim(
        "dl-mse-bias-imbalanced",
        TEAM_DEEP,
        "deep MSE, M=3, free bias, imbalanced: soft-thresholded centred labels, per direction",
        "deep-linear",
        _deep("mse", 3, n=IMB, bias=True, **_lam(0.004)),
        restarts=16,
    ),
    Claim(
        "dl-mse-narrow-not-applicable",
        DANG_DEEP,
        "deep MSE, no bias, d = 3 < K: the orthogonal frame does not fit; ufm must not predict",
        "deep-linear",
        _deep("mse", 3, d=3, **_lam(0.005)),
        expect="inconclusive",
        restarts=8,
    ),
    # --- deep cross-entropy: Dang's ETF claim against Garrod & Keating ---------------------
    Claim(
        "dang-ce-etf-K3-M3",
        DANG_CE,
        "deep CE, K=3, M=3: the simplex ETF is global (outside Garrod & Keating's regime)",
        "deep-linear",
        _deep("ce", 3, K=3, **_lam(0.005)),
        quick=True,
        restarts=24,
        judge="etf_global",
        expect="confirmed",
    ),
    Claim(
        "dang-ce-etf-K4-M2",
        DANG_CE,
        "deep CE, K=4, M=2, lambda = 0.005: the simplex ETF is global (lambda-dependent case)",
        "deep-linear",
        _deep("ce", 2, **_lam(0.005)),
        restarts=24,
        judge="etf_global",
        expect="confirmed",
    ),
    Claim(
        "dang-ce-etf-K4-M2-large-lambda",
        DANG_CE,
        "deep CE, K=4, M=2, lambda = 0.02: the simplex ETF is global (it is not: orthoplex)",
        "deep-linear",
        _deep("ce", 2, **_lam(0.02)),
        restarts=32,
        judge="etf_global",
        expect="refuted",
    ),
    Claim(
        "dang-ce-etf-K4-M3",
        DANG_CE,
        "deep CE, K=4, M=3: the simplex ETF is global (the notes' example)",
        "deep-linear",
        _deep("ce", 3, **_lam(0.005)),
        quick=True,
        restarts=24,
        judge="etf_global",
        expect="refuted",
    ),
    Claim(
        "gk-low-rank-K4-M3",
        GK,
        "deep CE, K=4, M=3: a lower-rank point beats every ETF",
        "deep-linear",
        _deep("ce", 3, **_lam(0.005)),
        restarts=24,
        judge="etf_beaten",
        expect="confirmed",
    ),
    Claim(
        "gk-low-rank-K5-M3",
        GK,
        "deep CE, K=5 (odd: no closed form), M=3: a lower-rank point beats every ETF",
        "deep-linear",
        _deep("ce", 3, K=5, **_lam(0.005)),
        restarts=24,
        judge="etf_beaten",
        expect="confirmed",
    ),
    Claim(
        "dang-ce-etf-K6-M2",
        DANG_CE,
        "deep CE, K=6, M=2: the simplex ETF is global",
        "deep-linear",
        _deep("ce", 2, K=6, **_lam(0.005)),
        restarts=24,
        judge="etf_global",
        expect="refuted",
    ),
    Claim(
        "gk-low-rank-K10-M2",
        GK,
        "deep CE, K=10, L=2, lambda = 2^-10 (their Fig. 1 setting): low rank beats the ETF",
        "deep-linear",
        _deep("ce", 2, K=10, d=12, **_lam(2**-10)),
        restarts=24,
        judge="etf_beaten",
        expect="confirmed",
    ),
)

# --- vicinity UFM (Tirer, Huang, Niles-Weed 2023) -----------------------------------------------
THN = "Tirer, Huang & Niles-Weed 2023, arXiv 2210.16658"
WORKED = {"K": 4, "n": 5, "d": 6, "lambda_W": 0.05, "lambda_H": 0.01, "beta": 5.0}  # §9
FIG1 = {"K": 4, "n": 10, "d": 10, "lambda_W": 2**0.5, "lambda_H": 0.5, "beta": 100.0}  # paper units


def _vic(**hyper) -> dict[str, Any]:
    return WORKED | hyper


VICINITY_CLAIMS: tuple[Claim, ...] = (
    Claim(
        "thn-cor22-fixed-point",
        f"{THN}, Cor 2.2",
        "H0 = a collapsed minimizer is a fixed point: the minimizer is (W*(H0), H0) (§9 example)",
        "vicinity",
        _vic(),
        quick=True,
        restarts=1,
    ),
    Claim(
        "thn-cor22-d-equals-K",
        f"{THN}, Cor 2.2",
        "the fixed point holds at d = K = 3 and a small beta = 0.01 (d = K also has a spurious "
        "local minimum, the mirror image of H0, so the best of 4 restarts is judged)",
        "vicinity",
        _vic(K=3, n=4, d=3, lambda_W=0.02, lambda_H=0.03, beta=0.01),
        restarts=4,
    ),
    Claim(
        "thn-cor22-K10-large-beta",
        f"{THN}, Cor 2.2",
        "the fixed point holds at K=10, n=20, d=16, beta = 1000, near the threshold (c = 0.95)",
        "vicinity",
        _vic(K=10, n=20, d=16, lambda_W=0.0095, lambda_H=0.0095, beta=1000.0),
        restarts=1,
    ),
    Claim(
        "thn-noisy-not-applicable",
        THN,
        "a noisy H0 has no closed-form minimizer: ufm must not predict one",
        "vicinity",
        _vic(noise=0.3),
        expect="inconclusive",
        restarts=1,
    ),
    Claim(
        "thn-thm31-flow-noise-0.5",
        f"{THN}, Thm 3.1",
        "along the central-path flow NC1 and e^{2 lH t} Tr Sigma_W fall, "
        "e^{2 lH t} Tr Sigma_B rises",
        "vicinity",
        _vic(noise=0.5),
        quick=True,
        judge="flow",
        expect="confirmed",
    ),
    Claim(
        "thn-thm31-flow-noise-3",
        f"{THN}, Thm 3.1",
        "Thm 3.1 monotonicity, K=5, d=8, H0 far from collapse (noise 3, seed 1)",
        "vicinity",
        _vic(K=5, n=4, d=8, lambda_W=0.02, lambda_H=0.005, noise=3.0, noise_seed=1),
        judge="flow",
        expect="confirmed",
    ),
    Claim(
        "thn-thm31-flow-random",
        f"{THN}, Thm 3.1",
        "Thm 3.1 monotonicity from an essentially random H0 (noise 30, K=3, n=10, d=4)",
        "vicinity",
        _vic(K=3, n=10, d=4, lambda_W=0.01, lambda_H=0.02, noise=30.0, noise_seed=2),
        judge="flow",
        expect="confirmed",
    ),
    Claim(
        "thn-implicit-step",
        f"{THN}, Sec. 3 (H_1/beta is a backward-Euler step of the flow)",
        "the minimizer for beta is one backward step of size 1/beta of the flow (noise 0.5)",
        "vicinity",
        _vic(noise=0.5),
        quick=True,
        judge="implicit_step",
        expect="confirmed",
    ),
    Claim(
        "thn-implicit-step-small-beta",
        f"{THN}, Sec. 3",
        "the backward-step identity at a small beta = 0.05, K=6, d=9 (a long step)",
        "vicinity",
        _vic(K=6, n=3, d=9, lambda_W=0.01, lambda_H=0.02, beta=0.05, noise=1.0, noise_seed=4),
        judge="implicit_step",
        expect="confirmed",
    ),
    Claim(
        "thn-thm42-worked-example",
        f"{THN}, Thm 4.2",
        "blocks of Eq. 5's F: sigma(F_kk) in [1 - sqrt(lH/lW)/beta, 1], F_kk' rank 1 with "
        "sigma_max = 2 lH (1-c)/beta (paper units); full F_kk spectrum as derived",
        "vicinity",
        _vic(),
        quick=True,
        judge="theorem_4_2",
        expect="confirmed",
    ),
    Claim(
        "thn-thm42-fig1",
        f"{THN}, Thm 4.2 (Fig. 1 setting, paper units)",
        "Thm 4.2 at K=4, n=10, d=10, lW^T = sqrt 2, lH^T = 0.5, beta^T = 100",
        "vicinity",
        FIG1 | {"units": "paper"},
        judge="theorem_4_2",
        expect="confirmed",
    ),
    Claim(
        "thn-thm42-K3-small-beta",
        f"{THN}, Thm 4.2",
        "Thm 4.2 for Eq. 5 at K=3, n=8, d=5 and a small beta = 0.2",
        "vicinity",
        _vic(K=3, n=8, d=5, lambda_W=0.03, lambda_H=0.004, beta=0.2),
        judge="theorem_4_2",
        expect="confirmed",
    ),
    Claim(
        "thn-first-order",
        f"{THN}, Thm 4.1",
        "F predicts the change of the minimizer for a small change of H0; error O(|dH0|^2)",
        "vicinity",
        _vic(),
        quick=True,
        judge="first_order",
        expect="confirmed",
    ),
    Claim(
        "thn-first-order-small-beta",
        f"{THN}, Thm 4.1",
        "first-order accuracy of the exact F at K=6, n=3, d=10 and beta = 0.05 (Eq. 5 is poor)",
        "vicinity",
        _vic(K=6, n=3, d=10, lambda_W=0.01, lambda_H=0.005, beta=0.05),
        judge="first_order",
        expect="confirmed",
    ),
    Claim(
        "thn-nc1-large-beta",
        f"{THN}, Cor 3.2 and Thm 4.1",
        "for large beta the minimizer is closer to collapse than H0: NC1 ratio = "
        "gamma_par^2 e_par + gamma_perp^2 e_perp for within-class noise",
        "vicinity",
        _vic(),
        quick=True,
        judge="nc1_reduction",
        expect="confirmed",
    ),
    Claim(
        "thn-nc1-large-beta-K5",
        f"{THN}, Cor 3.2 and Thm 4.1",
        "the NC1 reduction at K=5, n=6, d=12, lW=0.002, lH=0.02",
        "vicinity",
        _vic(K=5, n=6, d=12, lambda_W=0.002, lambda_H=0.02, beta=2.0),
        judge="nc1_reduction",
        expect="confirmed",
    ),
    Claim(
        "thn-regularizers",
        f"{THN}, Sec. 4 discussion",
        "raising lambda_H lowers NC1 of the minimizer, raising lambda_W raises it, and "
        "lambda_H acts more strongly (log-derivatives), as the first-order theory predicts",
        "vicinity",
        _vic(beta=0.5, noise=0.05),
        judge="regularizers",
        expect="confirmed",
    ),
)

# --- mixup UFM (Fisher, Meng, Papyan 2024) ---------------------------------------------------
FMP = "Fisher, Meng & Papyan 2024, arXiv 2402.06171 (natural formulation, mixup.md §1 [R + D])"
LAMS = "0.1,0.25,0.5,0.75,0.9"


def _mix(loss: str, **hyper) -> dict[str, Any]:
    return {"loss": loss, "K": 3, "n": 100, "d": 4, "mix": LAMS} | hyper


MIXUP_CLAIMS: tuple[Claim, ...] = (
    Claim(
        "mixup-ce-etf-K3",
        f"{FMP}; mixup.md §2",
        "CE, fixed ETF: every mixed feature equals its closed form (K=3, five lam values)",
        "mixup",
        _mix("ce"),
        quick=True,
        restarts=1,
    ),
    Claim(
        "mixup-ce-etf-K6-beta",
        f"{FMP}; mixup.md §2",
        "CE, fixed ETF, K=6, d=9, lam ~ Beta(0.4, 0.4) by 6-node Gauss-Jacobi quadrature",
        "mixup",
        _mix("ce", K=6, d=9, w_norm=2.0, lambda_H=2e-4, mix="beta:0.4:6"),
        restarts=1,
    ),
    Claim(
        "mixup-ce-etf-K10-sampled",
        f"{FMP}; mixup.md §2",
        "CE, fixed ETF, K=10, d=9 = K-1: 1000 sampled mixed examples, lam ~ Beta(1, 1)",
        "mixup",
        _mix("ce", K=10, d=9, mix="beta:1:sampled:0"),
        restarts=1,
    ),
    Claim(
        "mixup-mse-etf-K3",
        f"{FMP}; mixup.md §3",
        "MSE, fixed ETF: every mixed feature is the convex combination of §3, linear in lam",
        "mixup",
        _mix("mse"),
        quick=True,
        restarts=1,
    ),
    Claim(
        "mixup-mse-etf-K10",
        f"{FMP}; mixup.md §3",
        "MSE, fixed ETF, K=10, d=12, lam ~ Beta(2, 2) by quadrature",
        "mixup",
        _mix("mse", K=10, d=12, mix="beta:2:5"),
        restarts=1,
    ),
    Claim(
        "mixup-ce-learned-K3",
        f"{FMP}; learned W: mixup.md §4",
        "CE, learned W: the minimum is the best simplex-ETF classifier's (K=3)",
        "mixup",
        _mix("ce", classifier="learned", lambda_W=5e-3),
        restarts=4,
    ),
    Claim(
        "mixup-ce-learned-K5",
        f"{FMP}; learned W: mixup.md §4",
        "CE, learned W, K=5, d=6, Beta(1, 1) by 8-node quadrature: best-ETF minimum",
        "mixup",
        _mix("ce", K=5, d=6, classifier="learned", lambda_W=5e-3, mix="beta:1:8"),
        restarts=4,
    ),
    Claim(
        "mixup-mse-learned-K4",
        f"{FMP}; factorization bound, plain_ufm.md §1",
        "MSE, learned W: the minimum soft-thresholds the weighted soft-label matrix (K=4)",
        "mixup",
        _mix("mse", K=4, d=5, classifier="learned", lambda_W=5e-3, mix="beta:1:8"),
        restarts=4,
    ),
    Claim(
        "mixup-ce-geometry-K3",
        f"{FMP} (abstract: same class on the classifier, different classes by the boundary)",
        "CE: different-class features in span{w_c, w_c'}, same-class ones independent of lam, "
        "lam = 1/2 exactly on the decision boundary",
        "mixup",
        _mix("ce"),
        quick=True,
        judge="mixup_geometry",
        expect="confirmed",
    ),
    Claim(
        "mixup-ce-geometry-K8",
        f"{FMP} (abstract)",
        "the same geometry at K=8, d=10, w_norm 3",
        "mixup",
        _mix("ce", K=8, d=10, w_norm=3.0, lambda_H=1e-4),
        judge="mixup_geometry",
        expect="confirmed",
    ),
    Claim(
        "mixup-ce-calibration",
        f"{FMP} (abstract: mixup and calibration); mixup.md §2",
        "CE: as lambda_H -> 0 the logit gap of a mixed feature tends to log(lam/(1-lam))",
        "mixup",
        _mix("ce"),
        judge="mixup_calibration",
        expect="confirmed",
    ),
    Claim(
        "mixup-ce-learned-etf",
        f"{FMP} (the ETF classifier is assumed); mixup.md §4",
        "CE, learned W: the learned classifier is a simplex ETF",
        "mixup",
        _mix("ce", classifier="learned", lambda_W=5e-3),
        judge="mixup_learned_etf",
        expect="confirmed",
    ),
    Claim(
        "mixup-mse-learned-etf",
        f"{FMP} (the ETF classifier is assumed); derivations/mixup.py",
        "MSE, learned W: the learned classifier is a simplex ETF (it is not: its rows keep "
        "a common mean, as for the bias-free MSE UFM)",
        "mixup",
        _mix("mse", K=4, d=5, classifier="learned", lambda_W=5e-3),
        judge="mixup_learned_etf",
        expect="refuted",
    ),
)

# --- cross-entropy with K > d + 1: spherical codes (verify_codes.py) -------------------------
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
    "Wu & Papyan 2024, arXiv 2405.17767); see verify_codes.py for each code's provenance"
)
HOT_COLD = (
    "Alcala et al. 2026, arXiv 2603.20587 (an author's summary [P]: two families of codes, "
    "'hot' and 'cold' losses, in the orthoplex regime); observation"
)


def _codes(K: int, d: int, lam: float = 5e-3) -> dict[str, Any]:
    return {"loss": "ce", "K": K, "n": 3, "d": d, "lambda_W": lam, "lambda_H": lam}


CODE_CLAIMS: tuple[Claim, ...] = (
    Claim(
        "codes-ce-pentagon-K5-d2",
        JIANG,
        "CE, K=5, d=2: the centred class means are a regular pentagon (cosines within 1e-6)",
        "plain",
        _codes(5, 2),
        quick=True,
        judge="spherical_code",
        expect="confirmed",
    ),
    Claim(
        "codes-ce-heptagon-K7-d2",
        JIANG,
        "CE, K=7, d=2: the centred class means are a regular heptagon",
        "plain",
        _codes(7, 2),
        judge="spherical_code",
        expect="confirmed",
    ),
    Claim(
        "codes-ce-orthoplex-K6-d3",
        ALCALA,
        "CE, K=6=2d, d=3: the centred class means are the cross-polytope (octahedron)",
        "plain",
        _codes(6, 3),
        quick=True,
        judge="spherical_code",
        expect="confirmed",
    ),
    Claim(
        "codes-ce-orthoplex-K8-d4",
        ALCALA,
        "CE, K=8=2d, d=4: the centred class means are the cross-polytope in R^4",
        "plain",
        _codes(8, 4),
        judge="spherical_code",
        expect="confirmed",
    ),
    Claim(
        "codes-ce-icosahedron-K12-d3",
        f"{JIANG}; icosahedron: Tammes and universally optimal (Cohn & Kumar 2007)",
        "CE, K=12, d=3: the centred class means are the icosahedron (cosines +-1/sqrt 5, -1)",
        "plain",
        _codes(12, 3),
        judge="spherical_code",
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
        judge="spherical_code",
        expect="refuted",
    ),
    Claim(
        "codes-ce-K5-d3-bipyramid",
        CODE_REPORT,
        "CE, K=5, d=3 (lambda = 5e-3): the class-mean directions are the triangular bipyramid "
        "(Thomson and log-energy optimum; GNC2 equal), though the norms are not equal",
        "plain",
        _codes(5, 3),
        judge="spherical_code",
        expect="confirmed",
    ),
    Claim(
        "codes-ce-K5-d3-cold",
        HOT_COLD,
        "CE, K=5, d=3, lambda = 2e-4: the class-mean directions are the triangular bipyramid "
        "(they are not: a lower-symmetry code, min angle 87.3 deg, appears at small lambda)",
        "plain",
        _codes(5, 3, 2e-4),
        judge="spherical_code",
        expect="refuted",
    ),
)

CATALOG = PLAIN_CLAIMS + DEEP_CLAIMS + VICINITY_CLAIMS + MIXUP_CLAIMS + CODE_CLAIMS


def select(names: Iterable[str] = (), quick: bool = False) -> list[Claim]:
    """Claims by name (all if none given), restricted to the quick subset if asked."""
    names = list(names)
    known = {c.name for c in CATALOG}
    unknown = [x for x in names if x not in known]
    if unknown:
        raise InputError(f"unknown claim {unknown[0]!r}; `ufm verify --list` lists the catalog")
    return [c for c in CATALOG if (not names or c.name in names) and (c.quick or not quick)]


def _etf_verdict(problem, sol, report) -> tuple[str, str, float]:
    """Compare the best converged restart with the best ETF-structured loss.

    Returns ("lower", reason) when a converged point beats the ETF by more than
    ETF_RTOL, ("equal", reason) when the best restart sits on the ETF loss, else
    ("above", reason): every restart stopped higher, which settles nothing.
    """
    p = problem.hyperparameters()
    mu = deep_linear.mu(p["lambda_H"], np.asarray(problem.lambda_W))
    _, etf = deep_linear.etf_best(p["K"], p["n"], mu, p["depth"])
    loss = float(sol.loss)
    sv = found_quantities(problem, sol.params)["logits_sv"]
    rank = int(np.sum(sv > 1e-6 * sv.max())) if sv.max() > 0 else 0
    shape = f"class-mean logits of rank {rank}, singular values {np.round(sv[:rank], 4).tolist()}"
    witness = _witness(problem, report)
    if not sol.converged and witness is None:
        return "above", f"not converged: {sol.status}", etf
    if sol.converged and loss < etf * (1 - ETF_RTOL):
        return "lower", f"found {loss:.10g} < best ETF {etf:.10g} ({shape})", etf
    if witness is not None and witness[0] < etf * (1 - ETF_RTOL):
        w_loss, w_grad = witness
        return (
            "lower",
            f"the closed-form {report.theory.geometry} point has loss {w_loss:.10g} < best ETF "
            f"{etf:.10g} (gradient norm {w_grad:.1e}: stationary); the restarts did not reach "
            f"it (best {loss:.10g})",
            etf,
        )
    if loss <= etf * (1 + ETF_RTOL):
        return "equal", f"best of {sol.restart_losses.size} restarts = best ETF {etf:.10g}", etf
    return "above", f"every restart stopped above the best ETF {etf:.10g}", etf


def _witness(problem, report) -> tuple[float, float] | None:
    """Loss and gradient norm, evaluated by the model itself, of a closed-form low-rank point."""
    theory = report.theory
    if theory.geometry != "orthoplex" or theory.params is None:
        return None
    params = {k: jnp.asarray(v) for k, v in theory.params.items()}
    loss, grad = jax.value_and_grad(problem.loss)(params)
    return float(loss), float(optax.tree_utils.tree_norm(grad))


def judge(claim: Claim, problem, sol, report) -> tuple[str, str, dict[str, Any] | None]:
    """The claim's verdict and reason (and, for ETF claims, what was predicted)."""
    if claim.judge == "theory":
        return report.verdict, report.reason, None
    outcome, reason, etf = _etf_verdict(problem, sol, report)
    predicted = {"loss": etf, "regime": "collapsed", "geometry": "best simplex_etf"}
    verdict = {
        "etf_global": {"lower": "refuted", "equal": "confirmed", "above": "inconclusive"},
        "etf_beaten": {"lower": "confirmed", "equal": "inconclusive", "above": "inconclusive"},
    }[claim.judge][outcome]
    return verdict, reason, predicted


def _run_procedure(claim: Claim, problem, start: float) -> dict[str, Any]:
    """A claim judged by one of `PROCEDURES` (vicinity, mixup, codes) rather than one solve."""
    outcome = PROCEDURES[claim.judge](problem)
    return {
        "claim": claim.name,
        "source": claim.source,
        "statement": claim.statement,
        "model": claim.model,
        "parameters": problem.hyperparameters(),
        "predicted": {"loss": None, "text": outcome.predicted},
        "found": {"loss": None, "text": outcome.found},
        "loss_gap": None,
        "verdict": outcome.verdict,
        "expected": claim.expect,
        "passed": outcome.verdict == claim.expect,
        "reason": outcome.reason,
        "seconds": time.perf_counter() - start,
    }


def run(claim: Claim) -> dict[str, Any]:
    """Solve one claim, check it against theory, and return a JSON-able record."""
    start = time.perf_counter()
    problem = make(claim.model, **claim.hyper)
    if claim.judge in PROCEDURES:
        return _run_procedure(claim, problem, start)
    sol = solve(problem, restarts=claim.restarts)
    report = check(problem, sol)
    theory = report.theory
    verdict, reason, etf_prediction = judge(claim, problem, sol, report)
    predicted = {"loss": theory.loss, "regime": theory.regime, "geometry": theory.geometry}
    gap = report.loss_gap
    if etf_prediction is not None:  # the gap to what this claim predicts: the best ETF
        gap = (report.loss - etf_prediction["loss"]) / abs(etf_prediction["loss"])
    return {
        "claim": claim.name,
        "source": claim.source,
        "statement": claim.statement,
        "model": claim.model,
        "parameters": problem.hyperparameters(),
        "predicted": etf_prediction or predicted,
        "theory": predicted | {"reason": theory.reason},
        "found": {
            "loss": report.loss,
            "converged": sol.converged,
            "steps": int(sol.steps),
            "grad_norm": float(sol.grad_norm),
            "loss_spread": sol.loss_spread,
            "metrics": report.metrics,
            "layer_metrics": report.layer_metrics,
        },
        "loss_gap": gap,
        "errors": report.errors,
        "verdict": verdict,
        "expected": claim.expect,
        "passed": verdict == claim.expect,
        "reason": reason,
        "seconds": time.perf_counter() - start,
    }


def run_all(claims: list[Claim], on_result: Callable[[dict[str, Any]], None]) -> list[dict]:
    results = []
    for claim in claims:
        results.append(run(claim))
        on_result(results[-1])
    return results
