"""Tirer, Huang & Niles-Weed (ICML 2023) at small scale: NC1 (Tr Sigma_W / Tr Sigma_B) of a
digits MLP's last-layer features against feature decay and weight decay, beside the
perturbed-vicinity UFM solved at each run's own H0 (the features entering the last layer),
with beta fitted once at the grid's middle run (`ufm.networks.tirer`), one column wide.

(a) NC1 against feature decay lambda_H, one colour per weight decay lambda_W; (b) against
weight decay, one colour per feature decay. Filled markers and solid lines: the network;
hollow markers and dashed lines: the model. A cross marks a run that did not reach zero
training error (not in the terminal phase: no agreement is called there).

    python figures/tirer.py [--quick] [--out figures/tirer.png] [--store PATH]

--store keeps the trained networks in a zarr store (continued if it exists), so a second
call only compares and draws.
"""

import argparse
import json
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")

from ufm.networks import experiments, tirer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402


def compute(quick: bool = False, store: Path | None = None) -> dict:
    """Train the experiment's grid (or continue `store`) and compare: {"comparison": ...}."""
    resume = store is not None and Path(store).exists()
    _, comparison = experiments.run(tirer.NAME, store, quick=quick, resume=resume, progress=False)
    return {"comparison": comparison}


def plot(data: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""
    return _style.render(lambda data: tirer.draw(data["comparison"]), data, out, quantize=True)


def report(comparison: dict) -> list[str]:
    """The comparison's numbers, one line per run, then the summary."""
    lines = []
    for r in comparison["runs"]:
        model = "n/a" if r["nc1_model"] is None else f"{r['nc1_model']:.4g}"
        lines.append(
            f"wd {r['lambda_W']:g} fd {r['lambda_H']:g} seed {r['point'].get('seed', 0)}: "
            f"NC1 network {r['nc1_network']:.4g} (H0 {r['nc1_H0']:.4g}), model {model}; "
            f"train error {r['train_error']:.4f}, test error {r['test_error']:.4f}, "
            f"terminal epoch {r['terminal_epoch']}"
            + ("" if r["terminal_phase"] else " (NOT in the terminal phase)")
        )
    summary = {k: v for k, v in comparison["summary"].items() if k != "model_fixed_H0"}
    lines.append(json.dumps(summary, indent=1))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 2 x 2 quick grid")
    parser.add_argument("--out", type=Path, default=Path("figures/tirer.png"))
    parser.add_argument("--store", type=Path, default=None, help="zarr store of the runs")
    args = parser.parse_args(argv)
    data = compute(args.quick, args.store)
    print("\n".join(report(data["comparison"])))
    fig = plot(data, args.out)
    _style.close(fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
