"""Linguistic Collapse (Wu & Papyan 2024) at small scale (`ufm.language.experiment`): small
causal transformers trained on the docstring corpus, each collapse metric of their last hidden
states (over next-token classes, training tokens; NC4 on validation tokens) against their
validation loss, full text width.

One panel per metric, in the paper's style: colour = width, marker = depth (circle 1, square
2), hollow = the shorter training, ringed in black = the seeds of the one configuration
trained with several; each panel's title gives Spearman's rho with validation loss across
all models.

    python figures/linguistic.py [--quick] [--out figures/linguistic.png] [--store DIR]

--store keeps the study in DIR/linguistic.zarr (continued where it exists), so a second call
only compares and draws. The full study takes about an hour on 2 cores.
"""

import argparse
import json
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")

from ufm.language import experiment  # noqa: E402
from ufm.networks import experiments  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402


def compute(quick: bool = False, store: Path | None = None) -> dict:
    """Train the study (or continue it under `store`) and compare: the comparison."""
    out = None if store is None else Path(store) / "linguistic.zarr"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    resume = out is not None and out.exists()
    _, comparison = experiments.run("linguistic", out, quick=quick, resume=resume, progress=False)
    return comparison


def plot(comparison: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""
    return _style.render(experiment.draw, comparison, out, quantize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small quick study")
    parser.add_argument("--out", type=Path, default=Path("figures/linguistic.png"))
    parser.add_argument("--store", type=Path, default=None, help="directory of the store")
    args = parser.parse_args(argv)
    comparison = compute(args.quick, args.store)
    print(json.dumps(comparison["summary"], indent=1))
    fig = plot(comparison, args.out)
    _style.close(fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
