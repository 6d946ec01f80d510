"""`ufm sweep`, `ufm plot` and `ufm repair`: phase diagrams solved, drawn and mended."""

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import _output
from ._cli_parser import solver_options
from .errors import InputError


def sweep(args) -> int:
    """Exit 0 when the sweep is complete; on SIGINT (Ctrl-C) or SIGTERM it saves what is
    finished, says how much, and exits 128 + the signal (130, 143)."""
    from . import sweeps
    from .registry import REGISTRY

    hypers = [h.name for h in REGISTRY[args.model].hypers]
    fixed = {name: getattr(args, name) for name in hypers if hasattr(args, name)}
    grid = {}
    for text in args.grid or []:
        name, values, spacing = sweeps.parse_axis(text)
        if name in grid:
            raise InputError(f"--grid {name}: given twice")
        grid[name] = (values, spacing)
    if not grid:
        raise InputError(
            "--grid: give at least one grid dimension, e.g. --grid lambda_W=1e-4:1:16:log"
        )
    start = time.perf_counter()
    try:
        with sweeps.interrupts():  # a signal from here on is a flag that sweep() honours
            ds = sweeps.sweep(
                args.model,
                fixed,
                grid,
                seeds=args.seeds,
                out=args.out,
                resume=args.resume,
                chunk_size=args.chunk_size,
                save_every=args.save_every,
                progress=not args.no_progress,
                check=not args.no_check,
                solver=args.solver,
                **solver_options(args),
            )
    except sweeps.SweepInterrupted as stop:
        return stopped(stop)
    summary = _sweep_summary(ds, time.perf_counter() - start, args.out)
    if args.json:
        print(_output.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:<23}{value}")
    return 0


def stopped(stop) -> int:
    """Say what a `SweepInterrupted` saved; exit code 128 + the signal (130, 143)."""
    print(f"ufm: {stop.describe('--resume')}", file=sys.stderr)
    if stop.forced:  # leave now: do not wait for the work still on the devices
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + stop.signum)
    return 128 + stop.signum


def _sweep_summary(ds, seconds: float, out: Path) -> dict[str, Any]:
    counts = lambda var: {
        str(k): int(v) for k, v in zip(*np.unique(ds[var].values, return_counts=True), strict=True)
    }
    applicable = ~np.isin(ds["theory_regime"].values, ["not_applicable", ""])
    converged = ds["converged"].values
    both = applicable & converged
    same = ds["regime"].values == ds["theory_regime"].values
    return {
        "result": str(out),
        "points": int(ds["done"].size),
        "seconds": round(seconds, 2),
        "converged": int(converged.sum()),
        "verdicts": counts("verdict"),
        "regimes": counts("regime"),
        "regime_matches_theory": f"{int(same[both].sum())} of {int(both.sum())} converged "
        "points where the theory applies",
    }


def plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")  # a file is written; no display is needed
    from .plot import phase_diagram, save

    sel = {}
    for text in args.sel or []:
        name, sep, value = text.partition("=")
        if not sep:
            raise InputError(f"--sel {text!r}: expected NAME=VALUE")
        sel[name.replace("-", "_")] = value
    if args.out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise InputError(f"--out: {str(args.out)!r} must end in .png, .pdf or .svg")
    ax = phase_diagram(
        args.result,
        args.x,
        args.y,
        args.color,
        sel,
        boundary=not args.no_boundary,
        title=args.title,
    )
    print(save(ax, args.out))
    return 0


def repair(args) -> int:
    from . import sweeps

    if not args.result.is_dir():
        raise InputError(f"RESULT: {str(args.result)!r} is not a sweep's zarr directory")
    found = sweeps.repair(args.result)
    for d in found:
        print(f"{d.file}: {d.why}; its points are marked unsolved")
    print(
        f"{args.result}: {len(found)} damaged chunk file(s)"
        + ("; run the same sweep with --resume to solve their points again" if found else "")
    )
    return 0
