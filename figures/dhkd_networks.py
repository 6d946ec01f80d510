"""Yang et al.'s dual-head knowledge distillation at small scale (`ufm.networks.dhkd`): MLP
students distilled from an MLP teacher six ways, on digits and on a Gaussian mixture, full
text width.

Per dataset (one row each): (a) test accuracy of the CE head per student, mean ± standard
error over seeds (grey dots: the seeds; dashed: the teacher); (b) the CE head's common-mode
fraction |mean_k w_k| / max_k |w_k| (circles), the ETF error of its Gram W W^T (filled
squares) and of the row-centred W's Gram (hollow squares), mean ± s.e.; crosses: the common
mode of the second (BinaryKL-Norm) head of the dual-head students. Digits also has students
(c) and (d) trained against the teacher's logits shifted by m on every class ("m=2", "m=4"
in (a), (b)), and a last row: (e) the mean logit on the training set of head 1 of (c), of
head 1 and head 2 of (d) (filled) and their biases' means (hollow) against m, the teacher's
mean logit dashed; (f) the CE head's common-mode fraction (filled) and |1^T W1| / ||W1||_F
(hollow) against m.

    python figures/dhkd_networks.py [--quick] [--out figures/dhkd_networks.png] [--store DIR]

--store keeps the trained networks in DIR/dhkd.zarr and DIR/dhkd-gaussian.zarr (continued
where they exist), so a second call only compares and draws.
"""

import argparse
import json
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")

from ufm.networks import dhkd, experiments  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402

NAMES = ("dhkd", "dhkd-gaussian")


def compute(quick: bool = False, store: Path | None = None, names=NAMES) -> dict:
    """Train each experiment's grid (or continue it under `store`) and compare:
    {"comparisons": {experiment name: comparison}}."""
    comparisons = {}
    for name in names:
        out = None if store is None else Path(store) / f"{name}.zarr"
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
        resume = out is not None and out.exists()
        _, comparisons[name] = experiments.run(
            name, out, quick=quick, resume=resume, progress=False
        )
    return {"comparisons": comparisons}


def plot(data: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""

    def draw(data):
        by_data = {c["summary"]["data"]: c for c in data["comparisons"].values()}
        return dhkd.draw(by_data)

    return _style.render(draw, data, out, quantize=True)


def report(comparisons: dict) -> list[str]:
    """Per experiment: the verdict, then the per-method means as JSON."""
    lines = []
    for name, comparison in comparisons.items():
        summary = comparison["summary"]
        lines.append(f"{name}: {summary['verdict']}")
        if summary.get("shift"):
            lines.append(f"{name}, shifted teacher: {summary['shift']['verdict']}")
        lines.append(json.dumps({"methods": summary["methods"], "ordering": summary["ordering"]}))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small quick setups")
    parser.add_argument("--out", type=Path, default=Path("figures/dhkd_networks.png"))
    parser.add_argument("--store", type=Path, default=None, help="directory of the stores")
    args = parser.parse_args(argv)
    data = compute(args.quick, args.store)
    print("\n".join(report(data["comparisons"])))
    fig = plot(data, args.out)
    _style.close(fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
