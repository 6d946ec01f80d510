"""`ufm metrics FEATURES`: every NC metric of a features file, as a table or JSON.

FEATURES may also be a training store (`ufm train`, `ufm experiment`): --layer, --epoch,
--split and --sel pick one layer of one run (the last layer comes with its classifier).

Files: FEATURES is an .npz holding `features` (N, d) or `H` (d, N), and optionally
`labels` (or `y`), a classifier `W` (K, d) and a bias `b`; `ufm solve --params` writes such
a file. Or an .npy of features, read through a memory map (N, d by default; --dxn says
d x N), with --labels. --labels, --classifier and --bias take .npy files (or .npz files
holding `labels`, `W`, `b`) and override what FEATURES holds.
"""

import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from . import _argv, _budget, _output
from .cli import emit
from .errors import InputError

KEYS = {
    "features": ("features", "H"),
    "labels": ("labels", "y"),
    "W": ("W", "classifier"),
    "b": ("b", "bias"),
}


def add_parser(commands, **options) -> None:
    text = "neural-collapse metrics of a features file (any network, any size)"
    p = commands.add_parser("metrics", help=text, description=text, **options)
    p.add_argument("features", type=Path, metavar="FEATURES", help=".npz or .npy features")
    p.add_argument("--labels", type=Path, help=".npy labels, one per sample (any values)")
    p.add_argument("--classifier", type=Path, help=".npy classifier W (K, d), or .npz with W, b")
    p.add_argument("--bias", type=Path, help=".npy classifier bias b (K,)")
    p.add_argument(
        "--dxn",
        "--columns",
        dest="dxn",
        action="store_true",
        help="an .npy FEATURES is d x N (samples as columns, ufm's layout); default N x d",
    )
    p.add_argument(
        "--num-classes",
        type=_argv.integer,
        help="labels are 0..K-1 with K this (classes without samples are reported as empty)",
    )
    p.add_argument(
        "--drop-nonfinite", action="store_true", help="skip rows with nan/inf (default: error)"
    )
    p.add_argument(
        "--unweighted-mean",
        action="store_true",
        help="centre on the mean of the class means (rhubarbwu) instead of the sample mean",
    )
    p.add_argument("--batch-size", type=_argv.integer, default=4096, help="rows read at a time")
    p.add_argument("--layer", help="training store: the layer (default: the last)")
    p.add_argument("--epoch", type=_argv.integer, help="training store: the epoch (default: last)")
    p.add_argument("--split", default="train", help="training store: train or test features")
    p.add_argument(
        "--sel",
        action="append",
        metavar="NAME=VALUE",
        help="training store: the run, by its grid values (e.g. --sel weight_decay=0.001 "
        "--sel seed=1); needed when the store holds several runs",
    )
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--out", type=Path, help="also write the JSON report to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _load(path: Path, what: str, mmap: bool = False) -> Any:
    """An .npy array (memory-mapped if asked) or an .npz archive; errors name the flag."""
    if not path.is_file():
        raise InputError(f"{what}: no such file {str(path)!r}")
    if path.suffix not in (".npy", ".npz"):
        raise InputError(f"{what}: {str(path)!r} must be an .npy or .npz file")
    if path.suffix == ".npz" and not zipfile.is_zipfile(path):  # np.load would leak the file
        raise InputError(f"{what}: cannot read {str(path)!r} (not an .npz archive: no zip file)")
    try:
        return np.load(path, mmap_mode="r" if mmap and path.suffix == ".npy" else None)
    except Exception as error:  # numpy raises several kinds for a bad file
        raise InputError(f"{what}: cannot read {str(path)!r} ({error})") from None


def _member(archive, name: str, path: Path, what: str, required: bool) -> Any:
    for key in KEYS[name]:
        if key in archive.files:
            try:
                return archive[key]
            except Exception as error:  # a pickled or corrupt member: numpy, zipfile errors
                raise InputError(
                    f"{what}: cannot read {key!r} from {str(path)!r} ({error})"
                ) from None
    if required:
        keys = " or ".join(repr(k) for k in KEYS[name])
        raise InputError(f"{what}: {str(path)!r} holds {sorted(archive.files)}, none of {keys}")
    return None


def _single(path: Path | None, name: str, flag: str) -> Any:
    """The array a --labels/--classifier/--bias file gives (None if the flag is absent)."""
    if path is None:
        return None
    data = _load(path, flag)
    return data if isinstance(data, np.ndarray) else _member(data, name, path, flag, True)


def read_inputs(args) -> tuple[Any, np.ndarray, Any, Any, str]:
    """(features, labels, W, b, layout) from the command line's files."""
    if args.features.is_dir():
        return _from_store(args)
    data = _load(args.features, "FEATURES", mmap=True)
    W = b = labels = None
    if isinstance(data, np.ndarray):
        features, layout = data, "columns" if args.dxn else "rows"
    else:
        layout = "rows" if "features" in data.files else "columns"
        features = _member(data, "features", args.features, "FEATURES", True)
        labels = _member(data, "labels", args.features, "FEATURES", False)
        W = _member(data, "W", args.features, "FEATURES", False)
        b = _member(data, "b", args.features, "FEATURES", False)
    if args.classifier is not None:
        loaded = _load(args.classifier, "--classifier")
        if isinstance(loaded, np.ndarray):
            W, b = loaded, None
        else:
            W = _member(loaded, "W", args.classifier, "--classifier", True)
            b = _member(loaded, "b", args.classifier, "--classifier", False)
    labels = _single(args.labels, "labels", "--labels") if args.labels else labels
    b = _single(args.bias, "b", "--bias") if args.bias else b
    if labels is None:
        raise InputError(f"--labels: {str(args.features)!r} holds no labels; give a labels file")
    if W is not None and np.ndim(W) != 2:
        raise InputError(f"--classifier: W must be a (K, d) matrix, got shape {np.shape(W)}")
    if b is not None and W is None:
        raise InputError("--bias: a bias needs a classifier (--classifier)")
    return features, np.asarray(labels), W, b, layout


def _from_store(args) -> tuple[Any, np.ndarray, Any, Any, str]:
    """One layer of one run of a training store, with the classifier for the last layer."""
    from .networks import open_training, read

    ds = open_training(args.features)
    runs = list(read.points(ds))
    sel = dict(text.partition("=")[::2] for text in args.sel or [])
    for name in sel:
        if name.replace("-", "_") not in read.grid_dims(ds):
            raise InputError(f"--sel {name}: not a grid dimension; the store's: "
                             f"{', '.join(read.grid_dims(ds))}")  # fmt: skip
    sel = {k.replace("-", "_"): v for k, v in sel.items()}
    chosen = [p for p in runs if all(str(p[k]) == v or _same(p[k], v) for k, v in sel.items())]
    if len(chosen) != 1:
        listed = "; ".join(", ".join(f"{k}={v}" for k, v in p.items()) for p in runs[:6])
        raise InputError(
            f"--sel: {len(chosen)} of the store's {len(runs)} saved runs match; pick one with "
            f"--sel NAME=VALUE (runs: {listed})"
        )
    point = chosen[0]
    epoch = int(ds["epoch"].values[-1]) if args.epoch is None else args.epoch
    layers = read.layer_names(ds, point)
    layer = layers[-1] if args.layer is None else args.layer
    features, labels = read.features(ds, point, epoch, layer, args.split)
    W, b = read.classifier(ds, point, epoch) if layer == layers[-1] else (None, None)
    args.selection = point | {"epoch": epoch, "layer": layer, "split": args.split}
    return features, labels, W, b, "rows"


def _same(value, text: str) -> bool:
    try:
        return float(value) == float(text)
    except ValueError:
        return False


def run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .metrics import report

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.num_classes is not None and args.num_classes < 2:
        raise InputError(f"--num-classes must be >= 2, got {args.num_classes}")
    features, labels, W, b, layout = read_inputs(args)
    _check_budget(args, features, layout, W)
    start = time.perf_counter()
    bar = Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=args.no_progress or not sys.stderr.isatty(),
    )
    tasks: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done)

    with bar:
        result = report(
            features,
            labels,
            W,
            b,
            layout=layout,
            num_classes=args.num_classes,
            weighted_mean=not args.unweighted_mean,
            drop_nonfinite=args.drop_nonfinite,
            batch_size=args.batch_size,
            progress=progress,
        )
    result = {"file": str(args.features), "seconds": round(time.perf_counter() - start, 3)} | result
    if getattr(args, "selection", None) is not None:  # a training store: which run and layer
        result = {"file": result["file"], "selection": args.selection} | result
    # JSON has no nan or inf: they become null (the report's notes say which and why)
    result = _output.jsonable(result)
    return emit(result, args.json, args.out, lambda: _print(result))


def _check_budget(args, features, layout: str, W) -> None:
    """Refuse sizes that cannot fit (--num-classes 1e9) before anything is allocated."""
    shape = np.shape(features)
    if len(shape) != 2:
        return  # report() says what is wrong with the features
    N, d = shape if layout == "rows" else shape[::-1]
    K = args.num_classes if args.num_classes is not None else (None if W is None else len(W))
    _budget.check_metrics(N, d, K, args.batch_size, W is not None)


def _fmt(value: Any) -> str:
    if value is None:
        return "undefined"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 140)
    data = result["data"]
    console.print(
        f"{result['file']}: N={data['N']} samples, K={data['K']} classes, d={data['d']} "
        f"(class sizes {data['class_size_min']}..{data['class_size_max']}; "
        f"input {data['input_dtype']}, computed in {data['dtype']}; {result['seconds']} s)",
        highlight=False,
    )
    table = Table(show_lines=False)
    for column in ("metric", "value", "definition"):
        table.add_column(column, overflow="fold")
    for name, value in result["metrics"].items():
        table.add_row(name, _fmt(value), result["definitions"][name])
    console.print(table)
    g = result["geometry"]
    etf = (
        "exists" if g["etf_exists"] else f"does not exist (least possible nc2 {g['nc2_floor']:.4g})"
    )
    console.print(
        f"geometry: nearest {g['nearest']}; simplex ETF in d={data['d']} {etf}; "
        f"nc2 {_fmt(g['nc2'])}, nc2_of {_fmt(g['nc2_of'])} (least {g['nc2_of_floor']:.4g}); "
        f"mean cosine {_fmt(g['cos_mean'])} (ETF {g['cos_etf']:.4g}); smallest angle "
        f"{_fmt(g['min_angle_deg'])} deg (ETF {g['min_angle_etf_deg']:.4g}); log energy "
        f"{_fmt(g['gnc2_log_mean'])} (ETF {g['gnc2_log_mean_etf']:.4g})",
        highlight=False,
    )
    for note in result["notes"]:
        console.print(f"note: {note}", highlight=False)
