"""Fisher, Meng & Papyan 2024 (arXiv 2402.06171) on a real network: last-layer features of
mixed training inputs lam x_i + (1 - lam) x_j of digits MLPs trained with mixup (alpha = 1,
blue) and without (orange), against ufm's mixup UFM (black), `ufm.networks.fisher`; the
panels show the largest feature decay of the setup, lines the mean over seeds of the mean over
300 pairs, bands the 10th-90th percentiles over the pairs of the first seed.

(a) logit gap z_c1 - z_c2 of different-class mixes against lam; the model at kappa mapped from
    the network (r, lambda_bar = N feature_decay; solid), fitted to the mean gap (dashed),
    and the mapped curve scaled by the least-squares factor s (dash-dotted); the log-odds
    (dotted). (b) energy fraction of the centred feature h - mu_G in span{w_c1, w_c2} (solid),
    in the span of two other classes' rows (dashed), and of a random 2-dim subspace (2/d).
    (c) same-class margin z_c - mean_o z_o against lam, the model's g*. (d) distance of a
    same-class mix's feature from its clean class mean over the between-class spread; dotted:
    the clean training features' within-class spread on the same scale.

    python figures/fisher.py [--quick] [--out figures/fisher.png] [--store PATH] [--json FILE]
"""

import argparse
import json
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ufm.networks import experiments, fisher  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402


def compute(quick: bool = False, store: Path | None = None) -> dict:
    """Train (or resume) the experiment's grid and compare; {"ds", "comparison"}."""
    resume = store is not None and Path(store).exists()
    ds, comparison = experiments.run("fisher", store, quick=quick, resume=resume, progress=True)
    return {"ds": ds, "comparison": comparison}


def plot(data: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""
    return _style.render(lambda data: fisher.draw(data["comparison"]), data, out, quantize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick setup (< 1 min)")
    parser.add_argument("--out", type=Path, default=Path("figures/fisher.png"))
    parser.add_argument("--store", type=Path, default=None, help="zarr store (resumed)")
    parser.add_argument("--json", type=Path, default=None, help="write the comparison here")
    args = parser.parse_args(argv)
    data = compute(args.quick, args.store)
    comparison = data["comparison"]
    for run in comparison["runs"]:
        d, s, m = run["different_class"], run["same_class"], run["model"]
        print(
            f"alpha {run['mixup_alpha']:g}, feature decay {run['feature_decay']:g}, seed "
            f"{run['point']['seed']}: train error "
            f"{run['train_error']:.4f}, test error {run['test_error']:.4f}, terminal epoch "
            f"{run['terminal_epoch']}; span {d['span']:.3f} (other pair {d['span_other']:.3f}, "
            f"random {d['span_random']:.4f}); gap slope {d['gap_fit']['slope']:.2f} "
            f"(R^2 {d['gap_fit']['r2']:.3f}); same-class spread {s['feature_spread']:.3f}; "
            f"kappa mapped {_kappa(m['mapped'])}, fitted {_kappa(m['fitted'])}"
        )
    for line in comparison["summary"]["text"]:
        print(line)
    if args.json is not None:
        args.json.write_text(json.dumps(comparison, indent=1, allow_nan=False))
    plt.close(plot(data, args.out))
    print(f"wrote {args.out}")


def _kappa(model) -> str:
    return "n/a" if model is None else f"{model['kappa']:.3g}"


if __name__ == "__main__":
    main()
