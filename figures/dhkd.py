"""The distillation UFM (Yang et al., "Dual-Head Knowledge Distillation", arXiv 2411.08937):
where CE and BinaryKL conflict, how the heads train, and where the common mode goes; full
text width. The UFM is `ufm.make("dhkd")`'s default (K=4, n=5, d=6, lambda_W = lambda_H =
5e-3, BinaryKL at T=2, collapsed teacher of margin 4 and shift 2, no bias) unless said.

Top row.
  (a), (b) cos(grad gamma CE, grad alpha BinaryKL) on the head W and on the features H at the
      single head's symmetric collapse points (`ufm.models.dhkd.conflict.collapse_point`:
      logit margin A, student common mode w0 h0 = 0.5) against A and the teacher's shift;
      solid: cos W = 0, dashed: cos H = 0. The two signs coincide at every point (derivations/
      dhkd.py; the title counts the points where they differ).
  (c) The CE head's common-mode fraction |mean_k w_k| / max_k |w_k| at the global minimizer
      (`ufm.theory`, the exact reduction; no solving) against the teacher's shift: single head
      and the dual head's CE head (exactly 0), no bias / weight-decayed bias; grey: the dual
      head's logit head W2, which carries the common mode instead.
  (d) The same from `ufm.solve` under the "dark" teacher with a fraction of wrong samples
      (x: the teacher's realized error rate); the dual CE head's fraction is zero to the
      solver's tolerance: below sqrt(K) |grad f| / (K lambda_W max_k |w_k|) (crosses).
Middle and bottom rows: full-batch SGD, lr 0.05, momentum 0.9 (the official code's defaults;
weight decay = the model's lambdas), one seed, for one head, two heads, two heads with the
code's gradient projection (`--ga`), and one head with it (which the code cannot run).
  Recorded at every step, drawn at ~30 steps per decade.
  (e) the CE head's common-mode fraction, (f) the ETF error of its rows' Gram W W^T (rows
      not centred), (g) the loss above `ufm.theory`'s minimum (relative), (h) cos W and
      (i) cos H (full batch; dual heads: cos W = 0, the logit loss does not reach W; black
      dots: the steps with cos W < 0 <= cos H, the abstract's pattern, which occurs only in
      the transient), (j) the fraction of the steps at which the gradients conflict over all
      parameters (g_kd . g_ce < 0: where `--ga` projects).

    python figures/dhkd.py [--quick] [--out figures/dhkd.png]
"""

import argparse
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import ufm  # noqa: E402
from ufm.models.dhkd import conflict, dynamics, gradients  # noqa: E402
from ufm.models.dhkd import theory as reduction  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402

STUDENT_MODE = (0.5, 1.0)  # (w0, h0) of the collapse points of (a), (b): common mode 0.5
RUNS = {  # label: (heads, project)
    "single": ("single", False),
    "dual": ("dual", False),
    "dual + projection": ("dual", True),
    "single + projection": ("single", True),
}
STYLES = {
    "single": dict(color="C0", ls="-"),
    "dual": dict(color="C1", ls="-", lw=2.4),  # under the dashed projected run it equals
    "dual + projection": dict(color="C2", ls="--"),
    "single + projection": dict(color="C3", ls=":"),
}
BIAS_STYLES = {"none": "-", "decayed": "--"}
# The dual CE head's mean row is driven only by the rounding of CE's logit gradient (whose
# columns sum to 0 exactly, to ~eps per entry), kept by the decay's memory ~1/lambda_W = 200
# steps-equivalents of |H| ~ 3: ~eps |H| / lambda_W ~ 1e-13 of |w_k|; the ETF errors of a
# Gram rounded to eps inherit it. Below 1e-12 a fraction or an ETF error is 0 to round-off.
GEOMETRY_FLOOR = 1e-12
LOSS_FLOOR = _style.LOSS_GAP_FLOOR


def settings(quick: bool) -> dict:
    if quick:
        return dict(
            margins=21,
            shifts=15,
            theory_shifts=15,
            steps=4000,
            every=1,
            rates=(0, 0.2),
            restarts=1,
        )
    return dict(
        margins=61,
        shifts=49,
        theory_shifts=57,
        steps=15000,
        every=1,
        rates=(0.0, 0.1, 0.2, 0.3, 0.5),
        restarts=2,
    )


def cosine_map(margins: int, shifts: int) -> dict:
    """cos W and cos H at the collapse points (a b K/(K-1) = A, w0 h0 = 0.5) for each
    teacher shift (Zt + shift: the collapsed teacher's logits), vmapped in one compilation."""
    problem = ufm.make("dhkd", heads="single", teacher_shift=0.0)
    K, (w0, h0) = problem.K, STUDENT_MODE
    A = np.linspace(0.25, 12.0, margins)
    m = np.linspace(-6.0, 8.0, shifts)
    points = []
    for a in A:
        s = np.sqrt(a * (K - 1) / K)
        points.append(conflict.collapse_point(problem, s, s, w0, h0))
    params = {k: jnp.asarray(np.stack([p[k] for p in points])) for k in points[0]}

    def one(prm, shift):
        q = eqx.tree_at(lambda x: x.Zt, problem, problem.Zt + shift)
        c = gradients.cosine_values(q, prm)
        return c["W"], c["H"]

    grid = jax.vmap(jax.vmap(one, in_axes=(0, None)), in_axes=(None, 0))
    cos_W, cos_H = (np.asarray(c) for c in eqx.filter_jit(grid)(params, jnp.asarray(m)))
    differ = (np.sign(cos_W) != np.sign(cos_H)) & (np.abs(cos_W) > 1e-12)
    return {
        "margin": A.tolist(),
        "shift": m.tolist(),
        "cos_W": cos_W.tolist(),  # (shift, margin)
        "cos_H": cos_H.tolist(),
        "differ": int(differ.sum()),
        "conflicting": int(np.sum(cos_W < 0)),
        "points": int(cos_W.size),
    }


def training(steps: int, every: int) -> dict:
    """Each run of RUNS from the same seed, with the gap to `ufm.theory`'s minimum."""
    out = {}
    for label, (heads, project) in RUNS.items():
        problem = ufm.make("dhkd", heads=heads)
        tr = dynamics.train(problem, steps=steps, record_every=every, project=project)
        minimum = float(problem.theory().loss)
        keys = ("common_mode_fraction", "etf_error_uncentred", "etf_error_centred", "cos_W")
        keys += ("cos_H", "cos_all", "conflict_steps", "loss", "accuracy", "min_margin")
        run = {k: getattr(tr, k).tolist() for k in ("step", *keys)}
        run["gap"] = ((tr.loss - minimum) / minimum).tolist()
        run["minimum"] = minimum
        pattern = (tr.cos_W < 0) & (tr.cos_H >= 0)  # the abstract's: on W, not on H
        run["pattern_steps"] = tr.step[pattern].tolist()
        run["pattern"] = int(pattern.sum())
        run["opposite"] = int(np.sum((tr.cos_H < 0) & (tr.cos_W >= 0)))
        out[label] = run
    return out


def theory_curves(count: int) -> dict:
    """The CE head's (and the dual's logit head's) common-mode fraction at the minimizer of
    the reduced problem, against the teacher's shift, per heads and bias."""
    shifts = np.linspace(-6.0, 8.0, count)
    curves = {}
    for heads in ("single", "dual"):
        for bias in BIAS_STYLES:
            ce, logit = [], []
            for m in shifts:
                t = ufm.make("dhkd", heads=heads, bias=bias, teacher_shift=float(m)).theory()
                ce.append(float(t.quantities["common_mode_fraction"]))
                if heads == "dual":
                    logit.append(reduction.common_mode_fraction(t.params["W2"]))
            curves[f"{heads}/{bias}"] = {"ce": ce, "logit": logit}
    return {"shift": shifts.tolist(), "curves": curves}


def mistakes(rates, restarts: int) -> dict:
    """`ufm.solve` under the dark teacher per mistake rate and heads (the teacher's numbers
    are data: one compilation per heads setting)."""
    out = {}
    for heads in ("single", "dual"):
        rows = []
        for rate in rates:
            problem = ufm.make("dhkd", heads=heads, teacher="dark", teacher_mistakes=rate)
            sol = ufm.solve(problem, restarts=restarts)
            rows.append({"rate": float(rate)} | _solved(problem, sol))
        out[heads] = rows
    return out


def _solved(problem, sol) -> dict:
    """The CE head's common-mode fraction and accuracy, the teacher's error rate, the
    cosines, and the bound sqrt(K) |grad f| / lambda_W on |1^T W| as a fraction."""
    W = np.asarray(sol.params["W"])
    Z, _ = (np.asarray(z) for z in problem.head_logits(sol.params))
    labels = problem.labels
    top = float(np.max(np.linalg.norm(W, axis=1)))
    bound = np.sqrt(problem.K) * float(sol.grad_norm) / float(problem.lambda_W)
    cos = gradients.cosines(problem, sol.params)
    return {
        "teacher_error": float(np.mean(np.argmax(np.asarray(problem.Zt), axis=0) != labels)),
        "converged": bool(sol.converged),
        "fraction": reduction.common_mode_fraction(W),
        "bound": bound / (problem.K * top),
        "accuracy": float(np.mean(np.argmax(Z, axis=0) == labels)),
        "cos_W": cos["W"],
        "cos_H": cos["H"],
    }


def compute(quick: bool = False) -> dict:
    s = settings(quick)
    print("gradient cosines at collapse points ...", flush=True)
    data = {"map": cosine_map(s["margins"], s["shifts"])}
    print("SGD ...", flush=True)
    data["training"] = training(s["steps"], s["every"])
    print("reduced problem against the teacher's shift ...", flush=True)
    data["theory"] = theory_curves(s["theory_shifts"])
    print("solves under the dark teacher ...", flush=True)
    data["mistakes"] = mistakes(s["rates"], s["restarts"])
    return data


def plot(data: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""
    return _style.render(_draw, data, out, quantize=True)


def _map_panel(ax, grid: dict, key: str, title: str):
    A, m = np.asarray(grid["margin"]), np.asarray(grid["shift"])
    values = np.asarray(grid[key])
    mesh = ax.pcolormesh(A, m, values, cmap="RdBu", vmin=-1, vmax=1, shading="nearest")
    ax.contour(A, m, np.asarray(grid["cos_W"]), levels=[0.0], colors="k", linewidths=0.9)
    ax.contour(
        A, m, np.asarray(grid["cos_H"]), levels=[0.0], colors="w", linewidths=0.9, linestyles="--"
    )
    ax.set(xlabel="student margin $A$", ylabel="teacher shift $m$")
    ax.set_title(title, loc="left")
    return mesh


def _theory_panel(ax, th: dict) -> None:
    shifts = np.asarray(th["shift"])
    for key, curve in th["curves"].items():
        heads, bias = key.split("/")
        color = "C0" if heads == "single" else "C1"
        ax.plot(shifts, curve["ce"], color=color, ls=BIAS_STYLES[bias], lw=1.1)
        if curve["logit"]:
            ax.plot(shifts, curve["logit"], color="0.6", ls=BIAS_STYLES[bias], lw=0.9)
    ax.set(xlabel="teacher shift $m$", ylabel="common-mode fraction", ylim=(-0.03, 1.0))
    ax.set_title("(c) minimizer (theory)", loc="left")


def _mistake_panel(ax, rows: dict) -> None:
    for heads, color in (("single", "C0"), ("dual", "C1")):
        x = [r["teacher_error"] for r in rows[heads]]
        ax.plot(x, [r["fraction"] for r in rows[heads]], "o-", color=color, ms=3)
        if heads == "dual":
            ax.plot(x, [r["bound"] for r in rows[heads]], "x", color=color, ms=4)
    ax.set_yscale("log")
    ax.set(xlabel="dark teacher's error rate", ylabel="common-mode fraction")
    ax.set_title("(d) minimizer (solver)", loc="left")


def thinned(count: int, every: int = 30) -> np.ndarray:
    """Indices 1..count-1 of the records (step 0 has no place on a log axis), about `every`
    per decade of steps: what a log axis can show."""
    decades = max(np.log10(count - 1), 1.0)
    wanted = np.geomspace(1, count - 1, int(every * decades))
    return np.unique(np.round(wanted).astype(int))


def _binned(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The mean of `values` over the records since the previous kept one, per kept one."""
    edges = np.concatenate([[0], keep])
    return np.asarray(
        [np.mean(values[a + 1 : b + 1]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )


def _series(ax, runs: dict, key: str, floor: float | None, binned: bool = False) -> None:
    for label, run in runs.items():
        keep = thinned(len(run["step"]))
        values = np.asarray(run[key])
        step = np.asarray(run["step"])[keep]
        y = _binned(values, keep) if binned else values[keep]
        style = STYLES[label]
        if floor is None:
            ax.plot(step, y, **style)
        else:
            lw = style.get("lw", 1.1)
            _style.floored(ax, step, y, floor, style["ls"], color=style["color"], ms=2.5, lw=lw)
    ax.set_xscale("log")
    ax.set_xlabel("SGD step")


def _draw(data: dict):
    fig = plt.figure(figsize=(_style.DOUBLE, 6.4), layout="constrained")
    top, rest = fig.subfigures(2, 1, height_ratios=(1.0, 1.9))
    a = top.subplots(1, 4)
    grid = data["map"]
    mesh = _map_panel(a[0], grid, "cos_W", "(a) cos on $W$")
    _map_panel(a[1], grid, "cos_H", "(b) cos on $H$")
    top.colorbar(mesh, ax=a[:2], shrink=0.85, label="cosine")
    _theory_panel(a[2], data["theory"])
    _mistake_panel(a[3], data["mistakes"])
    top.legend(handles=_top_handles(grid), loc="outside lower center", ncol=4)
    b = rest.subplots(2, 3)
    runs = data["training"]
    _series(b[0, 0], runs, "common_mode_fraction", GEOMETRY_FLOOR)
    b[0, 0].set(ylabel="common-mode fraction")
    b[0, 0].set_title("(e) CE head's common mode", loc="left")
    _series(b[0, 1], runs, "etf_error_uncentred", GEOMETRY_FLOOR)
    b[0, 1].set(ylabel="ETF error of $WW^\\top$")
    b[0, 1].set_title("(f) CE head vs simplex ETF", loc="left")
    _series(b[0, 2], runs, "gap", LOSS_FLOOR)
    b[0, 2].set(ylabel="(loss $-$ min) / min")
    b[0, 2].set_title("(g) loss above the minimum", loc="left")
    for ax, key, name in (
        (b[1, 0], "cos_W", "(h) cos on $W$"),
        (b[1, 1], "cos_H", "(i) cos on $H$"),
    ):
        _series(ax, runs, key, None)
        _pattern_marks(ax, runs, key)
        ax.axhline(0.0, color="0.6", lw=0.6, zorder=0)
        ax.set(ylabel="cosine (CE, BinaryKL)", ylim=(-1.05, 1.05))
        ax.set_title(name, loc="left")
    _series(b[1, 2], runs, "conflict_steps", None, binned=True)
    b[1, 2].set(ylabel="fraction of steps", ylim=(-0.05, 1.05))
    b[1, 2].set_title("(j) $g_{kd} \\cdot g_{ce} < 0$ (all parameters)", loc="left")
    handles = [Line2D([], [], label=k, **v) for k, v in STYLES.items()]
    handles += [Line2D([], [], color="k", ls="none", marker=".", ms=4), _style.roundoff_handle()]
    labels = [*STYLES, "cos $W$ < 0 $\\leq$ cos $H$", _style.ROUNDOFF_LABEL]
    rest.legend(handles, labels, loc="outside lower center", ncol=6)
    return fig


def _pattern_marks(ax, runs: dict, key: str) -> None:
    """Black dots where cos W < 0 <= cos H (every record, not only the drawn ones)."""
    for run in runs.values():
        where = np.isin(run["step"], run["pattern_steps"])
        ax.plot(np.asarray(run["step"])[where], np.asarray(run[key])[where], "k.", ms=2.5)


def _top_handles(grid: dict) -> list:
    differ = f"signs differ at {grid['differ']}/{grid['points']} points"
    return [
        Line2D([], [], color="k", lw=0.9, label="(a, b) cos $W$ = 0"),
        Line2D([], [], color="0.4", lw=0.9, ls="--", label=f"cos $H$ = 0 ({differ})"),
        Line2D([], [], color="C0", label="(c, d) single head"),
        Line2D([], [], color="C1", label="dual: CE head"),
        Line2D([], [], color="0.6", label="(c) dual: logit head"),
        Line2D([], [], color="k", ls="--", label="(c) decayed bias"),
        Line2D([], [], color="C1", ls="none", marker="x", label="(d) dual: tolerance bound"),
    ]


def _spans(steps: list) -> str:
    """Consecutive steps as ranges: [26-32, 75-77]."""
    spans, start = [], None
    for i, s in enumerate(steps):
        start = s if start is None else start
        if i + 1 == len(steps) or steps[i + 1] != s + 1:
            spans.append(f"{start}-{s}" if s != start else f"{s}")
            start = None
    return "[" + ", ".join(spans) + "]"


def report(data: dict) -> list[str]:
    """The numbers the docs quote."""
    grid = data["map"]
    lines = [
        f"collapse points: {grid['conflicting']}/{grid['points']} conflict on W; signs of "
        f"cos W and cos H differ at {grid['differ']}"
    ]
    for label, run in data["training"].items():
        lines.append(
            f"{label}: final common-mode fraction {run['common_mode_fraction'][-1]:.3g}, ETF error "
            f"(uncentred/centred) {run['etf_error_uncentred'][-1]:.3g}/"
            f"{run['etf_error_centred'][-1]:.3g}, loss gap {run['gap'][-1]:.3g}, cos W "
            f"{run['cos_W'][-1]:.4g}, cos H {run['cos_H'][-1]:.4g}, accuracy "
            f"{run['accuracy'][-1]:.3g}; steps with cos W < 0 <= cos H: {run['pattern']} "
            f"{_spans(run['pattern_steps'])}, with cos H < 0 <= cos W: {run['opposite']}"
        )
    for heads, rows in data["mistakes"].items():
        for r in rows:
            lines.append(
                f"dark teacher, {heads}, mistakes {r['rate']:g} (teacher error "
                f"{r['teacher_error']:.3g}): fraction {r['fraction']:.3g} (bound "
                f"{r['bound']:.2g}), accuracy {r['accuracy']:.3g}, cos W {r['cos_W']:.3g}, "
                f"cos H {r['cos_H']:.3g}"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grids, 4000 steps, 2 rates")
    parser.add_argument("--out", type=Path, default=Path("figures/dhkd.png"))
    args = parser.parse_args(argv)
    data = compute(args.quick)
    print("\n".join(report(data)))
    _style.close(plot(data, args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
