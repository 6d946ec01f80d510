"""The `ufm` command line: one parser per subcommand and per model."""

import argparse
from pathlib import Path
from typing import Any

from . import __version__, _argv
from ._cli_help import Formatter, model_help

RESTARTS_HELP = "independent random starts, vmapped; the best converged one is reported"


def build() -> argparse.ArgumentParser:
    from . import _cli_features, _cli_landscape, _cli_language, _cli_train, cli_metrics
    from .registry import REGISTRY

    parser = argparse.ArgumentParser(
        prog="ufm",
        description="Global minimizers of unconstrained features models, checked "
        "against neural-collapse theory.",
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"ufm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_solve(commands, REGISTRY)
    _add_sweep(commands, REGISTRY)
    _add_plot(commands)
    _add_repair(commands)
    cli_metrics.add_parser(commands, formatter_class=Formatter)
    _add_verify(commands)
    _cli_features.add_parser(commands, formatter_class=Formatter)
    _cli_landscape.add_parser(commands, formatter_class=Formatter)
    _cli_train.add_parsers(commands, formatter_class=Formatter)
    _cli_language.add_parser(commands, formatter_class=Formatter)
    return parser


def _command(commands, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand (or model) whose one-line help is also its description."""
    # argparse formats a help line with % (the description only for %(prog))
    help = text.replace("%", "%%")
    return commands.add_parser(name, help=help, description=text, formatter_class=Formatter)


def _add_solve(commands, registry) -> None:
    solve = _command(commands, "solve", "solve one problem and compare it with theory")
    models = solve.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, cls in registry.items():
        sub = _command(models, name, model_help(cls))
        _add_model_flags(sub, cls.hypers)
        sub.add_argument("--seed", type=_argv.integer, default=0, help="PRNG seed")
        _add_solver_flags(sub)
        sub.add_argument(
            "--route",
            choices=("auto", "collapsed", "full"),
            default="auto",
            help="auto: solve over the class means where the minimizers are proven collapsed "
            "(plain), then check the expanded point on the full gradient; full: all columns",
        )
        sub.add_argument("--json", action="store_true", help="print a JSON object")
        sub.add_argument("--out", type=Path, help="also write the JSON report to this file")
        sub.add_argument("--params", type=Path, help="write the minimizer (W, H, b, y) to a .npz")
        sub.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="show the step, loss and gradient norm on stderr every 2 s (default: from a "
            "million unknowns x restarts up)",
        )


def _add_sweep(commands, registry) -> None:
    sweep = _command(
        commands, "sweep", "solve and check a model over a hyperparameter grid (a phase diagram)"
    )
    models = sweep.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, cls in registry.items():
        sub = _command(models, name, model_help(cls))
        _add_model_flags(sub, cls.hypers, suppress=True)
        sub.add_argument(
            "--grid",
            action="append",
            metavar="NAME=SPEC",
            help="a grid dimension: NAME=START:STOP:NUM[:log|lin] or NAME=V1,V2,... (repeat)",
        )
        sub.add_argument(
            "--seeds", type=_seeds_arg, default=1, help="a count (0..S-1) or a list like 0,3,7"
        )
        _add_solver_flags(sub)
        sub.add_argument("--out", type=Path, required=True, help="zarr directory for the results")
        sub.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
        sub.add_argument(
            "--chunk-size", type=_argv.integer, default=256, help="points per compiled call"
        )
        sub.add_argument("--save-every", type=float, default=2.0, help="seconds between writes")
        sub.add_argument(
            "--solver",
            choices=("auto", "newton", "lbfgs"),
            default="auto",
            help="auto: batched Newton over the class means where it applies (plain CE), "
            "else the vmapped L-BFGS; newton or lbfgs force one",
        )
        sub.add_argument("--no-progress", action="store_true", help="no progress bar")
        sub.add_argument(
            "--no-check", action="store_true", help="numerics only: skip the theory comparison"
        )
        sub.add_argument("--json", action="store_true", help="print the summary as JSON")


def _add_plot(commands) -> None:
    plot = _command(commands, "plot", "draw a phase diagram of a sweep")
    plot.add_argument("result", type=Path, metavar="RESULT", help="a sweep's zarr directory")
    plot.add_argument("--x", required=True, help="grid dimension on the x axis")
    plot.add_argument("--y", help="grid dimension on the y axis (none: a line plot)")
    plot.add_argument(
        "--color",
        default="regime",
        help="regime (of the solutions), theory_regime, verdict, gap, nc1, steps, ...",
    )
    plot.add_argument("--sel", action="append", metavar="NAME=VALUE", help="fix another grid dim")
    plot.add_argument("--no-boundary", action="store_true", help="do not draw the theory boundary")
    plot.add_argument("--title", help="figure title")
    plot.add_argument("--out", type=Path, required=True, help="image file: .png, .pdf or .svg")


def _add_repair(commands) -> None:
    repair = _command(
        commands, "repair", "mark the points of a damaged sweep store unsolved, for --resume"
    )
    repair.add_argument("result", type=Path, metavar="RESULT", help="a sweep's zarr directory")


def _add_verify(commands) -> None:
    verify = _command(commands, "verify", "run the catalog of named paper claims")
    verify.add_argument("claims", nargs="*", metavar="CLAIM", help="claim names (default: all)")
    verify.add_argument("--quick", action="store_true", help="the quick subset (< 30 s)")
    verify.add_argument("--list", action="store_true", help="list the catalog and exit")
    verify.add_argument("--json", type=Path, metavar="FILE", help="write the report to FILE")


def _add_model_flags(parser: argparse.ArgumentParser, hypers, suppress: bool = False) -> None:
    """One flag per hyperparameter; with `suppress`, flags not given are left out (a sweep
    records exactly the fixed values it was given) and the help names the model's default."""
    for h in hypers:
        flag = "--" + h.name.replace("_", "-")
        default = argparse.SUPPRESS if suppress else h.default
        text = h.help
        if suppress and h.default is not None and h.default is not False:
            text += f" (default: {h.default})".replace("%", "%%")
        if h.kind == "flag":
            action = argparse.BooleanOptionalAction
            parser.add_argument(flag, dest=h.name, action=action, default=default, help=text)
            continue
        kind = {
            "int": _argv.integer,
            "float": float,
            "floats": _number_list(float, "a number or comma-separated numbers like 1e-3,5e-4"),
            "counts": _number_list(
                _argv.to_int, "a positive integer or comma-separated integers like 50,20,5"
            ),
            "choice": str,
            "path": str,
            "mix": str,
        }[h.kind]
        parser.add_argument(
            flag, dest=h.name, type=kind, default=default, choices=h.choices or None, help=text
        )


def _add_solver_flags(sub: argparse.ArgumentParser) -> None:
    from .solve import DEFAULT_GTOL, METHODS

    sub.add_argument("--restarts", type=_argv.integer, default=1, help=RESTARTS_HELP)
    sub.add_argument("--method", choices=METHODS, default="lbfgs", help="optimizer")
    sub.add_argument(
        "--gtol",
        type=float,
        default=DEFAULT_GTOL,
        help="converged when |grad| <= gtol x weight decay x max(|params|, 1): a relative "
        "distance to a critical point, the same test at any weight decay",
    )
    sub.add_argument("--max-steps", type=_argv.integer, default=10_000, help="step limit")
    sub.add_argument("--init-scale", type=float, default=1.0, help="scale of the random init")
    sub.add_argument(
        "--init-spread",
        type=float,
        default=2.0,
        help="restarts' init scales run from init-scale/spread to init-scale*spread",
    )
    sub.add_argument("--learning-rate", type=float, default=1e-2, help="for adam and sgd")
    sub.add_argument("--memory-size", type=_argv.integer, default=3, help="L-BFGS stored pairs")


def solver_options(args) -> dict[str, Any]:
    """The `ufm.solve` keywords of the solver flags (`_add_solver_flags`)."""
    return dict(
        restarts=args.restarts,
        method=args.method,
        gtol=args.gtol,
        max_steps=args.max_steps,
        init_scale=args.init_scale,
        init_spread=args.init_spread,
        learning_rate=args.learning_rate,
        memory_size=args.memory_size,
    )


def _number_list(cast, expected: str):
    """An argparse type: one number, or comma-separated numbers as a tuple."""

    def parse(text: str):
        try:
            values = [cast(x) for x in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        return values[0] if len(values) == 1 else tuple(values)

    return parse


def _seeds_arg(text: str):
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count like 4 or seeds like 0,1,2; got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values
