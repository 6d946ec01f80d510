"""`ufm solve`, `ufm sweep`, `ufm plot`, `ufm metrics` and `ufm verify`: a thin layer over
the library (`ufm metrics` lives in `cli_metrics`).

Exit codes: 0 success; 2 bad input (an `InputError` or an argparse error: a one-line
message naming the parameter, no traceback); 1 a failure of ufm itself (any other
exception: the traceback and a message saying it is not the input's fault), a result that
could not be written (the report is then printed on stdout), or an unexpected verdict of
`ufm verify`. Nothing is computed before the input is validated: the output paths are
checked and sizes that cannot fit in memory refused up front. Every JSON file is strict
(`_output.dumps`: null for nan and inf) and replaced atomically. `ufm verify --json FILE`
rewrites FILE after every claim, and `ufm sweep` writes every chunk of points as it is
done (Ctrl-C keeps them; --resume goes on).
"""

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from . import _argv, _budget, _output
from .errors import InputError

RESTARTS_HELP = "independent random starts, vmapped; the best converged one is reported"


def _setup_jax() -> None:
    """float64 everywhere, and JAX's persistent compilation cache (repeat calls don't
    recompile): $UFM_CACHE_DIR or ~/.cache/ufm/jax, unless one is configured already (by
    JAX_COMPILATION_CACHE_DIR, or a host program such as the test suite)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    if jax.config.jax_compilation_cache_dir is None:
        cache = os.environ.get("UFM_CACHE_DIR", str(Path.home() / ".cache" / "ufm" / "jax"))
        jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _number_list(cast, expected: str):
    """An argparse type: one number, or comma-separated numbers as a tuple."""

    def parse(text: str):
        try:
            values = [cast(x) for x in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        return values[0] if len(values) == 1 else tuple(values)

    return parse


def _add_model_flags(parser: argparse.ArgumentParser, hypers, suppress: bool = False) -> None:
    """One flag per hyperparameter; with `suppress`, flags not given are left out (a sweep
    records exactly the fixed values it was given)."""
    for h in hypers:
        flag = "--" + h.name.replace("_", "-")
        if h.kind == "flag":
            parser.add_argument(
                flag,
                dest=h.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS if suppress else h.default,
                help=h.help,
            )
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
            flag,
            dest=h.name,
            type=kind,
            default=argparse.SUPPRESS if suppress else h.default,
            choices=h.choices or None,
            help=h.help if h.default is None else f"{h.help} (default {h.default})",
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
        "distance to a critical point, the same test at any weight decay "
        f"(default {DEFAULT_GTOL:g})",
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


def _solver_options(args) -> dict[str, Any]:
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


def _seeds_arg(text: str):
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count like 4 or seeds like 0,1,2; got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def _parser() -> argparse.ArgumentParser:
    from .registry import REGISTRY

    parser = argparse.ArgumentParser(
        prog="ufm",
        description="Global minimizers of unconstrained features models, checked "
        "against neural-collapse theory.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    solve = commands.add_parser("solve", help="solve one problem and compare it with theory")
    models = solve.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, cls in REGISTRY.items():
        sub = models.add_parser(name, help=(cls.__doc__ or "").strip().splitlines()[0])
        _add_model_flags(sub, cls.hypers)
        sub.add_argument("--seed", type=_argv.integer, default=0, help="PRNG seed (default 0)")
        _add_solver_flags(sub)
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

    sweep = commands.add_parser(
        "sweep", help="solve and check a model over a hyperparameter grid (a phase diagram)"
    )
    models = sweep.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, cls in REGISTRY.items():
        sub = models.add_parser(name, help=(cls.__doc__ or "").strip().splitlines()[0])
        _add_model_flags(sub, cls.hypers, suppress=True)
        sub.add_argument(
            "--grid",
            action="append",
            default=[],
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
        sub.add_argument(
            "--save-every", type=float, default=2.0, help="seconds between writes (default 2)"
        )
        sub.add_argument("--no-progress", action="store_true", help="no progress bar")
        sub.add_argument(
            "--no-check", action="store_true", help="numerics only: skip the theory comparison"
        )
        sub.add_argument("--json", action="store_true", help="print the summary as JSON")

    plot = commands.add_parser("plot", help="draw a phase diagram of a sweep")
    plot.add_argument("result", type=Path, metavar="RESULT", help="a sweep's zarr directory")
    plot.add_argument("--x", required=True, help="grid dimension on the x axis")
    plot.add_argument("--y", help="grid dimension on the y axis (none: a line plot)")
    plot.add_argument(
        "--color",
        default="regime",
        help="regime (of the solutions), theory_regime, verdict, gap, nc1, steps, ... "
        "(default regime)",
    )
    plot.add_argument(
        "--sel", action="append", default=[], metavar="NAME=VALUE", help="fix another grid dim"
    )
    plot.add_argument("--no-boundary", action="store_true", help="do not draw the theory boundary")
    plot.add_argument("--title", help="figure title")
    plot.add_argument("--out", type=Path, required=True, help="image file: .png, .pdf or .svg")

    repair = commands.add_parser(
        "repair", help="mark the points of a damaged sweep store unsolved, for --resume"
    )
    repair.add_argument("result", type=Path, metavar="RESULT", help="a sweep's zarr directory")

    from . import cli_metrics

    cli_metrics.add_parser(commands)

    verify = commands.add_parser("verify", help="run the catalog of named paper claims")
    verify.add_argument("claims", nargs="*", metavar="CLAIM", help="claim names (default: all)")
    verify.add_argument("--quick", action="store_true", help="the quick subset (< 30 s)")
    verify.add_argument("--list", action="store_true", help="list the catalog and exit")
    verify.add_argument("--json", type=Path, metavar="FILE", help="write the report to FILE")
    return parser


def _solve(args) -> int:
    """Solve, check, write --params and --out, print the report. A file that cannot be
    written at the end (a full disk) is named, the JSON report goes to stdout instead, and
    the exit code is 1."""
    result, arrays = _solve_report(args)
    text = _output.dumps(result)
    writes = [
        (args.params, "--params", lambda path: _output.write_npz(path, arrays)),
        (args.out, "--out", lambda path: _output.write_text(path, text + "\n")),
    ]
    failed = _write_all(writes)
    if args.json or failed:
        print(text)
    else:
        _print_solve(result)
    return 1 if failed else 0


def _write_all(writes) -> bool:
    """Run each (path, flag, write) whose path is set; say on stderr which failed."""
    failed = False
    for path, flag, write in writes:
        if path is None:
            continue
        try:
            write(path)
        except OSError as error:
            failed = True
            _unwritten(flag, path, error)
    return failed


def _unwritten(flag: str, path: Path, error: OSError) -> None:
    print(
        f"ufm: error: {flag}: could not write {str(path)!r} ({error.strerror or error}); "
        "the JSON report is printed on stdout instead",
        file=sys.stderr,
    )


def _solve_report(args) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(the JSON report, the arrays --params saves) of one solve."""
    import jax

    from .check import check
    from .registry import REGISTRY, make
    from .solve import solve

    hyper = {h.name: getattr(args, h.name) for h in REGISTRY[args.model].hypers}
    _budget.check_hypers(args.model, hyper, _solver_options(args))  # before make allocates
    problem = make(args.model, **hyper)
    options = dict(seed=args.seed, progress=args.progress) | _solver_options(args)
    start = time.perf_counter()
    sol = solve(problem, **options)
    jax.block_until_ready(sol.loss)
    seconds = time.perf_counter() - start
    report = check(problem, sol)
    out = {"model": args.model, "parameters": problem.hyperparameters()}
    out |= sol.summary() | {"seconds": seconds}
    out |= {"theory": report.theory.summary(), "check": report.summary(), "metrics": report.metrics}
    if report.layer_metrics:
        out["layers"] = _layers(problem, sol, report)
    out |= problem.extra_report(sol.params, report.theory)
    arrays = {k: np.asarray(v) for k, v in sol.params.items()} | problem.data_arrays()
    return out, arrays | {"y": problem.labels}


def _layers(problem, sol, report) -> list[dict[str, Any]]:
    """Per layer: the spectrum and norm of W_m, found and predicted, and the NC metrics."""
    from ._theory import layer_quantities

    K = problem.K
    found = [layer_quantities(L, problem.labels, K) for L in problem.layers(sol.params)]
    predicted = report.theory.layers or [{}] * len(found)
    out = []
    for m, (f, p) in enumerate(zip(found, predicted, strict=True)):
        keys = ("W_sv", "W_norm2")
        out.append(
            {
                "layer": m + 1,
                "found": {k: np.asarray(f[k]).tolist() for k in keys},
                "predicted": {k: np.asarray(p[k]).tolist() for k in keys if k in p},
                "metrics": report.layer_metrics[m],
                "predicted_metrics": (report.predicted_layer_metrics or [{}] * len(found))[m],
            }
        )
    return out


def _print_solve(r: dict[str, Any]) -> None:
    p = r["parameters"]
    params = " ".join(f"{k}={v}" for k, v in p.items())
    th, ck, m = r["theory"], r["check"], r["metrics"]
    lines = [
        f"model     {r['model']}: {params}",
        f"solver    {r['method']}, {r['restarts']} restart(s), {r['steps']} steps, "
        f"{r['seconds']:.2f} s; |grad| = {r['grad_norm']:.2e} (tolerance {r['grad_tol']:.2e})",
        f"status    {r['status']}",
        f"loss      {r['loss']:.15g}",
    ]
    if th["loss"] is not None:
        lines.append(
            f"theory    {th['loss']:.15g}  ({th['regime']}, {th['geometry']}; "
            f"relative gap {ck['loss_gap']:.2e})"
        )
        lines.append(f"          {th['reason']}  [{th['source']}]")
        errs = ", ".join(f"{k} {v:.1e}" for k, v in ck["errors"].items())
        lines.append(f"errors    {errs}")
    else:
        lines.append(f"theory    not applicable: {th['reason']}")
    lines.append(
        f"metrics   nc1 {m['nc1']:.2e}, nc2 {m['nc2']:.2e}, nc3 {m['nc3']:.2e}, nc4 {m['nc4']:.3f}"
    )
    if "nc1_H0" in r:
        first = ", ".join(f"{k} {v['nc1']:.4g}" for k, v in r["first_order"].items())
        lines.append(
            f"nc1 (Tr SW/Tr SB)  H0 {r['nc1_H0']:.4g} -> solution {r['nc1']:.4g}; "
            f"first order: {first}"
        )
    if "mixup" in r:
        f, p = r["mixup"]["found"], r["mixup"]["predicted"]
        keys = ("span_residual", "same_class_spread", "boundary_gap", "calibration_error")
        found = ", ".join(f"{k} {f[k]:.2e}" for k in keys)
        lines.append(f"mixup     {found}")
        lines.append(f"          predicted calibration_error {p['calibration_error']:.6g}")
    for layer in r.get("layers", []):
        lm = layer["metrics"]
        sv = ", ".join(f"{x:.4g}" for x in layer["found"]["W_sv"])
        lines.append(
            f"layer {layer['layer']:<3} nc1 {lm['nc1']:.1e}, nc2 {lm['nc2']:.1e}, "
            f"nc2_of {lm['nc2_of']:.1e}, nc3 {lm['nc3_uncentred']:.1e}; W singular values {sv}"
        )
    lines.append(f"verdict   {ck['verdict'].upper()}: {ck['reason']}")
    print("\n".join(lines))


def _sweep(args) -> int:
    """Exit 0 when the sweep is complete; on SIGINT (Ctrl-C) or SIGTERM it saves what is
    finished, says how much, and exits 128 + the signal (130, 143)."""
    from .registry import REGISTRY
    from .sweeps import SweepInterrupted, interrupts, parse_axis, sweep

    hypers = [h.name for h in REGISTRY[args.model].hypers]
    fixed = {name: getattr(args, name) for name in hypers if hasattr(args, name)}
    grid = {}
    for text in args.grid:
        name, values, spacing = parse_axis(text)
        if name in grid:
            raise InputError(f"--grid {name}: given twice")
        grid[name] = (values, spacing)
    if not grid:
        raise InputError(
            "--grid: give at least one grid dimension, e.g. --grid lambda_W=1e-4:1:16:log"
        )
    start = time.perf_counter()
    try:
        with interrupts():  # a signal from here on is a flag that sweep() honours
            ds = sweep(
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
                **_solver_options(args),
            )
    except SweepInterrupted as stop:
        print(f"ufm: {stop.describe('--resume')}", file=sys.stderr)
        if stop.forced:  # leave now: do not wait for the chunk still on the devices
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + stop.signum)
        return 128 + stop.signum
    summary = _sweep_summary(ds, time.perf_counter() - start, args.out)
    if args.json:
        print(_output.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:<23}{value}")
    return 0


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


def _plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")  # a file is written; no display is needed
    from .plot import phase_diagram, save

    sel = {}
    for text in args.sel:
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


def _repair(args) -> int:
    from .sweeps import repair

    if not args.result.is_dir():
        raise InputError(f"RESULT: {str(args.result)!r} is not a sweep's zarr directory")
    found = repair(args.result)
    for d in found:
        print(f"{d.file}: {d.why}; its points are marked unsolved")
    print(
        f"{args.result}: {len(found)} damaged chunk file(s)"
        + ("; run the same sweep with --resume to solve their points again" if found else "")
    )
    return 0


def _verify(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from . import verify

    claims = verify.select(args.claims, quick=args.quick)
    console = Console(width=None if sys.stdout.isatty() else 160)
    if args.list:
        for c in verify.catalog():
            tag = " (quick)" if c.quick else ""
            console.print(f"{c.name}{tag}: {c.statement} [{c.source}]", highlight=False)
        return 0

    table = Table(title="ufm verify", show_lines=False)
    for col in ("claim", "parameters", "predicted", "found", "verdict", "time"):
        table.add_column(col, overflow="fold")
    results: list[dict] = []
    unwritten: list[OSError] = []  # why --json could not be written (then it is not retried)
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
        if args.json and not unwritten:
            try:
                _write_json(args.json, report())
            except OSError as error:
                unwritten.append(error)

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
    if unwritten:
        print(_output.dumps(report()))
        _unwritten("--json", args.json, unwritten[0])
    return 1 if failed or unwritten else 0


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


def _check_output_paths(args) -> None:
    """Fail before any work, not after it, when a result could not be written: a
    directory, a missing parent, a place where no file can be created."""
    if args.command == "sweep":
        # a zarr directory: an existing one is ufm.sweep's (--resume), a new one needs a parent
        if args.out.exists() and not args.out.is_dir():
            raise InputError(f"--out: {str(args.out)!r} exists and is not a zarr directory")
        if not args.out.exists():
            _output.check_writable(args.out, "--out")
        return
    if getattr(args, "params", None) is not None:
        args.params = _npz(args.params)
    for flag in ("out", "params", "json"):
        path = getattr(args, flag, None)
        if isinstance(path, Path):
            _output.check_writable(path, f"--{flag}")


def _npz(path: Path) -> Path:
    """The file `np.savez` writes for `path`: '.npz' is appended unless it is there."""
    return path if path.name.endswith(".npz") else path.with_name(path.name + ".npz")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(_argv.join_negative_values(argv))
    _setup_jax()
    try:
        return _run(args)
    except InputError as error:
        print(f"ufm: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # not the input: a failure of ufm (KeyboardInterrupt passes)
        return _internal_error(error)


def _run(args) -> int:
    _check_output_paths(args)
    if args.command == "verify":
        return _verify(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "plot":
        return _plot(args)
    if args.command == "repair":
        return _repair(args)
    if args.command == "metrics":
        from . import cli_metrics

        return cli_metrics.run(args)
    return _solve(args)


def _internal_error(error: Exception) -> int:
    """Exit 1 with the traceback and a message that blames ufm, not the input."""
    traceback.print_exc()
    kind = "a failure of ufm"
    if isinstance(error, ArithmeticError | np.linalg.LinAlgError):
        kind = "a numerical failure"
    elif isinstance(error, MemoryError):
        kind = "out of memory"
    print(
        f"ufm: internal error ({kind}, not a problem with the input): "
        f"{type(error).__name__}: {error}\n"
        "ufm accepted the input as valid and then failed; please report this with the "
        "command line and the traceback above",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
