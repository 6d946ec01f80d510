"""The catalog of named paper claims: each is solved, checked against theory, and judged.

A claim is one concrete parameter point of a theorem. Points sit on both sides of every
threshold (collapse to zero, minority collapse) and include imbalanced classes. `expect` is
the verdict the numbers should give: ``agrees`` where the theorem applies, ``inconclusive``
where ufm must refuse to predict (outside the theorem's assumptions). A run passes when
every claim gets its expected verdict. Later models add their claims to `CATALOG`.

Sources: Zhu et al. 2021 (arXiv 2105.02375) Thm 3.1; Tirer & Bruna 2022 (arXiv 2202.08087)
Thms 3.1-3.2; Dang et al. 2023 (arXiv 2301.00437), M = 1; zero-solution certificate of
../shared/theory/plain_ufm.md §5, §7 (team derivation, re-derived in derivations/).
Provenance: the papers' main statements were checked against their abstracts; theorem
numbers are as recalled in the theory notes ([R]). Every closed form is re-derived in
derivations/plain_ufm.py and confirmed here by the numerics, which is what a verdict rests on.
"""

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from .check import check
from .models import make
from .solve import solve

ZHU = "Zhu et al. 2021, arXiv 2105.02375, Thm 3.1"
TB31 = "Tirer & Bruna 2022, arXiv 2202.08087, Thm 3.1"
TB32 = "Tirer & Bruna 2022, arXiv 2202.08087, Thm 3.2"
DANG = "Dang et al. 2023, arXiv 2301.00437, M=1 (imbalanced MSE)"
ZERO = "zero-solution certificate, plain_ufm.md §5 [D, V]"
TEAM = "plain_ufm.md §4 [D, V]; its spectrum is that of Liu 2024, arXiv 2411.17278 (abstract)"


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


def _plain(loss: str, **hyper) -> dict[str, Any]:
    base = {"loss": loss, "K": 4, "n": 5, "d": 8}
    return base | hyper


IMB = (100, 100, 10, 10)  # N = 220: minority classes die once N^2 lW lH > 10, i.e. lam > 0.01437

CATALOG: tuple[Claim, ...] = (
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
    Claim(
        "mse-narrow-not-applicable",
        TB31,
        "MSE, no bias, d = 3 < K: the orthogonal frame does not fit; ufm must not predict",
        "plain",
        _plain("mse", d=3, lambda_W=0.05, lambda_H=0.01),
        expect="inconclusive",
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


def select(names: Iterable[str] = (), quick: bool = False) -> list[Claim]:
    """Claims by name (all if none given), restricted to the quick subset if asked."""
    names = list(names)
    known = {c.name for c in CATALOG}
    unknown = [x for x in names if x not in known]
    if unknown:
        raise ValueError(f"unknown claim {unknown[0]!r}; `ufm verify --list` lists the catalog")
    return [c for c in CATALOG if (not names or c.name in names) and (c.quick or not quick)]


def run(claim: Claim) -> dict[str, Any]:
    """Solve one claim, check it against theory, and return a JSON-able record."""
    start = time.perf_counter()
    problem = make(claim.model, **claim.hyper)
    sol = solve(problem, restarts=claim.restarts)
    report = check(problem, sol)
    theory = report.theory
    return {
        "claim": claim.name,
        "source": claim.source,
        "statement": claim.statement,
        "model": claim.model,
        "parameters": problem.hyperparameters(),
        "predicted": {"loss": theory.loss, "regime": theory.regime, "geometry": theory.geometry},
        "found": {
            "loss": report.loss,
            "converged": sol.converged,
            "steps": int(sol.steps),
            "grad_norm": float(sol.grad_norm),
            "loss_spread": sol.loss_spread,
            "metrics": report.metrics,
        },
        "loss_gap": report.loss_gap,
        "errors": report.errors,
        "verdict": report.verdict,
        "expected": claim.expect,
        "passed": report.verdict == claim.expect,
        "reason": report.reason,
        "seconds": time.perf_counter() - start,
    }


def run_all(claims: list[Claim], on_result: Callable[[dict[str, Any]], None]) -> list[dict]:
    results = []
    for claim in claims:
        results.append(run(claim))
        on_result(results[-1])
    return results
