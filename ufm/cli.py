"""`ufm solve`, `ufm sweep`, `ufm plot`, `ufm repair`, `ufm metrics`, `ufm verify`,
`ufm features`, `ufm landscape`, `ufm train` and `ufm experiment`: a thin layer over the
library. This module reads the command line, runs `ufm solve` and tells the failures apart;
the parsers are in `_cli_parser` (help text: `_cli_help`), the other subcommands in
`_cli_sweep` (sweep, plot, repair), `cli_metrics`, `_cli_verify`, `_cli_features`,
`_cli_landscape`, `_cli_train` (train, experiment) and `_cli_language`.

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

import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from . import _budget, _cli_parser, _output
from ._argv import join_negative_values
from .errors import InputError


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


def _solve(args) -> int:
    """Solve, check, write --params and --out, print the report. A file that cannot be
    written at the end (a full disk) is named, the JSON report goes to stdout instead, and
    the exit code is 1."""
    result, arrays = _solve_report(args)
    params = [(args.params, "--params", lambda path: _output.write_npz(path, arrays))]
    return emit(result, args.json, args.out, lambda: _print_solve(result), params)


def emit(report: dict[str, Any], as_json: bool, out: Path | None, show, writes=()) -> int:
    """The end of a command that makes a JSON report: write it to `out` (--out) and any other
    (path, flag, write) in `writes`, then print it as JSON (--json, or when a file could not
    be written: nothing computed is lost) or `show()` it as text. Exit code 1 if a write
    failed."""
    text = _output.dumps(report)
    out_write = (out, "--out", lambda path: _output.write_text(path, text + "\n"))
    failed = _write_all([*writes, out_write])
    if as_json or failed:
        print(text)
    else:
        show()
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
            unwritten(flag, path, error)
    return failed


def unwritten(
    flag: str,
    path: Path,
    error: OSError,
    then: str = "the JSON report is printed on stdout instead",
) -> None:
    """Say on stderr that `flag`'s file could not be written, and what happens `then`."""
    print(
        f"ufm: error: {flag}: could not write {str(path)!r} ({error.strerror or error}); {then}",
        file=sys.stderr,
    )


def _solve_report(args) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(the JSON report, the arrays --params saves) of one solve."""
    import jax

    from .check import check
    from .registry import REGISTRY, make
    from .solve import solve

    hyper = {h.name: getattr(args, h.name) for h in REGISTRY[args.model].hypers}
    solver = _cli_parser.solver_options(args)
    _budget.check_hypers(args.model, hyper, solver)  # before make allocates
    problem = make(args.model, **hyper)
    options = dict(seed=args.seed, progress=args.progress, route=args.route) | solver
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
    arrays.setdefault("W", np.asarray(sol.classifier))  # a fixed or end-to-end classifier
    arrays.setdefault("H", np.asarray(problem.feature_columns(sol.params)))  # next-token solves S
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


def _model_lines(model: str, section: dict[str, Any]) -> list[str]:
    """A model's report section in words: its ``report_lines`` if it has one, else its
    scalar entries."""
    from .registry import REGISTRY

    lines_of = getattr(REGISTRY[model], "report_lines", None)
    if lines_of is not None:
        return lines_of(section)
    scalars = {k: v for k, v in section.items() if isinstance(v, int | float | str)}
    return (
        [
            f"{model}  "
            + ", ".join(
                f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in scalars.items()
            )
        ]
        if scalars
        else []
    )


def _certificate_line(cert: dict[str, Any] | None) -> str:
    if cert is None:
        return "certify   none for this model (no certificate of global optimality known)"
    held = "holds" if cert["certified"] else "does NOT hold"
    return (
        f"certify   {held}: duality gap {cert['gap']:.2e}, ||grad_Z L||_op / mu = "
        f"{cert['grad_op_over_mu']:.12g}"
    )


def _print_solve(r: dict[str, Any]) -> None:
    p = r["parameters"]
    params = " ".join(f"{k}={v}" for k, v in p.items())
    th, ck, m = r["theory"], r["check"], r["metrics"]
    lines = [
        f"model     {r['model']}: {params}",
        f"solver    {r['method']} ({r['route']} route), {r['restarts']} restart(s), "
        f"{r['steps']} steps, "
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
    lines.append(_certificate_line(ck["certificate"]))
    section = r.get(r["model"])  # the model's own entries (`extra_report`)
    if isinstance(section, dict):
        lines += _model_lines(r["model"], section)
    for layer in r.get("layers", []):
        lm = layer["metrics"]
        sv = ", ".join(f"{x:.4g}" for x in layer["found"]["W_sv"])
        lines.append(
            f"layer {layer['layer']:<3} nc1 {lm['nc1']:.1e}, nc2 {lm['nc2']:.1e}, "
            f"nc2_of {lm['nc2_of']:.1e}, nc3 {lm['nc3_uncentred']:.1e}; W singular values {sv}"
        )
    lines.append(f"verdict   {ck['verdict'].upper()}: {ck['reason']}")
    print("\n".join(lines))


def _check_output_paths(args) -> None:
    """Fail before any work, not after it, when a result could not be written: a
    directory, a missing parent, a place where no file can be created."""
    if args.command in ("sweep", "train", "experiment", "language"):
        if args.out is None:  # ufm experiment without --out: in memory
            return
        # a zarr directory: an existing one is ufm.sweep's (--resume), a new one needs a parent
        if args.out.exists() and not args.out.is_dir():
            raise InputError(f"--out: {str(args.out)!r} exists and is not a zarr directory")
        if not args.out.exists():
            _output.check_writable(args.out, "--out")
        return
    if args.command == "features":
        args.out = _npz(args.out)
        _output.check_writable(args.out, "OUT")
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
    args = _cli_parser.build().parse_args(join_negative_values(argv))
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
    if args.command == "solve":
        return _solve(args)
    from . import (
        _cli_features,
        _cli_landscape,
        _cli_language,
        _cli_sweep,
        _cli_train,
        _cli_verify,
        cli_metrics,
    )

    command = {
        "train": _cli_train.train,
        "experiment": _cli_train.experiment,
        "language": _cli_language.run,
        "sweep": _cli_sweep.sweep,
        "plot": _cli_sweep.plot,
        "repair": _cli_sweep.repair,
        "metrics": cli_metrics.run,
        "verify": _cli_verify.run,
        "features": _cli_features.run,
        "landscape": _cli_landscape.run,
    }[args.command]
    return command(args)


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
