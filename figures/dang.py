"""Linear layers appended to an MLP (Dang et al. 2023), per layer, against the deep linear
UFM: digits, an MLP backbone (128, 64), M - 1 bias-free linear layers and a bias-free
classifier (M = 1, 3, 6), MSE and CE, weight decay 5e-3 and feature decay 2e-5, minibatch
SGD for 1200 epochs. Top row: classes 0-4 with 135 training samples, 5-9 with 9 (the UFM
switches the minority classes off at M = 6 only); bottom row: 135 in every class.
(a) distance of the class-mean Gram to the predicted one (hollow: spectrum distance, where
the prediction is unique only up to which classes pair up), (b) NC1, (c) the minority /
majority mean norm (imbalanced) or the Gram's effective rank (balanced), crosses: the
prediction. Faded: runs that are not judged (not in the terminal phase, or no closed form).

    python figures/dang.py [--quick] [--out figures/dang.png] [--store runs.zarr]

--store keeps the imbalanced runs at PATH and the balanced ones at PATH-balanced (resumed
when they exist).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ufm.networks import dang, experiments  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402


def _balanced_store(store: Path | None) -> Path | None:
    return None if store is None else store.with_name(store.stem + "-balanced" + store.suffix)


def compute(quick: bool = False, store: Path | None = None) -> dict:
    """Train (or resume) both stores and compare: {"imbalanced", "balanced": comparison,
    "seconds": wall time of each}."""
    out: dict = {"seconds": {}}
    began = time.perf_counter()
    resume = store is not None and Path(store).exists()
    _, out["imbalanced"] = experiments.run("dang", store, quick=quick, resume=resume)
    out["seconds"]["imbalanced"] = time.perf_counter() - began
    began = time.perf_counter()
    second = _balanced_store(store)
    resume = second is not None and second.exists()
    _, out["balanced"] = dang.run_balanced(second, quick=quick, resume=resume)
    out["seconds"]["balanced"] = time.perf_counter() - began
    return out


def plot(data: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""
    return _style.render(_draw, data, out, quantize=True)


def _draw(data: dict):
    fig, axes = plt.subplots(2, 3, figsize=(_style.DOUBLE, 4.2), layout="constrained")
    for row, key, letters in zip(axes, ("imbalanced", "balanced"), ("abc", "def"), strict=True):
        dang.draw(row, data[key], key, letters)
    dang.legend(fig, data["imbalanced"]["runs"] + data["balanced"]["runs"])
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs (about a minute)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".png"))
    parser.add_argument("--store", type=Path, help="keep the trained runs here (resumable)")
    args = parser.parse_args(argv)
    data = compute(args.quick, args.store)
    for key in ("imbalanced", "balanced"):
        print(f"{key} ({data['seconds'][key]:.0f} s):")
        print(json.dumps(data[key]["summary"], indent=1))
    fig = plot(data, args.out)
    _style.close(fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
