"""NC1-NC4 per layer along training, into the terminal phase: digits, an MLP of three
hidden layers of 256 (CE, weight decay 5e-4, full batch, 600 epochs, three seeds), the
median over seeds per layer; the dashed line is where the training error stays 0. The plain
CE UFM's global minimizer has NC1 = NC2 = NC3 = 0 and full agreement (NC4).

    python figures/terminal.py [--quick] [--out figures/terminal.png] [--store runs.zarr]
"""

import argparse
import json
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")

from ufm.networks import experiments, terminal  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402


def compute(quick: bool = False, store: Path | None = None) -> dict:
    """Train (or resume) the experiment's grid and compare: the comparison dict."""
    resume = store is not None and Path(store).exists()
    _, comparison = experiments.run("terminal", store, quick=quick, resume=resume)
    return comparison


def plot(data: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""
    return _style.render(terminal.draw, data, out, quantize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small run (about 30 s)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".png"))
    parser.add_argument("--store", type=Path, help="keep the trained runs here (resumable)")
    args = parser.parse_args()
    data = compute(args.quick, args.store)
    plot(data, args.out)
    print(json.dumps(data["summary"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
