"""What a claim is: one concrete parameter point of a statement, and how it is judged.

A model lists its claims in its own ``claims.py`` and exposes them through the optional
classmethod ``claims()`` of its problem class; `ufm.verify` gathers them from every
registered model. A claim is judged in one of three ways:

- by `ufm.check` (the default): solve with restarts, compare with ``problem.theory()``;
  the verdict is ``agrees``, ``disagrees`` or ``inconclusive``;
- by a `judge` after the same solve: ``judge(problem, solution, report)`` returns
  ``(verdict, reason, predicted)`` (the deep linear model's "is the best ETF global?");
- by a `procedure` instead of one solve: ``procedure(problem)`` returns an `Outcome`
  (a theorem about a flow, an operator or a property of the minimizer), whose verdict is
  ``confirmed``, ``refuted`` or ``inconclusive``.

`expect` is the verdict the numbers should give; `ufm verify` passes when every claim gets
its expected verdict.
"""

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The verdict of a procedure."""

    verdict: str  # "confirmed", "refuted" or "inconclusive"
    reason: str
    predicted: str  # what the theorem says, in a few words (for the table)
    found: str  # what the numbers say


def verdict(ok: bool) -> str:
    return "confirmed" if ok else "refuted"


@dataclasses.dataclass(frozen=True)
class Claim:
    name: str  # unique across the catalog
    source: str  # what was read: paper body or abstract and theorem, code at a commit, ours
    statement: str  # what the claim says, in words
    model: str  # a registered model name
    hyper: dict[str, Any]  # keywords of ufm.make
    expect: str = "agrees"
    quick: bool = False  # part of `ufm verify --quick`
    restarts: int = 3  # a global claim is judged on the best of several restarts
    # None: ufm.check's verdict; else judge(problem, solution, report) -> (verdict, reason,
    # predicted dict or None)
    judge: Callable[..., tuple[str, str, dict[str, Any] | None]] | None = None
    # a theorem about a flow, an operator or a property: procedure(problem) -> Outcome,
    # run instead of the solve
    procedure: Callable[[Any], Outcome] | None = None
