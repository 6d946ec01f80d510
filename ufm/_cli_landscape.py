"""`ufm landscape MODEL [model flags]`: a census of the stationary points the restarts reach
(`ufm.landscape`), printed as a table of groups or as JSON (--json, --out)."""

import sys
from pathlib import Path
from typing import Any

from . import _argv, _budget
from ._cli_help import model_help
from .cli import emit


def add_parser(commands, formatter_class) -> None:
    from ._cli_parser import _add_model_flags, _command
    from ._hessian import ZERO_RTOL
    from .registry import REGISTRY
    from .solve import DEFAULT_GTOL

    landscape = _command(
        commands,
        "landscape",
        "census of the stationary points many restarts reach: groups, basins, Hessian indices",
    )
    models = landscape.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, cls in REGISTRY.items():
        sub = models.add_parser(
            name, help=model_help(cls), description=model_help(cls), formatter_class=formatter_class
        )
        _add_model_flags(sub, cls.hypers)
        sub.add_argument(
            "--restarts", type=_argv.integer, default=256, help="random starts, vmapped (>= 1)"
        )
        sub.add_argument("--seed", type=_argv.integer, default=0, help="PRNG seed")
        sub.add_argument(
            "--gtol",
            type=float,
            default=DEFAULT_GTOL,
            help="a restart is stationary when |grad| <= gtol x weight decay x max(|params|, 1)",
        )
        sub.add_argument("--max-steps", type=_argv.integer, default=10_000, help="step limit")
        sub.add_argument(
            "--bottom", type=_argv.integer, default=6, help="smallest Hessian eigenvalues shown"
        )
        sub.add_argument(
            "--zero-rtol",
            type=float,
            default=ZERO_RTOL,
            help="an eigenvalue is zero when |value| <= zero-rtol x weight decay",
        )
        sub.add_argument(
            "--hessian",
            choices=("auto", "dense", "lanczos"),
            default="auto",
            help="dense eigvalsh (auto: up to 2000 unknowns) or Lanczos on Hessian-vector products",
        )
        sub.add_argument(
            "--zero-point",
            action="store_true",
            help="also classify W = H = 0 (every parameter zero)",
        )
        sub.add_argument("--json", action="store_true", help="print a JSON object")
        sub.add_argument("--out", type=Path, help="also write the JSON report to this file")


def run(args) -> int:
    """Validate, run the census, print the table (or JSON) and write --out."""
    from .landscape import landscape, zero_point
    from .registry import REGISTRY, make

    hyper = {h.name: getattr(args, h.name) for h in REGISTRY[args.model].hypers}
    _budget.check_hypers(args.model, hyper, {"restarts": args.restarts})
    problem = make(args.model, **hyper)
    points = {"zero": zero_point(problem)} if args.zero_point else None
    result = landscape(
        problem,
        args.restarts,
        seed=args.seed,
        gtol=args.gtol,
        max_steps=args.max_steps,
        bottom=args.bottom,
        zero_rtol=args.zero_rtol,
        hessian=args.hessian,
        points=points,
    )
    report = result.summary()
    return emit(report, args.json, args.out, lambda: _print_table(report))


def _print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    params = " ".join(f"{k}={v}" for k, v in report["parameters"].items() if v is not None)
    table = Table(title=f"ufm landscape {report['model']}: {params}")
    for column in ("#", "kind", "restarts", "loss", "index", "sym. zeros", "other zeros",
                   "smallest eigenvalues"):  # fmt: skip
        table.add_column(column, overflow="fold")
    rows = [(str(i + 1), g) for i, g in enumerate(report["groups"])]
    rows += [(p["name"], p) for p in report["points"]]
    for label, g in rows:
        h = g["hessian"]
        index = f"{g['index']}" + ("" if h["index_complete"] else "+")
        count = f"{g['count']} ({g['fraction']:.0%})" if "name" not in g else "given"
        smallest = ", ".join(_number(v) for v in h["smallest"])
        kind = g["kind"] if g["stationary"] else f"{g['kind']} (|grad| {g['grad_norm']:.1e})"
        table.add_row(label, kind, count, _number(g["loss"], ".10g"), index,
                      str(h["symmetry_zeros"]), str(h["unexplained_zeros"]), smallest)  # fmt: skip
    console.print(table)
    theory = report["theory_loss"]
    analysed = report["groups"] + report["points"]
    zero_tol = analysed[0]["hessian"]["zero_tol"] if analysed else None
    console.print(
        f"{report['converged']} of {report['restarts']} restarts converged "
        f"({report['unconverged']} not, in no group); closed form "
        f"{'n/a' if theory is None else _number(theory, '.10g')}; zero: |eigenvalue| <= "
        f"{_number(zero_tol)}; "
        f"{report['seconds']['restarts']:.1f} s restarts, "
        f"{report['seconds']['analysis']:.1f} s analysis",
        highlight=False,
    )


def _number(value, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)
