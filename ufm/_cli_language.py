"""`ufm language`: a study of small causal language models (`ufm.language.study`).

Trains a grid of transformers on the docstring corpus or a synthetic language into a
resumable store, measures each model's neural collapse over next-token classes, and prints
the rank correlations of every metric with validation loss. Every flag defaults to the full
study of `ufm experiment linguistic` (with ``--quick``: its small version).
"""

import dataclasses
from pathlib import Path

from . import _argv
from .errors import InputError

MAX_CONTEXT = 4096
SYNTHETIC_FLAGS = {
    "zipf_exponent": (float, "synthetic: Zipf exponent of the token frequencies (>= 0)"),
    "entropy_rate": (float, "synthetic: entropy rate in nats (the Bayes-optimal loss)"),
    "order": (_argv.integer, "synthetic: Markov order, 1 or 2"),
    "data_seed": (_argv.integer, "synthetic: seed of the language and its samples"),
    "train_tokens": (_argv.integer, "synthetic: tokens in the train stream"),
    "validation_tokens": (_argv.integer, "synthetic: tokens in the validation stream"),
}


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"expected comma-separated numbers, got {text!r}") from None


def add_parser(commands, **options) -> None:
    text = "train and measure a grid of small causal language models (Linguistic Collapse)"
    p = commands.add_parser("language", help=text, description=text, **options)
    p.add_argument("--out", type=Path, required=True, help="the zarr store (a new dir)")
    p.add_argument("--resume", action="store_true", help="continue --out, skipping saved models")
    p.add_argument("--quick", action="store_true", help="defaults of the small study")
    p.add_argument("--source", choices=("docstrings", "synthetic"), help="the text")
    p.add_argument("--vocab-size", type=_argv.integer, help="tokens V (docstrings: 2..corpus)")
    for name in ("widths", "depths", "steps", "seeds", "extra_seeds"):
        p.add_argument("--" + name.replace("_", "-"), type=_argv.integer_list,
                       help=f"{name.replace('_', ' ')}, comma-separated")  # fmt: skip
    p.add_argument("--weight-decays", type=_floats, help="AdamW decays, comma-separated")
    p.add_argument(
        "--seeded", help="WIDTH,DEPTH,STEPS,DECAY of the configuration with extra seeds, or none"
    )
    for name in ("context", "batch", "heads", "warmup", "measure_tokens"):
        p.add_argument("--" + name.replace("_", "-"), type=_argv.integer, help=name)
    p.add_argument("--lr", type=float, help="peak learning rate")
    for name, (kind, help) in SYNTHETIC_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, help=help)
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="synthetic: every context has one next token")  # fmt: skip
    p.add_argument("--figure", type=Path, help="also draw the figure to this .png")
    p.add_argument("--report", type=Path, help="also write the comparison as JSON here")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def study_of(args):
    """The `Study` the flags describe, checked (InputError naming the flag)."""
    from .language.experiment import setup

    base = setup(args.quick)
    changes = {}
    for name in ("source", "vocab_size", "context", "batch", "heads", "warmup", "lr",
                 "measure_tokens"):  # fmt: skip
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    for name in ("widths", "depths", "steps", "seeds", "extra_seeds", "weight_decays"):
        if getattr(args, name) is not None:
            changes[name] = tuple(getattr(args, name))
    if args.seeded is not None:
        changes["seeded"] = _seeded(args.seeded)
    if changes.get("context", base.context) > MAX_CONTEXT:
        raise InputError(f"--context must be <= {MAX_CONTEXT}, got {changes['context']}")
    synthetic = _synthetic(args)
    source = changes.get("source", base.source)
    if synthetic and source != "synthetic":
        raise InputError(f"--{next(iter(synthetic)).replace('_', '-')} needs --source synthetic")
    if synthetic:
        changes["synthetic"] = tuple(sorted(synthetic.items()))
    study = dataclasses.replace(base, **changes)
    study.check()
    return study


def _seeded(text: str):
    if text.strip().lower() == "none":
        return None
    parts = text.split(",")
    try:
        width, depth, steps, decay = int(parts[0]), int(parts[1]), int(parts[2]), float(parts[3])
    except (ValueError, IndexError):
        message = f"--seeded must be WIDTH,DEPTH,STEPS,DECAY or none, got {text!r}"
        raise InputError(message) from None
    return (width, depth, steps, decay)


def _synthetic(args) -> dict:
    out = {}
    for name in SYNTHETIC_FLAGS:
        value = getattr(args, name)
        if value is not None:
            out["seed" if name == "data_seed" else name] = value
    if args.deterministic:
        out["deterministic"] = True
    return out


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from ._cli_train import _interruptible, check_outputs, emit
    from .language import experiment
    from .language.study import run as run_study

    check_outputs(args)
    study = study_of(args)
    result = _interruptible(
        lambda: run_study(study, args.out, resume=args.resume, progress=not args.no_progress)
    )
    if isinstance(result, int):
        return result
    comparison = experiment.compare(result)
    return emit(args, experiment.plot, result, comparison, {"store": str(args.out)})
