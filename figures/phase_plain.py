"""Phase diagrams of the plain UFM over (lambda_W, lambda_H): the regime the solver finds at
every grid point, with the closed-form phase boundaries of `ufm.theory` drawn on top.

K=4 classes, d=8, both lambdas log-spaced over 1e-4 .. 1 (48 x 48 points; --quick 10 x 10),
one L-BFGS solve per point (`ufm.sweep`, seed 0). Cell colour: the regime read off the
solution's class-mean logits (`ufm.check.found_regime`); hatched cells did not converge;
black lines: lambda_W lambda_H = mu_c^2 for every critical mu_c of the model
(`PlainProblem.critical_mu`), drawn by `ufm.plot.phase_diagram`.
  (a) CE, balanced n=5, no bias: collapsed (simplex ETF) below the zero threshold
      K sqrt(n lambda_W lambda_H) = 1, the zero solution above it.
  (b) MSE, balanced n=5, no bias: collapsed (orthogonal frame) below sqrt(n)/N = mu, zero
      above.
  (c) MSE, imbalanced n=(20, 20, 4, 4), no bias: collapsed (general orthogonal frame) below
      mu = sqrt(4)/N, minority collapse (the two small classes switched off) between
      sqrt(4)/N and sqrt(20)/N, zero above: two theory lines, three regions.
  (d) CE, imbalanced n=(20, 20, 4, 4), unregularized bias (lambda_b = 0): the zero
      threshold has a closed form (certificate at W = H = 0 with the best bias
      b = log(n/N)); inside it the theory is the certified convex program
      (`ufm.models.plain.convex`): minority collapse between the two thresholds of (c) (the
      two minority classes share their logits: the class-mean logits lose one rank). Only
      the zero line is drawn: `critical_mu` does not list the merge at sqrt(4)/N.

Printed per panel: points, converged, verdicts, and how often the found regime equals the
predicted one among the converged points where the theory applies.

    python figures/phase_plain.py [--quick] [--out figures/out/phase_plain.png]
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

import ufm  # noqa: E402
import ufm.plot  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402

IMBALANCED = (20, 20, 4, 4)
PANELS = {
    "ce": dict(
        title="(a) CE, balanced $n$=5, no bias",
        fixed=dict(loss="ce", K=4, n=5, d=8, bias=False),
    ),
    "mse": dict(
        title="(b) MSE, balanced $n$=5, no bias",
        fixed=dict(loss="mse", K=4, n=5, d=8, bias=False),
    ),
    "mse_imbalanced": dict(
        title="(c) MSE, $n$=(20,20,4,4), no bias",
        fixed=dict(loss="mse", K=4, n=IMBALANCED, d=8, bias=False),
    ),
    "ce_imbalanced": dict(
        title="(d) CE, $n$=(20,20,4,4), bias, $\\lambda_b$=0\n"
        "inside the zero line: numerics only (no theory)",
        fixed=dict(loss="ce", K=4, n=IMBALANCED, d=8, bias=True, lambda_b=0.0),
    ),
}


def settings(quick: bool) -> dict:
    """chunk: points per compiled call, by loss. The solver's while loop runs a chunk until
    its slowest point stops, so small chunks pay off for CE (up to ~1500 steps where
    lambda_W / lambda_H is extreme); MSE stops in < 50 steps everywhere and prefers big
    ones. Each divides the point count, so no chunk is padded with repeated points."""
    if quick:
        return dict(lambdas=np.geomspace(1e-4, 1.0, 10), chunk={"ce": 50, "mse": 100})
    return dict(lambdas=np.geomspace(1e-4, 1.0, 48), chunk={"ce": 16, "mse": 256})


def title(s: dict) -> str:
    n = len(s["lambdas"])
    return (
        f"plain UFM, $K$=4, $d$=8: regime found by the solver at each of {n} $\\times$ {n} "
        "points (colour);\nclosed-form boundaries $\\lambda_W\\lambda_H = \\mu_c^2$ of "
        "ufm.theory (black lines)"
    )


def _counts(values: np.ndarray) -> dict[str, int]:
    names, counts = np.unique(np.asarray(values), return_counts=True)
    return {str(k): int(v) for k, v in zip(names, counts, strict=True)}


def summarize(ds) -> dict:
    """The numbers a panel is judged by (best seed per point)."""
    best = ufm.plot.best_seed(ds).transpose("lambda_W", "lambda_H")
    converged = best["converged"].values
    regime, theory = best["regime"].values, best["theory_regime"].values
    verdict = best["verdict"].values
    applicable = converged & (theory != "not_applicable")
    disagree = []
    for i, j in zip(*np.nonzero(applicable & (verdict != "agrees")), strict=True):
        point = best.isel(lambda_W=i, lambda_H=j)
        disagree.append(
            {
                "lambda_W": float(point["lambda_W"]),
                "lambda_H": float(point["lambda_H"]),
                "verdict": str(point["verdict"].values),
                "regime": str(point["regime"].values),
                "theory_regime": str(point["theory_regime"].values),
                "reason": str(point["reason"].values),
            }
        )
    return {
        "points": int(converged.size),
        "converged": int(converged.sum()),
        "verdicts": _counts(verdict),
        "applicable": int(applicable.sum()),  # converged points where the theory applies
        "agrees": int(np.sum(applicable & (verdict == "agrees"))),
        "regime_matches": int(np.sum(applicable & (regime == theory))),
        "regimes": _counts(regime[converged]),
        "theory_regimes": _counts(theory),
        # what the solver finds where the theory has nothing to say
        "regimes_not_applicable": _counts(regime[converged & (theory == "not_applicable")]),
        "max_abs_loss_gap": float(np.nanmax(np.abs(best["loss_gap"].values), initial=0.0)),
        "disagreements": disagree,  # converged applicable points whose verdict is not agrees
    }


def summary_line(title: str, s: dict, seconds: float) -> str:
    found = ", ".join(f"{k} {v}" for k, v in s["regimes"].items())
    name = title.splitlines()[0].replace("$", "").replace("\\", "")  # plain text, no TeX
    return (
        f"{name}: {s['points']} points, {s['converged']} converged, "
        f"theory applies at {s['applicable']}: {s['agrees']} agree, regime == theory_regime at "
        f"{s['regime_matches']}; found {found}; max |loss gap| {s['max_abs_loss_gap']:.1e} "
        f"({seconds:.1f} s)"
    )


def compute(quick: bool = False) -> dict:
    s = settings(quick)
    grid = {"lambda_W": s["lambdas"], "lambda_H": s["lambdas"]}
    out = {"lambdas": s["lambdas"].tolist(), "panels": {}}
    began = time.perf_counter()
    for key, panel in PANELS.items():
        t0 = time.perf_counter()
        ds = ufm.sweep(
            "plain", fixed=panel["fixed"], grid=grid, chunk_size=s["chunk"][panel["fixed"]["loss"]]
        )
        seconds = time.perf_counter() - t0
        summary = summarize(ds)
        print(summary_line(panel["title"], summary, seconds), flush=True)
        out["panels"][key] = {
            "title": panel["title"],
            "fixed": {k: list(v) if isinstance(v, tuple) else v for k, v in panel["fixed"].items()},
            "dataset": ds,
            "summary": summary,
            "seconds": seconds,
        }
    out["seconds"] = time.perf_counter() - began
    out["title"] = title(s)
    print(f"total {out['seconds']:.1f} s", flush=True)
    return out


def plot(data: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""
    return _style.render(_draw, data, out, quantize=True)


def take_legend(ax, handles: dict) -> None:
    """Move the legend `ufm.plot.phase_diagram` drew inside the axes (over the cells) into
    `handles` (label -> handle, first seen wins), for one legend outside every panel."""
    legend = ax.get_legend()
    if legend is None:
        return
    for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
        label = text.get_text()
        if label.startswith("not converged"):  # the counts are in the panel titles
            label, handle = "not converged (hatched)", _style.unconverged_handle()
        handles.setdefault(label.replace("_", " "), handle)
    legend.remove()


def _draw(data: dict):
    fig, axes = plt.subplots(2, 2, figsize=(_style.DOUBLE, 6.4), layout="constrained")
    handles: dict = {}
    for ax, panel in zip(axes.ravel(), data["panels"].values(), strict=True):
        ufm.plot.phase_diagram(panel["dataset"], "lambda_W", "lambda_H", ax=ax, title=None)
        take_legend(ax, handles)
        _style.mark_unconverged(ax)
        s = panel["summary"]
        ax.set_title(
            f"{panel['title']}\n{s['agrees']}/{s['applicable']} applicable agree, "
            f"{s['converged']}/{s['points']} converged"
        )
        ax.set_xlabel(r"$\lambda_W$")
        ax.set_ylabel(r"$\lambda_H$")
    order = sorted(handles, key=lambda k: (k.startswith("theory"), k.startswith("not")))
    fig.legend([handles[k] for k in order], order, loc="outside lower center", ncol=4)
    fig.suptitle(data["title"])
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 x 10 grids, for tests")
    parser.add_argument("--out", type=Path, default=Path("figures/out/phase_plain.png"))
    args = parser.parse_args(argv)
    _style.close(plot(compute(args.quick), args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
