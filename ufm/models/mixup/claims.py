"""The claims `ufm verify` checks for the mixup UFM.

Fisher, Meng & Papyan 2024: closed forms judged by `ufm.check`, geometric properties by
the procedures of `procedures.py`.
"""

from typing import Any

from ...claims import Claim
from . import procedures

FMP = "Fisher, Meng & Papyan 2024, arXiv 2402.06171 (natural formulation, mixup.md §1 [R + D])"
LAMS = "0.1,0.25,0.5,0.75,0.9"


def _mix(loss: str, **hyper) -> dict[str, Any]:
    return {"loss": loss, "K": 3, "n": 100, "d": 4, "mix": LAMS} | hyper


CLAIMS: tuple[Claim, ...] = (
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
        procedure=procedures.geometry,
        expect="confirmed",
    ),
    Claim(
        "mixup-ce-geometry-K8",
        f"{FMP} (abstract)",
        "the same geometry at K=8, d=10, w_norm 3",
        "mixup",
        _mix("ce", K=8, d=10, w_norm=3.0, lambda_H=1e-4),
        procedure=procedures.geometry,
        expect="confirmed",
    ),
    Claim(
        "mixup-ce-calibration",
        f"{FMP} (abstract: mixup and calibration); mixup.md §2",
        "CE: as lambda_H -> 0 the logit gap of a mixed feature tends to log(lam/(1-lam))",
        "mixup",
        _mix("ce"),
        procedure=procedures.calibration,
        expect="confirmed",
    ),
    Claim(
        "mixup-ce-learned-etf",
        f"{FMP} (the ETF classifier is assumed); mixup.md §4",
        "CE, learned W: the learned classifier is a simplex ETF",
        "mixup",
        _mix("ce", classifier="learned", lambda_W=5e-3),
        procedure=procedures.learned_etf,
        expect="confirmed",
    ),
    Claim(
        "mixup-mse-learned-etf",
        f"{FMP} (the ETF classifier is assumed); derivations/mixup.py",
        "MSE, learned W: the learned classifier is a simplex ETF (it is not: its rows keep "
        "a common mean, as for the bias-free MSE UFM)",
        "mixup",
        _mix("mse", K=4, d=5, classifier="learned", lambda_W=5e-3),
        procedure=procedures.learned_etf,
        expect="refuted",
    ),
)
