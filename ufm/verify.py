"""`ufm verify`: run the catalog of claims, each solved, checked against theory and judged.

The catalog is not kept here: every registered model lists its own claims (the classmethod
``claims()`` of its problem class; ufm's models keep them in ``ufm/models/<model>/claims.py``)
and `catalog` gathers them. What a claim is and how it is judged: `ufm.claims`.
"""

import time
from collections.abc import Callable, Iterable
from typing import Any

from .check import check
from .claims import Claim
from .errors import InputError
from .registry import REGISTRY, make
from .solve import solve


def catalog() -> tuple[Claim, ...]:
    """Every registered model's claims (``ProblemClass.claims()``), in registry order."""
    claims: list[Claim] = []
    for name, cls in REGISTRY.items():
        for claim in cls.claims():
            if claim.model != name:
                raise ValueError(f"{cls.__name__}.claims(): {claim.name!r} names {claim.model!r}")
            claims.append(claim)
    names = [c.name for c in claims]
    twice = sorted({x for x in names if names.count(x) > 1})
    if twice:
        raise ValueError(f"claim names must be unique; repeated: {', '.join(twice)}")
    return tuple(claims)


def select(names: Iterable[str] = (), quick: bool = False) -> list[Claim]:
    """Claims by name (all if none given), restricted to the quick subset if asked."""
    names = list(names)
    everything = catalog()
    known = {c.name for c in everything}
    unknown = [x for x in names if x not in known]
    if unknown:
        raise InputError(f"unknown claim {unknown[0]!r}; `ufm verify --list` lists the catalog")
    return [c for c in everything if (not names or c.name in names) and (c.quick or not quick)]


def _run_procedure(claim: Claim, problem, start: float) -> dict[str, Any]:
    """A claim judged by its procedure (a flow, an operator, a property), not one solve."""
    outcome = claim.procedure(problem)
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
    if claim.procedure is not None:
        return _run_procedure(claim, problem, start)
    sol = solve(problem, restarts=claim.restarts)
    report = check(problem, sol)
    theory = report.theory
    verdict, reason, etf_prediction = report.verdict, report.reason, None
    if claim.judge is not None:
        verdict, reason, etf_prediction = claim.judge(problem, sol, report)
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
