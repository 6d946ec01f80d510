"""The census of stationary points (`ufm.landscape`) of two nonconvex UFMs, one column wide.

(a), (b) deep linear MSE UFM, K=4, n=5, d=8, M=3, lambda = 0.045 (just below the zero
threshold 0.0455, derivations/deep_linear.py step 3): the collapsed global minimum and the
spurious minimum at W = H = 0 are both reached by the restarts.
(c), (d) vicinity UFM, d = K = 4, n=5, beta = 0.01, H0 collapsed: the global minimum of
Cor 2.2 and the family of mirror minima (ufm/models/vicinity/landscape_claims.py).
Left: the fraction of restarts in each group, by its loss. Right: the smallest Hessian
eigenvalues off the symmetry's orbit, per group, on a symmetric-log axis; the grey band is
|eigenvalue| <= zero_rtol x weight decay (zero); each group is labelled with its index
(negative eigenvalues), its symmetry zeros (orbit dimension) and its other zeros.

    python figures/landscape.py [--quick] [--out figures/landscape.png]
"""

import argparse
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

import ufm  # noqa: E402
from ufm.landscape import zero_point  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402

CASES = {
    "deep linear": (
        "deep-linear",
        dict(loss="mse", K=4, n=5, d=8, depth=3, lambda_W=0.045, lambda_H=0.045),
    ),
    "vicinity": ("vicinity", dict(K=4, n=5, d=4, beta=0.01)),
}
COLORS = {
    "global_minimum": "tab:blue",
    "spurious_minimum": "tab:orange",
    "degenerate": "tab:purple",
    "saddle": "tab:red",
}


def compute(quick: bool = False) -> dict:
    """Each case's census (its `summary()`), with W = H = 0 among the given points."""
    restarts = 32 if quick else 256
    out = {}
    for title, (model, hyper) in CASES.items():
        problem = ufm.make(model, **hyper)
        points = {"zero": zero_point(problem)} if model == "deep-linear" else None
        out[title] = ufm.landscape(problem, restarts, points=points).summary()
    return out


def plot(data: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""
    return _style.render(_draw, data, out, quantize=True)


def _draw(data: dict):
    fig, axes = plt.subplots(len(data), 2, figsize=(_style.COLUMN, 3.9), layout="constrained")
    letters = iter("abcdefgh")
    for row, (title, census) in zip(axes, data.items(), strict=True):
        groups = census["groups"]
        x = np.arange(len(groups))
        colors = [COLORS.get(g["kind"], "0.5") for g in groups]
        ax = row[0]
        ax.bar(x, [g["fraction"] for g in groups], color=colors, width=0.6)
        ax.set_xticks(x, [f"{g['loss']:.4g}" for g in groups])
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set(xlabel="loss of the group", ylabel="fraction of restarts", ylim=(0, 1))
        ax.set_title(f"({next(letters)}) {title}", loc="left")
        _spectra(row[1], groups, colors)
        row[1].set_title(f"({next(letters)}) Hessian", loc="left")
    return fig


def _spectra(ax, groups: list, colors: list) -> None:
    """Each group's smallest eigenvalues off the orbit (symmetric log), the zero band, and
    'index/symmetry zeros/other zeros' above them."""
    zero_tol = groups[0]["hessian"]["zero_tol"] if groups else 1e-6
    values = [np.asarray(g["hessian"]["smallest"], dtype=float) for g in groups]
    top = max((float(v.max()) for v in values if v.size), default=1.0)
    low = min((float(v.min()) for v in values if v.size), default=0.0)
    ax.axhspan(-zero_tol, zero_tol, color=_style.BAND_COLOR, lw=0, zorder=0)
    for i, (g, v) in enumerate(zip(groups, values, strict=True)):
        h = g["hessian"]
        ax.plot(np.full(v.size, i), v, "_", color=colors[i], ms=9, mew=1.2)
        label = f"{g['index']}/{h['symmetry_zeros']}/{h['unexplained_zeros']}"
        ax.annotate(label, (i, top * 8), ha="center", va="bottom", fontsize=7)
    ax.set_yscale("symlog", linthresh=zero_tol, linscale=0.5)
    ax.set_ylim(min(low * 3, -3 * zero_tol), top * 1e3)
    decades = 10.0 ** np.arange(np.ceil(np.log10(zero_tol)) + 1, np.log10(top) + 1, 2)
    ax.set_yticks([0.0, *decades])
    ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(np.arange(len(groups)), [g["kind"].split("_")[0] for g in groups])
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set(xlabel="index/sym./other zeros", ylabel="smallest eigenvalues")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 restarts instead of 256")
    parser.add_argument("--out", type=Path, default=Path("figures/landscape.png"))
    args = parser.parse_args(argv)
    data = compute(args.quick)
    for title, census in data.items():
        groups = ", ".join(
            f"{g['kind']} {g['fraction']:.0%} (loss {g['loss']:.6g}, index {g['index']})"
            for g in census["groups"]
        )
        print(f"{title}: {census['converged']}/{census['restarts']} converged; {groups}")
    fig = plot(data, args.out)
    _style.close(fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
