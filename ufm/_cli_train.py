"""`ufm train` (a grid of networks into a store) and `ufm experiment NAME` (a paper's
practical experiment: its grid trained, then compared with the model's prediction).

Both write resumable zarr stores (`--out`, `--resume`); Ctrl-C keeps the runs already
saved and exits 130 (the run in progress is trained again on --resume).
"""

import time
from pathlib import Path

from . import _argv, _output
from ._interrupts import SweepInterrupted
from .errors import InputError

TRAINING_FLAGS = {  # flag -> (Training field, type, help)
    "widths": (str, "hidden layer widths, e.g. 256,256"),
    "depth": (_argv.integer, "bias-free linear layers between the backbone and the classifier"),
    "loss": (str, "ce or mse"),
    "weight_decay": (float, "lambda_W: decay on every weight matrix (>= 0)"),
    "feature_decay": (float, "lambda_H: decay on the backbone's output features (>= 0)"),
    "mixup_alpha": (float, "mixup's Beta(alpha, alpha); 0: no mixup"),
    "lr": (float, "learning rate (> 0)"),
    "momentum": (float, "SGD momentum in [0, 1)"),
    "schedule": (
        str,
        "learning-rate schedule: cosine, step, step-late (x0.1 at 5/8, 3/4, 7/8) or constant",
    ),
    "epochs": (_argv.integer, "epochs (>= 1)"),
    "batch_size": (_argv.integer, "samples per step; 0: full batch"),
}


def add_parsers(commands, **options) -> None:
    from ._experiment_names import MODULES

    text = "train a grid of networks (MLPs, offline data) into a resumable store"
    p = commands.add_parser("train", help=text, description=text, **options)
    _data_flags(p)
    for name, (kind, help) in TRAINING_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=help)
    p.add_argument("--batch-norm", action="store_true", default=None, help="batch norm")
    p.add_argument("--no-bias", action="store_true", help="no classifier bias")
    p.add_argument(
        "--grid",
        action="append",
        metavar="NAME=SPEC",
        help="a grid axis over a training setting: NAME=V1,V2,... or NAME=START:STOP:NUM[:log]"
        " (repeat for more axes), e.g. --grid weight-decay=1e-4,1e-3 --grid depth=1,3,6",
    )
    p.add_argument("--seeds", type=_argv.integer_list, default=[0], help="seeds, e.g. 0,1,2")
    p.add_argument("--record", type=_argv.integer_list, help="epochs to store (0: init)")
    _store_flags(p, required=True)

    text = "run a paper's practical experiment: train its grid, compare with the model"
    p = commands.add_parser("experiment", help=text, description=text, **options)
    p.add_argument("name", choices=list(MODULES), metavar="NAME", help=", ".join(MODULES))
    p.add_argument("--quick", action="store_true", help="the small version (about a minute)")
    p.add_argument("--figure", type=Path, help="also draw the figure to this .png")
    p.add_argument("--report", type=Path, help="also write the comparison as JSON here")
    _store_flags(p, required=False)


def _data_flags(p) -> None:
    p.add_argument("--data", default="digits", help="digits or gaussian")
    p.add_argument("--train-per-class", type=_argv.integer_list, help="training counts")
    p.add_argument("--test-fraction", type=float, help="share of each class held out")
    p.add_argument("--data-seed", type=_argv.integer, help="seed of the split and subsampling")
    p.add_argument("--classes", type=_argv.integer, help="gaussian: K")
    p.add_argument("--dim", type=_argv.integer, help="gaussian: input dimension")
    p.add_argument("--separation", type=float, help="gaussian: distance between means")
    p.add_argument("--per-class", type=_argv.integer_list, help="gaussian: samples per class")


def _store_flags(p, required: bool) -> None:
    p.add_argument("--out", type=Path, required=required, help="the zarr store (a new dir)")
    p.add_argument("--resume", action="store_true", help="continue --out, skipping saved runs")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _data(args):
    from .networks import dataset

    settings = {
        "train_per_class": _one_or_list(args.train_per_class),
        "test_fraction": args.test_fraction,
        "data_seed": args.data_seed,
    }
    if args.data == "gaussian":
        settings |= {"K": args.classes, "dim": args.dim, "separation": args.separation}
        settings["per_class"] = _one_or_list(args.per_class)
    elif any(v is not None for v in (args.classes, args.dim, args.separation, args.per_class)):
        raise InputError("--classes, --dim, --separation, --per-class: only with --data gaussian")
    return dataset(args.data, **{k: v for k, v in settings.items() if v is not None})


def _one_or_list(values):
    return None if values is None else values[0] if len(values) == 1 else values


def train(args) -> int:
    from . import networks
    from ._sweep_grid import parse_axis

    data = _data(args)
    fixed = {k: getattr(args, k) for k in TRAINING_FLAGS if getattr(args, k) is not None}
    if args.batch_norm:
        fixed["batch_norm"] = True
    if args.no_bias:
        fixed["bias"] = False
    grid = {}
    for text in args.grid or []:
        name, values, _ = parse_axis(text)
        if name in grid:
            raise InputError(f"--grid {name}: given twice")
        grid[name] = list(values)
    start = time.perf_counter()
    ds = _interruptible(
        lambda: networks.train(
            data, fixed, grid, seeds=args.seeds, record=args.record, out=args.out,
            resume=args.resume, progress=not args.no_progress,
        )
    )  # fmt: skip
    if isinstance(ds, int):
        return ds
    summary = _train_summary(ds, time.perf_counter() - start, args.out)
    _show(summary, args.json)
    return 0


def _interruptible(work):
    from ._cli_sweep import stopped

    try:
        return work()
    except SweepInterrupted as stop:
        return stopped(stop)


def _train_summary(ds, seconds: float, out) -> dict:
    from .networks import read

    runs = []
    for point in read.points(ds):
        status = read.status(ds, point, int(ds["epoch"].values[-1]))
        runs.append(point | {k: status[k] for k in ("train_error", "test_error", "terminal_epoch")})
    return {"result": str(out), "runs": len(runs), "seconds": round(seconds, 2), "each": runs}


def _show(summary: dict, as_json: bool, indent: str = "") -> None:
    if as_json:
        print(_output.dumps(summary))
        return
    for key, value in summary.items():
        if isinstance(value, dict) and any(isinstance(v, dict | list) for v in value.values()):
            print(f"{indent}{key}:")
            _show(value, False, indent + "  ")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            print(f"{indent}{key}:")
            for row in value:
                print(f"{indent}  " + ", ".join(f"{k}={_short(v)}" for k, v in row.items()))
        else:
            print(f"{indent}{key:<28}{_short(value)}")


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else value


def check_outputs(args) -> None:
    """--figure and --report, checked before any training: the suffix and the directory."""
    for flag, path, suffixes in (("--figure", args.figure, (".png", ".pdf", ".svg")),
                                 ("--report", args.report, (".json",))):  # fmt: skip
        if path is not None and path.suffix.lower() not in suffixes:
            raise InputError(f"{flag}: {str(path)!r} must end in {' or '.join(suffixes)}")
        if path is not None and not path.resolve().parent.is_dir():
            raise InputError(f"{flag}: directory {str(path.parent)!r} does not exist")


def emit(args, plot, ds, comparison: dict, header: dict) -> int:
    """Draw the figure and write the report if asked; print the comparison (JSON, or its
    summary under `header`)."""
    if args.figure is not None:
        plot(ds, comparison, args.figure)
    if args.report is not None:
        _output.write_text(args.report, _output.dumps(comparison) + "\n")
    if args.json:
        print(_output.dumps(comparison))
    else:
        _show(header | comparison["summary"], False)
    return 0


def experiment(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .networks import experiments

    check_outputs(args)
    result = _interruptible(
        lambda: experiments.run(
            args.name, args.out, quick=args.quick, resume=args.resume,
            progress=not args.no_progress,
        )
    )  # fmt: skip
    if isinstance(result, int):
        return result
    ds, comparison = result
    header = {"experiment": args.name, "store": str(args.out)}
    return emit(args, experiments.module(args.name).plot, ds, comparison, header)
