"""What `python -m derivations.<model>` prints: every derived expression, then the worked
examples recomputed from the derivation and compared with numbers computed independently of it
(a derivation's ``NOTES``, or a direct numerical minimization), each marked ok or MISMATCH."""

from collections.abc import Callable

import sympy as sp


def print_report(
    results: dict[str, sp.Expr],
    title: str,
    examples: dict[str, float],
    notes: dict[str, float],
    close: Callable[[str, float], bool],
) -> None:
    """`close(key, value)` says whether a recomputed example matches the independent number
    `notes[key]` at the precision it is given to."""
    for name, expr in results.items():
        print(f"{name} =")
        print(sp.pretty(expr, use_unicode=True))
        print()
    print(f"{title} (derived vs independent):")
    width = max(map(len, examples), default=0)
    for key, value in examples.items():
        mark = "ok" if close(key, value) else "MISMATCH"
        print(f"  {key:{width}s} {value:.10f}  independent {notes[key]:<13.10g}  {mark}")
