"""Phase diagram of the deep linear MSE UFM over (lambda_W, depth): where the minority classes
and then all classes switch off, and how that moves with depth.

Bias-free MSE, K=4, imbalanced n=(20, 20, 4, 4) (N=48), d=8; depth M = 1 .. 6 (y, linear),
the same weight decay lambda_W on every layer (x, log-spaced over 1e-3 .. 3, 48 values) and
lambda_H = 1e-2 fixed. A sweep can only grid independent hyperparameters, so lambda_H is
held fixed rather than tied to lambda_W; the minimum depends on the lambdas only through
mu = (lambda_H lambda_W^M)^{1/(M+1)}, so the x axis is a monotone reparametrization of mu
at every depth. Each point is the best converged of 8 restarts (L-BFGS; depth >= 2 has
spurious local minima, among them W = H = 0 itself); --quick: M = 1 .. 3, 8 values of
lambda_W, 2 restarts.

Closed form (derivations/deep_linear.py, steps 3-4; ours): class k is switched off iff n_k <=
minority_threshold(N, lambda_H, lambda_W), i.e. iff lambda_W >= lambda_k(M) =
n_k (M-1)^{(M-1)/M} / (M^2 N (N lambda_H)^{1/M}) (M = 1: n_k / (N^2 lambda_H)); for M >= 2
the switch is a first-order transition. With two class sizes there are two thresholds per
depth: collapsed (general orthogonal frame, all 4 classes on) below lambda_4(M), minority
collapse (the two n=4 classes off) between, zero above lambda_20(M). Both move to smaller
lambda_W as M grows.
  (a) colour: the regime read off the best restart (`ufm.check.found_regime`); black lines:
      edges between grid cells whose predicted regime (`theory_regime`) differs (drawn by
      `ufm.plot.phase_diagram`); white ticks: the exact thresholds lambda_k(M). The
      restarts start at scales 0.5 .. 2 (`ufm.solve`'s default init_spread = 2).
  (b) the same restarts, all at scale 1 (init_spread = 1; only the random directions
      differ): colour is the verdict of `ufm.check`. Around the first-order thresholds of
      M >= 2 the neighbouring branch is a local minimum too, over a range of lambda_W that
      widens with depth (at M=6 a factor ~3 below the minority threshold), and which
      branch L-BFGS reaches is decided by the scale of the start, not its direction:
      these points stop in a spurious minimum (the neighbouring branch; the same points
      as with a single start), which the spread of scales in (a) avoids.

    python figures/phase_deep_linear.py [--quick] [--out figures/out/phase_deep_linear.png]
"""

import argparse
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import ufm  # noqa: E402
import ufm.plot  # noqa: E402
from ufm.models.deep_linear import minority_threshold  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402

COUNTS = (20, 20, 4, 4)
N = sum(COUNTS)
LAMBDA_H = 1e-2
FIXED = dict(loss="mse", K=4, n=COUNTS, d=8, bias=False, lambda_H=LAMBDA_H)
TITLE = (
    f"deep linear UFM, MSE, no bias, $K$=4, $n$={COUNTS}, $d$=8, $\\lambda_H$={LAMBDA_H:g}, "
    "the same $\\lambda_W$ on every layer"
)
ACTIVE = {"collapsed": 4, "minority_collapse": 2, "zero": 0}  # classes on, n = COUNTS


def settings(quick: bool) -> dict:
    if quick:
        return dict(depths=(1, 2, 3), lambdas=np.geomspace(1e-3, 3.0, 8), restarts=2)
    return dict(depths=tuple(range(1, 7)), lambdas=np.geomspace(1e-3, 3.0, 48), restarts=8)


def threshold_lambda(n_k: int, depth: int) -> float:
    """lambda_W (every layer) at which a class of n_k samples switches off at this depth."""
    M = depth
    lam = n_k * (M - 1) ** ((M - 1) / M) / (M**2 * N * (N * LAMBDA_H) ** (1 / M))
    # the same number from the model's own threshold (n_k = threshold there)
    assert np.isclose(minority_threshold(N, LAMBDA_H, [lam] * M), n_k, rtol=1e-12)
    return float(lam)


def summarize(ds, lambdas: np.ndarray) -> dict:
    best = ufm.plot.best_seed(ds).transpose("depth", "lambda_W")
    converged = best["converged"].values
    regime, theory = best["regime"].values, best["theory_regime"].values
    verdict = best["verdict"].values
    applicable = converged & (theory != "not_applicable")
    rows = []
    for i, M in enumerate(best["depth"].values.tolist()):
        active = np.array([ACTIVE.get(r, -1) for r in regime[i]])
        row = {"depth": M, "regimes": regime[i].tolist(), "theory": theory[i].tolist()}
        # where the found class count drops below 4 (resp. to 0), against the closed form
        for n_k, key in ((min(COUNTS), "minority"), (max(COUNTS), "zero")):
            on = active > (2 if key == "minority" else 0)
            exact = threshold_lambda(n_k, M)
            first_off = int(np.argmin(on)) if not on.all() else len(lambdas)
            row[key] = {
                "exact": exact,
                "last_on": float(lambdas[first_off - 1]) if first_off > 0 else None,
                "first_off": float(lambdas[first_off]) if first_off < len(lambdas) else None,
                # the found switch is one step: on below it, off from it on
                "monotone": bool(np.all(on[:first_off]) and not np.any(on[first_off:])),
            }
        rows.append(row)
    disagree = [
        {
            "depth": int(best["depth"].values[i]),
            "lambda_W": float(lambdas[j]),
            "verdict": str(verdict[i, j]),
            "regime": str(regime[i, j]),
            "theory_regime": str(theory[i, j]),
            "loss_gap": float(best["loss_gap"].values[i, j]),
            "reason": str(best["reason"].values[i, j]),
        }
        for i, j in zip(*np.nonzero(applicable & (verdict != "agrees")), strict=True)
    ]
    return {
        "points": int(converged.size),
        "converged": int(converged.sum()),
        "applicable": int(applicable.sum()),
        "agrees": int(np.sum(applicable & (verdict == "agrees"))),
        "regime_matches": int(np.sum(applicable & (regime == theory))),
        "min_restarts_converged": int(best["restarts_converged"].values.min()),
        "max_abs_loss_gap": float(np.nanmax(np.abs(best["loss_gap"].values), initial=0.0)),
        "depths": rows,
        "disagreements": disagree,
    }


def compute(quick: bool = False) -> dict:
    s = settings(quick)
    began = time.perf_counter()
    grid = {"depth": list(s["depths"]), "lambda_W": s["lambdas"]}
    ds = ufm.sweep("deep-linear", fixed=FIXED, grid=grid, restarts=s["restarts"])
    seconds = time.perf_counter() - began
    summary = summarize(ds, s["lambdas"])
    # the same number of restarts, all at scale 1 (the same compiled solve: the scales are
    # data, so this costs only the solving)
    same = ufm.sweep("deep-linear", fixed=FIXED, grid=grid, restarts=s["restarts"], init_spread=1.0)
    same_summary = summarize(same, s["lambdas"])
    total = time.perf_counter() - began
    print(
        f"deep linear MSE, n={COUNTS}, lambda_H={LAMBDA_H:g}, {s['restarts']} restarts: "
        f"{summary['points']} points, {summary['converged']} converged, theory applies at "
        f"{summary['applicable']}: {summary['agrees']} agree, regime == theory_regime at "
        f"{summary['regime_matches']}; max |loss gap| {summary['max_abs_loss_gap']:.1e}; "
        f"fewest converged restarts {summary['min_restarts_converged']} ({seconds:.1f} s)",
        flush=True,
    )
    for row in summary["depths"]:
        text = "; ".join(
            f"{what} off from lambda_W = {row[key]['exact']:.4g} (grid: on at "
            f"{row[key]['last_on'] or 0:.3g}, off at {row[key]['first_off'] or np.inf:.3g})"
            for key, what in (("minority", "n=4 classes"), ("zero", "all classes"))
        )
        print(f"  M={row['depth']}: {text}", flush=True)
    print(
        f"the same {s['restarts']} restarts all at scale 1: {same_summary['agrees']} of "
        f"{same_summary['applicable']} agree (total {total:.1f} s)",
        flush=True,
    )
    for bad in same_summary["disagreements"]:
        print(
            f"  M={bad['depth']}, lambda_W={bad['lambda_W']:.4g}: found {bad['regime']}, "
            f"theory {bad['theory_regime']}, loss gap {bad['loss_gap']:.3g}",
            flush=True,
        )
    return {
        "dataset": ds,
        "summary": summary,
        "same_scale": {"dataset": same, "summary": same_summary},
        "lambdas": s["lambdas"].tolist(),
        "depths": list(s["depths"]),
        "restarts": s["restarts"],
        "seconds": total,
        "title": TITLE,
    }


def plot(data: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""
    return _style.render(_draw, data, out, quantize=True)


def _draw(data: dict):
    fig = plt.figure(figsize=(_style.DOUBLE, 3.9), layout="constrained")
    subfigs = fig.subfigures(1, 2)
    s, same = data["summary"], data["same_scale"]["summary"]
    gap = _style.value_text(s["max_abs_loss_gap"], _style.LOSS_GAP_FLOOR)
    panels = (
        (
            data["dataset"],
            "regime",
            f"(a) regime, best of {data['restarts']} restarts at scales 0.5 .. 2\n"
            f"{s['agrees']}/{s['applicable']} agree, regime = theory at "
            f"{s['regime_matches']}\nmax |loss gap|: {gap}",
        ),
        (
            data["same_scale"]["dataset"],
            "verdict",
            f"(b) verdict, {data['restarts']} restarts all at scale 1\n"
            f"{same['agrees']}/{same['applicable']} agree; the others stop in the\n"
            "other branch (a spurious minimum)",
        ),
    )
    outline = [patheffects.withStroke(linewidth=3.6, foreground="k")]
    for subfig, (ds, color, title) in zip(subfigs, panels, strict=True):
        ax = subfig.subplots()
        ufm.plot.phase_diagram(ds, "lambda_W", "depth", color=color, ax=ax)
        ax.set_title(title, fontsize=plt.rcParams["axes.titlesize"])
        legend = ax.get_legend()  # drawn inside the axes, over the cells: move it below
        handles = list(legend.legend_handles)
        labels = [t.get_text().replace("_", " ") for t in legend.get_texts()]
        legend.remove()
        for k, label in enumerate(labels):
            if label.startswith("not converged"):
                handles[k] = _style.unconverged_handle()
        _style.mark_unconverged(ax)
        ax.set_yticks(data["depths"])
        ax.set_xlabel(r"$\lambda_W$ (every layer)")
        ax.set_ylabel("depth $M$")
        if color == "regime":
            for row in s["depths"]:
                for key in ("minority", "zero"):
                    x = row[key]["exact"]
                    ax.plot(
                        [x, x],
                        [row["depth"] - 0.45, row["depth"] + 0.45],
                        color="w",
                        lw=2,
                        path_effects=outline,
                    )
            handles.append(Line2D([], [], color="w", lw=2, path_effects=outline))
            labels.append("exact thresholds $\\lambda_k(M)$")
        subfig.legend(handles, labels, loc="outside lower center", ncol=2)
    fig.suptitle(data["title"])
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid, for tests")
    parser.add_argument("--out", type=Path, default=Path("figures/out/phase_deep_linear.png"))
    args = parser.parse_args(argv)
    _style.close(plot(compute(args.quick), args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
