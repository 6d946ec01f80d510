"""`ufm verify`: the catalog of named paper claims, run and tabulated (`ufm.verify`)."""

import sys
import time
from pathlib import Path
from typing import Any

from . import _output
from .cli import unwritten


def run(args) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from . import verify

    claims = verify.select(args.claims, quick=args.quick)
    console = Console(width=None if sys.stdout.isatty() else 160)
    if args.list:
        for c in verify.catalog():
            tag = " (quick)" if c.quick else ""
            text = escape(f"{c.name}{tag}: {c.statement} [{c.source}]")  # sources hold [read: ...]
            console.print(text, highlight=False)
        return 0

    table = Table(title="ufm verify", show_lines=False)
    for col in ("claim", "parameters", "predicted", "found", "verdict", "time"):
        table.add_column(col, overflow="fold")
    results: list[dict] = []
    write_errors: list[OSError] = []  # why --json could not be written (then not retried)
    report = lambda: {"claims": results, "complete": len(results) == len(claims)}

    def record(r: dict) -> None:
        results.append(r)
        pred = r["predicted"]
        if "text" in pred:  # a theorem about a flow or an operator, not one minimum
            predicted = pred["text"]
        elif pred["loss"] is None:
            predicted = "n/a"
        else:
            predicted = f"{pred['loss']:.10g} {pred['regime']}/{pred['geometry']}"
        found = r["found"].get("text") or f"{r['found']['loss']:.10g}"
        if r["loss_gap"] is not None:
            found += f" (gap {r['loss_gap']:.1e})"
        mark = "[green]" if r["passed"] else "[red]"
        verdict = f"{mark}{r['verdict']}[/]" + (
            "" if r["passed"] else f" (expected {r['expected']})"
        )
        params = _short(r["parameters"])
        table.add_row(r["claim"], params, predicted, found, verdict, f"{r['seconds']:.2f}s")
        console.print(
            f"[{len(results)}/{len(claims)}] {r['claim']}: {r['verdict']}", highlight=False
        )
        if args.json and not write_errors:
            try:
                _write_json(args.json, report())
            except OSError as error:
                write_errors.append(error)

    start = time.perf_counter()
    verify.run_all(claims, record)
    console.print(table)
    failed = [r["claim"] for r in results if not r["passed"]]
    total = time.perf_counter() - start
    console.print(
        f"{len(results) - len(failed)} passed, {len(failed)} failed in {total:.1f} s",
        highlight=False,
    )
    for r in results:
        if not r["passed"]:
            console.print(f"  {r['claim']}: {r['reason']}", highlight=False)
    if write_errors:
        print(_output.dumps(report()))
        unwritten("--json", args.json, write_errors[0])
    return 1 if failed or write_errors else 0


def _short(parameters: dict[str, Any]) -> str:
    """'ce K=4 n=5 d=8 bias lW=0.01 lH=0.01' from a problem's hyperparameters."""
    words = []
    for key, value in parameters.items():
        if value is None or (key.startswith("noise") and not parameters.get("noise")):
            continue
        if isinstance(value, bool):
            words += [key] if value else []
        elif isinstance(value, str):
            words.append(value)
        elif key.startswith("lambda_") and isinstance(value, list):
            words.append(f"l{key[7:]}={','.join(f'{v:g}' for v in value)}")
        elif key.startswith("lambda_"):
            words += [f"l{key[7:]}={value:g}"] if value or key != "lambda_b" else []
        else:
            words.append(f"{key}={','.join(map(str, value)) if isinstance(value, list) else value}")
    return " ".join(words)


def _write_json(path: Path, data: Any) -> None:
    _output.write_text(path, _output.dumps(data) + "\n")
