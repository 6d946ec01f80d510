"""The claims `ufm verify` checks for the mixup UFM.

Fisher, Meng & Papyan 2024: closed forms judged by `ufm.check`, geometric properties by
the procedures of `procedures.py`.
"""

from typing import Any

from ...claims import Claim
from . import procedures

FMP = (
    "Fisher, Meng & Papyan 2024, arXiv 2402.06171 (abstract read: the optimal last-layer "
    "features of a mixup UFM, derived assuming the classifier is a simplex ETF; the paper's "
    "text was not read)"
)
FIXED_CE = (
    "ours: ufm's formulation of the mixup UFM (a free feature per mixed example, soft labels) "
    f"and its exact optimum under a fixed simplex ETF, derivations/mixup.py steps 1-4; after "
    f"{FMP} [ours: derivation mixup.py steps 1-4]"
)
FIXED_MSE = (
    "ours: the MSE feature under a fixed simplex ETF, derivations/mixup.py step 6; the abstract "
    f"of {FMP} names MSE-mixup only as the contrast [ours: derivation mixup.py step 6]"
)
LEARNED_CE = (
    "ours: whether the assumed simplex-ETF classifier is optimal when W is learned is ufm's "
    "question; the prediction is the best ETF classifier (a scalar problem in its norm) and "
    f"the solver looks for anything lower; {FMP} [ours: numerics]"
)
LEARNED_MSE = (
    "ours: with W learned the MSE mixup UFM is the plain MSE UFM on weighted soft labels, "
    "solved exactly by soft-thresholding their singular values, derivations/mixup.py step 7 "
    "[ours: derivation mixup.py step 7]"
)
GEOMETRY = (
    f"{FMP}: same-class features align with the classifier, different-class ones lie along "
    "the decision boundary; the precise form tested (the span, independence of lam, the "
    "boundary at lam = 1/2) is ufm's, derivations/mixup.py steps 3-4 [read: abstract]"
)
CALIBRATION = (
    "ours: the limit log(lam/(1-lam)) of the logit gap, derivations/mixup.py step 5; the "
    f"abstract of {FMP} links mixup's geometry to calibration "
    "[ours: derivation mixup.py step 5]"
)
LEARNED_ETF_CE = (
    "ours: the paper assumes the classifier is a simplex ETF; whether a learned one is, is "
    f"ufm's question, answered by the solver; {FMP} [ours: numerics]"
)
LEARNED_ETF_MSE = (
    "ours: ufm's question, not a statement of Fisher, Meng & Papyan 2024 (arXiv 2402.06171, "
    "abstract read), who assume an ETF classifier for cross-entropy; derivations/mixup.py "
    "step 7 shows a nonzero learned MSE classifier is never a simplex ETF "
    "[ours: derivation mixup.py step 7]"
)
LAMS = "0.1,0.25,0.5,0.75,0.9"


def _mix(loss: str, **hyper) -> dict[str, Any]:
    return {"loss": loss, "K": 3, "n": 100, "d": 4, "mix": LAMS} | hyper


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "mixup-ce-etf-K3",
        FIXED_CE,
        "CE, fixed ETF: every mixed feature equals its closed form (K=3, five lam values)",
        "mixup",
        _mix("ce"),
        quick=True,
        restarts=1,
    ),
    Claim(
        "mixup-ce-etf-K6-beta",
        FIXED_CE,
        "CE, fixed ETF, K=6, d=9, lam ~ Beta(0.4, 0.4) by 6-node Gauss-Jacobi quadrature",
        "mixup",
        _mix("ce", K=6, d=9, w_norm=2.0, lambda_H=2e-4, mix="beta:0.4:6"),
        restarts=1,
    ),
    Claim(
        "mixup-ce-etf-K10-sampled",
        FIXED_CE,
        "CE, fixed ETF, K=10, d=9 = K-1: 1000 sampled mixed examples, lam ~ Beta(1, 1)",
        "mixup",
        _mix("ce", K=10, d=9, mix="beta:1:sampled:0"),
        restarts=1,
    ),
    Claim(
        "mixup-mse-etf-K3",
        FIXED_MSE,
        "MSE, fixed ETF: every mixed feature is the closed-form convex combination, linear in lam",
        "mixup",
        _mix("mse"),
        quick=True,
        restarts=1,
    ),
    Claim(
        "mixup-mse-etf-K10",
        FIXED_MSE,
        "MSE, fixed ETF, K=10, d=12, lam ~ Beta(2, 2) by quadrature",
        "mixup",
        _mix("mse", K=10, d=12, mix="beta:2:5"),
        restarts=1,
    ),
    Claim(
        "mixup-ce-learned-K3",
        LEARNED_CE,
        "CE, learned W: the minimum is the best simplex-ETF classifier's (K=3)",
        "mixup",
        _mix("ce", classifier="learned", lambda_W=5e-3),
        restarts=4,
    ),
    Claim(
        "mixup-ce-learned-K5",
        LEARNED_CE,
        "CE, learned W, K=5, d=6, Beta(1, 1) by 8-node quadrature: best-ETF minimum",
        "mixup",
        _mix("ce", K=5, d=6, classifier="learned", lambda_W=5e-3, mix="beta:1:8"),
        restarts=4,
    ),
    Claim(
        "mixup-mse-learned-K4",
        LEARNED_MSE,
        "MSE, learned W: the minimum soft-thresholds the weighted soft-label matrix (K=4)",
        "mixup",
        _mix("mse", K=4, d=5, classifier="learned", lambda_W=5e-3, mix="beta:1:8"),
        restarts=4,
    ),
    Claim(
        "mixup-ce-geometry-K3",
        GEOMETRY,
        "CE: different-class features in span{w_c, w_c'}, same-class ones independent of lam, "
        "lam = 1/2 exactly on the decision boundary",
        "mixup",
        _mix("ce"),
        quick=True,
        procedure=procedures.geometry,
        expect="confirmed",
    ),
    Claim(
        "mixup-ce-geometry-K8",
        GEOMETRY,
        "the same geometry at K=8, d=10, w_norm 3",
        "mixup",
        _mix("ce", K=8, d=10, w_norm=3.0, lambda_H=1e-4),
        procedure=procedures.geometry,
        expect="confirmed",
    ),
    Claim(
        "mixup-ce-calibration",
        CALIBRATION,
        "CE: as lambda_H -> 0 the logit gap of a mixed feature tends to log(lam/(1-lam))",
        "mixup",
        _mix("ce"),
        procedure=procedures.calibration,
        expect="confirmed",
    ),
    Claim(
        "mixup-ce-learned-etf",
        LEARNED_ETF_CE,
        "CE, learned W: the learned classifier is a simplex ETF",
        "mixup",
        _mix("ce", classifier="learned", lambda_W=5e-3),
        procedure=procedures.learned_etf,
        expect="confirmed",
    ),
    Claim(
        "mixup-mse-learned-etf",
        LEARNED_ETF_MSE,
        "ufm's question, not the paper's: with MSE and a learned W, is the learned classifier a "
        "simplex ETF? (it is not: its rows keep a common mean, as for the bias-free MSE UFM)",
        "mixup",
        _mix("mse", K=4, d=5, classifier="learned", lambda_W=5e-3),
        procedure=procedures.learned_etf,
        expect="refuted",
    ),
)
