"""The claims `ufm verify` checks for the vicinity UFM.

Tirer, Huang & Niles-Weed 2023. Most are theorems about the flow or the linear response,
judged by a procedure of `procedures.py` rather than one minimizer.
"""

from typing import Any

from ...claims import Claim
from . import landscape_claims, procedures

THN = "Tirer, Huang & Niles-Weed 2023, arXiv 2210.16658"
BODY = "body read in the ICLR 2023 submission, numbered as there"
COR22 = f"{THN}, Cor 2.2 ({BODY}); derivations/vicinity.py step 3 [read: paper body]"
NO_CLOSED_FORM = (
    f"{THN} ({BODY}): the paper gives the minimizer in closed form only for a collapsed H0 "
    "(Cor 2.2) [read: paper body]"
)
THM31 = f"{THN}, Thm 3.1 ({BODY}), in the canonical time tau = N t [read: paper body]"
STEP = (
    f"{THN}, Sec. 3 ({BODY}): the minimizer for beta is one backward-Euler step of size 1/beta "
    "of the central-path flow [read: paper body]"
)
THM42 = (
    f"{THN}, Thm 4.2 ({BODY}); the full spectrum of F_kk is ours, derivations/vicinity.py "
    "step 8 [read: paper body]"
)
THM42_FIG1 = (
    f"{THN}, Thm 4.2 ({BODY}), at a reconstruction of the setting of their Fig. 1: K, n, d, "
    "beta^T = 100 and lambda_W^T = sqrt 2 as read in that figure's description (the sqrt 2 may "
    "be an artefact of the text extraction), lambda_H^T = 0.5 chosen by ufm [read: paper body]"
)
THM41 = (
    f"{THN}, Thm 4.1 ({BODY}); F is evaluated exactly and matrix-free as (I + S0/beta)^-1, "
    "derivations/vicinity.py step 5 [read: paper body]"
)
SHRINK = (
    "ours: the within-class shrink factors gamma_par, gamma_perp of the exact linear response "
    "at a collapsed H0, derivations/vicinity.py step 6; the part with generic noise (NC1 "
    f"falls for large beta) is Cor 3.2 of {THN} (body read) "
    "[ours: derivation vicinity.py step 6]"
)
REGULARIZERS = (
    f"{THN}, Sec. 4 discussion ({BODY}): feature regularization matters more than last-layer "
    "regularization; the log-derivatives are compared with ufm's first-order predictions "
    "[read: paper body]"
)
WORKED = {"K": 4, "n": 5, "d": 6, "lambda_W": 0.05, "lambda_H": 0.01, "beta": 5.0}
FIG1 = {"K": 4, "n": 10, "d": 10, "lambda_W": 2**0.5, "lambda_H": 0.5, "beta": 100.0}  # paper units


def _vic(**hyper) -> dict[str, Any]:
    return WORKED | hyper


MIRROR = (
    "ours: the landscape note of ufm/models/vicinity/problem.py (found by ufm, not in the "
    "paper's main body) and the family argument of ufm/models/vicinity/landscape_claims.py "
    "[ours: numerics]"
)

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "thn-cor22-fixed-point",
        COR22,
        "H0 = a collapsed minimizer is a fixed point: the minimizer is (W*(H0), H0) (worked "
        "example K=4, n=5, d=6)",
        "vicinity",
        _vic(),
        quick=True,
        restarts=1,
    ),
    Claim(
        "thn-cor22-d-equals-K",
        COR22,
        "the fixed point holds at d = K = 3 and a small beta = 0.01 (d = K also has a spurious "
        "local minimum, the mirror image of H0, so the best of 4 restarts is judged)",
        "vicinity",
        _vic(K=3, n=4, d=3, lambda_W=0.02, lambda_H=0.03, beta=0.01),
        restarts=4,
    ),
    Claim(
        "thn-cor22-K10-large-beta",
        COR22,
        "the fixed point holds at K=10, n=20, d=16, beta = 1000, near the threshold (c = 0.95)",
        "vicinity",
        _vic(K=10, n=20, d=16, lambda_W=0.0095, lambda_H=0.0095, beta=1000.0),
        restarts=1,
    ),
    Claim(
        "thn-noisy-not-applicable",
        NO_CLOSED_FORM,
        "a noisy H0 has no closed-form minimizer: ufm must not predict one",
        "vicinity",
        _vic(noise=0.3),
        expect="inconclusive",
        restarts=1,
    ),
    Claim(
        "thn-thm31-flow-noise-0.5",
        THM31,
        "along the central-path flow NC1 and e^{2 lH tau} Tr Sigma_W fall, "
        "e^{2 lH tau} Tr Sigma_B rises",
        "vicinity",
        _vic(noise=0.5),
        quick=True,
        procedure=procedures.flow,
        expect="confirmed",
    ),
    Claim(
        "thn-thm31-flow-noise-3",
        THM31,
        "Thm 3.1 monotonicity, K=5, d=8, H0 far from collapse (noise 3, seed 1)",
        "vicinity",
        _vic(K=5, n=4, d=8, lambda_W=0.02, lambda_H=0.005, noise=3.0, noise_seed=1),
        procedure=procedures.flow,
        expect="confirmed",
    ),
    Claim(
        "thn-thm31-flow-random",
        THM31,
        "Thm 3.1 monotonicity from an essentially random H0 (noise 30, K=3, n=10, d=4)",
        "vicinity",
        _vic(K=3, n=10, d=4, lambda_W=0.01, lambda_H=0.02, noise=30.0, noise_seed=2),
        procedure=procedures.flow,
        expect="confirmed",
    ),
    Claim(
        "thn-implicit-step",
        STEP,
        "the minimizer for beta is one backward step of size 1/beta of the flow (noise 0.5)",
        "vicinity",
        _vic(noise=0.5),
        quick=True,
        procedure=procedures.implicit_step,
        expect="confirmed",
    ),
    Claim(
        "thn-implicit-step-small-beta",
        STEP,
        "the backward-step identity at a small beta = 0.05, K=6, d=9 (a long step)",
        "vicinity",
        _vic(K=6, n=3, d=9, lambda_W=0.01, lambda_H=0.02, beta=0.05, noise=1.0, noise_seed=4),
        procedure=procedures.implicit_step,
        expect="confirmed",
    ),
    Claim(
        "thn-thm42-worked-example",
        THM42,
        "blocks of Eq. 5's F: sigma(F_kk) in [1 - sqrt(lH/lW)/beta, 1], F_kk' rank 1 with "
        "sigma_max = 2 lH (1-c)/beta (paper units); and the full F_kk spectrum derived by ufm",
        "vicinity",
        _vic(),
        quick=True,
        procedure=procedures.theorem_4_2,
        expect="confirmed",
    ),
    Claim(
        "thn-thm42-fig1",
        THM42_FIG1,
        "Thm 4.2 at K=4, n=10, d=10, lW^T = sqrt 2, lH^T = 0.5 (chosen by ufm), beta^T = 100: "
        "near the setting of the paper's Fig. 1",
        "vicinity",
        FIG1 | {"units": "paper"},
        procedure=procedures.theorem_4_2,
        expect="confirmed",
    ),
    Claim(
        "thn-thm42-K3-small-beta",
        THM42,
        "Thm 4.2 for Eq. 5 at K=3, n=8, d=5 and a small beta = 0.2",
        "vicinity",
        _vic(K=3, n=8, d=5, lambda_W=0.03, lambda_H=0.004, beta=0.2),
        procedure=procedures.theorem_4_2,
        expect="confirmed",
    ),
    Claim(
        "thn-first-order",
        THM41,
        "F predicts the change of the minimizer for a small change of H0; error O(|dH0|^2)",
        "vicinity",
        _vic(),
        quick=True,
        procedure=procedures.first_order,
        expect="confirmed",
    ),
    Claim(
        "thn-first-order-small-beta",
        THM41,
        "first-order accuracy of the exact F at K=6, n=3, d=10 and beta = 0.05 (Eq. 5 is poor)",
        "vicinity",
        _vic(K=6, n=3, d=10, lambda_W=0.01, lambda_H=0.005, beta=0.05),
        procedure=procedures.first_order,
        expect="confirmed",
    ),
    Claim(
        "thn-nc1-large-beta",
        SHRINK,
        "for large beta the minimizer is closer to collapse than H0: NC1 ratio = "
        "gamma_par^2 e_par + gamma_perp^2 e_perp for within-class noise",
        "vicinity",
        _vic(),
        quick=True,
        procedure=procedures.nc1_reduction,
        expect="confirmed",
    ),
    Claim(
        "thn-nc1-large-beta-K5",
        SHRINK,
        "the NC1 reduction at K=5, n=6, d=12, lW=0.002, lH=0.02",
        "vicinity",
        _vic(K=5, n=6, d=12, lambda_W=0.002, lambda_H=0.02, beta=2.0),
        procedure=procedures.nc1_reduction,
        expect="confirmed",
    ),
    Claim(
        "thn-regularizers",
        REGULARIZERS,
        "raising lambda_H lowers NC1 of the minimizer, raising lambda_W raises it, and "
        "lambda_H acts more strongly (log-derivatives), as the first-order theory predicts",
        "vicinity",
        _vic(beta=0.5, noise=0.05),
        procedure=procedures.regularizers,
        expect="confirmed",
    ),
    Claim(
        "vicinity-mirror-minimum",
        MIRROR,
        "d = K = 4, beta = 0.01, H0 collapsed: besides the closed form's global minimum the "
        "restarts reach a higher minimum near a mirror image Q H0 (no negative eigenvalue), "
        "a (K-1)-dimensional family with K-1 zero Hessian eigenvalues",
        "vicinity",
        _vic(K=4, n=5, d=4, beta=0.01),
        procedure=landscape_claims.mirror_minimum,
        expect="confirmed",
    ),
)
