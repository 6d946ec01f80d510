"""Tirer, Huang & Niles-Weed (ICML 2023): NC1 of a trained network's last-layer features
against weight decay and feature decay, beside the perturbed-vicinity UFM's prediction.

The model (the paper's Eq. 2, main body read in its ICLR 2023 submission; canonical units)

    f(W, H; H0) = (1/(2N)) ||W H - Y||^2 + lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2
                  + beta/2 ||H - H0||^2            (MSE, no bias)

keeps the last-layer features H near those of a shallower layer, H0; the paper concludes that
feature regularization (lambda_H) moves NC1 = Tr Sigma_W / Tr Sigma_B (its Eq. 3) more than
the last layer's weight decay (lambda_W). ufm trains digits MLPs with two equal hidden layers
(d, d), MSE, no classifier bias, on a grid weight_decay x feature_decay, and reads H0 =
``hidden1`` (the features entering the last layer), H = ``hidden2``, W = the classifier. On
(W, H) the network's objective is the model's beta-free part exactly (lambda_H =
feature_decay, lambda_W = weight_decay), but the network's weight decay also acts on both
hidden layers, which the model replaces by the beta term. beta is not observable: `fit_beta`
fits it once, at one reference run, and the model then predicts every run from that run's H0
and decays. The model is rotation-equivariant (H0 -> Q H0 moves its H to Q H), so only H0's
Gram matrix matters, not its coordinates.
"""

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .. import _output, metrics
from ..errors import InputError
from ..models.vicinity import theory as vicinity_theory
from . import read
from .data import dataset
from .experiments import Setup, write_figure
from .training import Training

NAME = "tirer"
SUMMARY = (
    "Tirer et al. 2023: NC1 of the last layer against weight and feature decay, network vs "
    "the perturbed-vicinity UFM with H0 = the features entering the last layer"
)
BETA_SCAN = 10.0 ** np.arange(-8, 0)  # canonical beta, scanned upward to bracket the match
BETA_XTOL = 1e-3  # in log beta: the fitted beta is good to 0.1 %
# d > K: one start finds the minimum. gtol 1e-7 (a relative distance to the critical point,
# ample for NC1 to 6 digits): ufm's default 1e-9 times a weight decay ~1e-6 asks for a
# gradient below float64's rounding of it here (measured: the solve then stops unconverged).
SOLVE_OPTIONS = {"restarts": 1, "max_steps": 20_000, "gtol": 1e-7}
NOT_TERMINAL = "not in the terminal phase (training error > 0 at the end): no agreement called"


def setup(quick: bool = False) -> Setup:
    """Full: digits, 130 per class (N = 1300), widths (64, 64), minibatches of 130, SGD lr
    0.01 (cosine, momentum 0.9), 1200 epochs, weight_decay in {1e-4, 3e-4, 1e-3, 3e-3} x
    feature_decay in {1e-6, 3e-6, 1e-5, 3e-5}, seeds 0 and 1. Quick: 30 per class (N = 300),
    minibatches of 30, 200 epochs, the grid's corners (2 x 2), seed 0."""
    full = {"weight_decay": [1e-4, 3e-4, 1e-3, 3e-3], "feature_decay": [1e-6, 3e-6, 1e-5, 3e-5]}
    per_class, width, epochs = (30, 64, 200) if quick else (130, 64, 1200)
    training = Training(
        widths=(width, width),
        depth=0,
        bias=False,
        loss="mse",
        lr=0.01,
        momentum=0.9,
        schedule="cosine",
        epochs=epochs,
        batch_size=per_class,
    )
    grid = {k: v[::3] if quick else v for k, v in full.items()}
    data = dataset("digits", train_per_class=per_class)
    return Setup(data, training, grid, seeds=(0,) if quick else (0, 1), record=(0, epochs))


def last_layers(training: Training) -> tuple[str, str]:
    """(H0's layer, H's layer): the last two hidden layers, which must have one width."""
    widths = training.widths
    if training.depth != 0 or len(widths) < 2 or widths[-1] != widths[-2] or training.bias:
        raise InputError(
            "tirer: needs depth=0, no classifier bias and two or more hidden layers whose "
            f"last two widths are equal (H0 and H of one size); got widths={list(widths)}, "
            f"depth={training.depth}, bias={training.bias}"
        )
    return f"hidden{len(widths) - 1}", f"hidden{len(widths)}"


def nc1(H, labels, K: int) -> float | None:
    """Tr Sigma_W / Tr Sigma_B of features H (d, N) (`ufm.metrics.nc1_trace`); None where it
    is undefined (Tr Sigma_B = 0)."""
    value = float(metrics.nc1_trace(np.asarray(H, float), np.asarray(labels), int(K)))
    return value if math.isfinite(value) else None


def vicinity_problem(H0, labels, K: int, lambda_W: float, lambda_H: float, beta: float):
    """The vicinity UFM around H0 (d, N; columns sorted by class, as a store's training
    samples are), canonical units."""
    import ufm

    labels = np.asarray(labels)
    if np.any(np.diff(labels) < 0):
        raise InputError("tirer: H0's columns must be sorted by class")
    counts = [int(c) for c in np.bincount(labels, minlength=K)]
    n = counts[0] if len(set(counts)) == 1 else counts
    hyper = {"lambda_W": lambda_W, "lambda_H": lambda_H, "beta": beta}
    return ufm.make("vicinity", K=K, n=n, H0=np.asarray(H0, float), **hyper)


def model_nc1(H0, labels, K: int, lambda_W: float, lambda_H: float, beta: float) -> dict:
    """NC1 of the vicinity UFM's minimizer (`ufm.solve`, one start): ``nc1`` (None unless the
    solve converged), ``converged``, ``steps``, ``status``."""
    import ufm

    sol = ufm.solve(vicinity_problem(H0, labels, K, lambda_W, lambda_H, beta), **SOLVE_OPTIONS)
    converged = bool(sol.converged)
    value = nc1(np.asarray(sol.params["H"]), labels, K) if converged else None
    return {"nc1": value, "converged": converged, "steps": int(sol.steps), "status": sol.status}


def parallel_fraction(H0, labels, K: int) -> float:
    """The fraction of H0's within-class energy (columns minus their class mean) in the span
    of H0's class means (uncentred, as the model's row(W*))."""
    H0 = np.asarray(H0, float)
    onehot = np.eye(K)[np.asarray(labels)]
    means = H0 @ onehot / onehot.sum(axis=0)
    within = H0 - means @ onehot.T
    U, s, _ = np.linalg.svd(means, full_matrices=False)
    U = U[:, s > s[0] * 1e-12]
    total = float(np.sum(within**2))
    return float(np.sum((U.T @ within) ** 2)) / total if total > 0 else 0.0


def shrink_nc1(H0, labels, K: int, lambda_W: float, lambda_H: float, beta: float) -> dict:
    """NC1(H0) (gamma_par^2 e_par + gamma_perp^2 (1 - e_par)): the model's within-class shrink
    factors (`vicinity.theory.nc1_ratio`), exact to first order when H0's class means sit at
    the collapsed minimizer; the network's H0 is not such a point: an indication only."""
    n = int(np.bincount(np.asarray(labels), minlength=K)[0])
    e_par = parallel_fraction(H0, labels, K)
    ratio = float(vicinity_theory.nc1_ratio(K, n, lambda_W, lambda_H, beta, e_par))
    base = nc1(H0, labels, K)
    return {
        "nc1": None if base is None else base * ratio,
        "gamma_parallel": float(vicinity_theory.gamma_parallel(K, n, lambda_W, lambda_H, beta)),
        "gamma_perp": float(vicinity_theory.gamma_perp(lambda_H, beta)),
        "e_parallel": e_par,
    }


def fit_beta(H0, labels, K: int, lambda_W: float, lambda_H: float, target: float) -> dict:
    """The beta at which the model's NC1 equals `target` (the network's): scan `BETA_SCAN`
    upward until the model's NC1 reaches the target (it rises with beta, from the collapsed
    plain UFM's towards NC1(H0): observed, and Cor 3.2's direction), then Brent's method in
    log beta in that decade. Without a bracket: the scanned beta closest to the target in
    log NC1, ``matched`` False. Only converged solves count."""
    from scipy.optimize import brentq

    tried: dict[float, float] = {}

    def gap(log_beta: float) -> float:
        beta = float(np.exp(log_beta))
        value = model_nc1(H0, labels, K, lambda_W, lambda_H, beta)["nc1"]
        if value is None:
            raise RuntimeError(f"the model did not converge at beta={beta:g}")
        tried[beta] = value
        return math.log(value) - math.log(target)

    out = {"target_nc1": float(target), "how": "no scanned beta brackets the target"}
    below = None  # the largest scanned log beta whose converged NC1 is below the target
    try:
        for log_beta in np.log(BETA_SCAN):
            try:
                above = gap(log_beta) >= 0
            except RuntimeError:
                continue  # not converged: no evidence either way, scan on
            if above and below is not None:
                root = float(np.exp(brentq(gap, below, log_beta, xtol=BETA_XTOL)))
                how = "model NC1 = network NC1 at the reference run (Brent, log beta)"
                return out | {"beta": root, "matched": True, "how": how, "solves": len(tried)}
            if above:
                break  # the model is above the target already at the smallest converged beta
            below = log_beta
    except RuntimeError as error:  # inside Brent's method
        out["how"] = f"{error}; the closest converged beta kept"
    best = min(tried, key=lambda b: abs(math.log(tried[b] / target)), default=None)
    return out | {"beta": best, "matched": False, "solves": len(tried)}


# ----------------------------------------------------------------------------------------
# Across the grid.


def spearman(a, b) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None under 3 pairs or where one
    side is constant."""
    from scipy.stats import rankdata

    ra, rb = rankdata(np.asarray(a, float)), rankdata(np.asarray(b, float))
    if ra.size < 3 or np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def log_slopes(weight_decay, feature_decay, values) -> dict | None:
    """Least squares log NC1 = c + s_W log(weight_decay) + s_H log(feature_decay) over runs:
    ``{"weight_decay": s_W, "feature_decay": s_H, "intercept", "rms_residual", "runs",
    "stderr": {decay: the slope's ordinary least-squares standard error}}``. A decay that
    takes one value only gets slope None; None if nothing is left to fit."""
    columns = {"weight_decay": weight_decay, "feature_decay": feature_decay}
    columns = {k: np.log(np.asarray(v, float)) for k, v in columns.items()}
    y = np.log(np.asarray(values, float))
    varied = [k for k, c in columns.items() if np.unique(c).size > 1]
    if not varied or y.size < len(varied) + 1:
        return None
    A = np.column_stack([np.ones(y.size)] + [columns[k] for k in varied])
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    out = dict.fromkeys(columns) | dict(zip(varied, map(float, coef[1:]), strict=True))
    rss, dof = float(np.sum((y - A @ coef) ** 2)), y.size - A.shape[1]
    se = np.sqrt(np.diag(np.linalg.pinv(A.T @ A)) * rss / dof) if dof > 0 else [None] * A.shape[1]
    errors = dict.fromkeys(columns) | {
        k: _output.jsonable(e) for k, e in zip(varied, se[1:], strict=True)
    }
    rms = float(np.sqrt(rss / y.size))
    fit = {"intercept": float(coef[0]), "rms_residual": rms, "runs": int(y.size)}
    return out | fit | {"stderr": errors}


def stronger(slopes: dict | None) -> str | None:
    """Which decay moves log NC1 more per unit of its log: 'feature_decay' or 'weight_decay'."""
    if not slopes or None in (slopes["weight_decay"], slopes["feature_decay"]):
        return None
    larger = abs(slopes["feature_decay"]) > abs(slopes["weight_decay"])
    return "feature_decay" if larger else "weight_decay"


def _network_run(ds: xr.Dataset, point: dict, epoch: int) -> tuple[dict, tuple]:
    """(the run's numbers, (H0 (d, N), labels, K))."""
    t = read.training(ds, point)
    h0_layer, h_layer = last_layers(t)
    H, labels = read.features(ds, point, epoch, h_layer)
    H0, _ = read.features(ds, point, epoch, h0_layer)
    K = int(read.classifier(ds, point, epoch)[0].shape[0])
    row = {"point": dict(point), "lambda_W": t.weight_decay, "lambda_H": t.feature_decay}
    row |= {"nc1_network": nc1(H.T, labels, K), "nc1_H0": nc1(H0.T, labels, K)}
    row |= read.status(ds, point, epoch)
    if not row["terminal_phase"]:
        row["note"] = NOT_TERMINAL
    return row, (np.ascontiguousarray(H0.T), labels, K)


def reference_run(rows: list[dict]) -> int:
    """The run beta is fitted at: among runs in the terminal phase (if none, among all) with
    a network NC1 and both decays > 0, the one nearest the grid's middle in (log
    weight_decay, log feature_decay); ties go to the earlier run."""
    usable = [
        i for i, r in enumerate(rows) if r["nc1_network"] and min(r["lambda_W"], r["lambda_H"]) > 0
    ]
    pool = [i for i in usable if rows[i]["terminal_phase"]] or usable
    if not pool:
        raise InputError("tirer: no run has both decays > 0 and a defined NC1 to fit beta at")
    logs = np.log([[rows[i]["lambda_W"], rows[i]["lambda_H"]] for i in usable])
    middle = (logs.min(axis=0) + logs.max(axis=0)) / 2
    distance = np.sum((logs[[usable.index(i) for i in pool]] - middle) ** 2, axis=1)
    return pool[int(np.argmin(distance))]


def _model_side(row: dict, arrays: tuple, beta: float | None) -> None:
    """Add the model's NC1 (solved; None unless converged) and its shrink estimate to `row`."""
    if beta is None or min(row["lambda_W"], row["lambda_H"]) <= 0:
        row |= {"nc1_model": None, "model_converged": False, "nc1_shrink": None}
        row["model_note"] = "no beta, or a decay of 0 (the model needs lambda_W, lambda_H > 0)"
        return
    args = (*arrays, row["lambda_W"], row["lambda_H"], beta)
    solved, shrink = model_nc1(*args), shrink_nc1(*args)
    row |= {"nc1_model": solved["nc1"], "model_converged": solved["converged"]}
    row |= {"model_steps": solved["steps"], "nc1_shrink": shrink.pop("nc1")} | shrink
    if not solved["converged"]:
        row["model_note"] = f"the model's solve did not converge ({solved['status']}): no NC1"


def fixed_h0_sweep(rows: list[dict], arrays: tuple, reference: dict, beta: float) -> dict:
    """The model alone at the reference run's H0 and beta: NC1 as each decay runs over the
    grid's values with the other at the reference value; d log NC1 / d log(decay)."""
    sweeps, names = {}, {"weight_decay": "lambda_W", "feature_decay": "lambda_H"}
    for name, own in names.items():
        values = sorted({r[own] for r in rows if r[own] > 0})
        decays = [{k: reference[k] for k in names.values()} | {own: v} for v in values]
        found = [model_nc1(*arrays, beta=beta, **d)["nc1"] for d in decays]
        ok = [i for i, v in enumerate(found) if v is not None]
        fit = log_slopes(
            *([decays[i][k] for i in ok] for k in names.values()), [found[i] for i in ok]
        )
        sweeps[name] = {"values": values, "nc1_model": found, "slope": fit and fit[name]}
    slopes = {name: sweep["slope"] for name, sweep in sweeps.items()}
    return {"sweeps": sweeps, "slopes": slopes, "stronger": stronger(slopes)}


def compare(ds: xr.Dataset) -> dict[str, Any]:
    """Per run (``runs``): NC1 of the network's last-layer features (``nc1_network``) and of H0,
    the model's NC1 at the fitted beta (``nc1_model``, converged solves only) and its shrink
    estimate, with the run's errors, epoch and terminal phase. ``summary``, over the runs in
    the terminal phase: the fitted beta and how, the rank correlation, the log-log slopes in
    both decays (network, model, model at a fixed H0), which decay moves NC1 more, a verdict."""
    began = time.perf_counter()
    epoch = int(np.max(ds["epoch"].values))
    rows, arrays = map(
        list, zip(*(_network_run(ds, p, epoch) for p in read.points(ds)), strict=True)
    )
    ref = reference_run(rows)
    target = {"lambda_W": rows[ref]["lambda_W"], "lambda_H": rows[ref]["lambda_H"]}
    fit = fit_beta(*arrays[ref], **target, target=rows[ref]["nc1_network"])
    fit["reference"] = rows[ref]["point"]
    fit["beta_paper"] = fit["beta"] and fit["beta"] * arrays[ref][1].size  # beta^T = N beta
    for row, a in zip(rows, arrays, strict=True):
        _model_side(row, a, fit["beta"])
    fixed = fit["beta"] and fixed_h0_sweep(rows, arrays[ref], rows[ref], fit["beta"])
    summary = _summary(rows, fit, fixed or None) | {"seconds": time.perf_counter() - began}
    return _output.jsonable({"runs": rows, "summary": summary})


def _summary(rows: list[dict], fit: dict, fixed: dict | None) -> dict:
    good = [r for r in rows if r["terminal_phase"] and r["nc1_network"] and r["nc1_model"]]
    column = lambda key, runs=good: [r[key] for r in runs]  # noqa: E731
    decays = (column("lambda_W"), column("lambda_H"))
    network, model = (log_slopes(*decays, column(k)) for k in ("nc1_network", "nc1_model"))
    shrinks = [r for r in good if r["nc1_shrink"]]
    shrink = log_slopes(*(column(k, shrinks) for k in ("lambda_W", "lambda_H", "nc1_shrink")))
    log_error = np.abs(np.log(np.divide(column("nc1_model"), column("nc1_network"))))
    below = [r["nc1_network"] < r["nc1_H0"] for r in rows if r["nc1_network"] and r["nc1_H0"]]
    slopes = {"network": network, "model": model, "shrink": shrink}
    slopes["model_fixed_H0"] = fixed and fixed["slopes"]
    out = {
        "beta": fit,
        "runs": len(rows),
        "terminal_runs": sum(r["terminal_phase"] for r in rows),
        "compared_runs": len(good),
        "spearman": spearman(column("nc1_network"), column("nc1_model")),
        "spearman_shrink": spearman(column("nc1_network", shrinks), column("nc1_shrink", shrinks)),
        "median_abs_log_ratio": float(np.median(log_error)) if good else None,
        "max_abs_log_ratio": float(np.max(log_error)) if good else None,
        "network_nc1_below_H0": f"{sum(below)}/{len(below)}",
        "slopes": slopes,
        "stronger": {who: stronger(s) for who, s in slopes.items()},
        "model_fixed_H0": fixed,
    }
    return out | {"verdict": verdict(out)}


def verdict(summary: dict) -> str:
    """The summary in numbers: where the network and the model agree and where not."""
    n, total = summary["compared_runs"], summary["runs"]
    if n < 3:
        return (
            f"{n} of {total} runs in the terminal phase with a converged model: no agreement called"
        )
    fmt = lambda x: "n/a" if x is None else f"{x:+.3g}"  # noqa: E731
    parts = [
        f"{n}/{total} runs compared (terminal phase, converged model); beta = "
        f"{summary['beta']['beta']:.3g} fitted at {summary['beta']['reference']}",
        f"Spearman network vs model {fmt(summary['spearman'])}, median |log(model/network)| "
        f"{summary['median_abs_log_ratio']:.3g}",
    ]
    for who in ("network", "model", "model_fixed_H0"):
        if slopes := summary["slopes"][who]:
            se = {k: (slopes.get("stderr") or {}).get(k) for k in ("feature_decay", "weight_decay")}
            pm = {k: "" if v is None else f" +- {v:.2g}" for k, v in se.items()}
            parts.append(
                f"{who}: d log NC1/d log lambda_H {fmt(slopes['feature_decay'])}"
                f"{pm['feature_decay']}, d log NC1/d log lambda_W {fmt(slopes['weight_decay'])}"
                f"{pm['weight_decay']} (larger: {summary['stronger'][who]})"
            )
    same = summary["stronger"]["network"] == summary["stronger"]["model"]
    return "; ".join(parts + [f"the decay that moves NC1 more {'agrees' if same else 'differs'}"])


# ----------------------------------------------------------------------------------------
# The figure.

FIGURE_RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.frameon": False,
    "lines.markersize": 4,
}


def plot(ds: xr.Dataset | None, comparison: dict, path) -> Path:
    """Write `draw`'s figure to `path` (PNG). `ds` is not read (the comparison holds every
    number drawn) and may be None."""
    return write_figure(draw(comparison), path)


def draw(comparison: dict):
    """One column, two panels: NC1 against feature decay (a; one colour per weight decay) and
    against weight decay (b; one colour per feature decay), the network (filled, solid) and
    the model at the fitted beta (hollow, dashed); a cross marks a run not in the terminal
    phase. Returns the open figure."""
    import matplotlib.pyplot as plt

    with plt.rc_context(FIGURE_RC):
        fig, axes = plt.subplots(1, 2, figsize=(3.4, 2.5), layout="constrained", sharey=True)
        panels = (("lambda_H", "lambda_W", "weight decay"), ("lambda_W", "lambda_H", "feat. decay"))
        for ax, letter, panel in zip(axes, "ab", panels, strict=True):
            _decay_panel(ax, comparison["runs"], *panel)
            ax.set_title(f"({letter})", loc="left")
        axes[0].set_ylabel("NC1 = Tr $\\Sigma_W$ / Tr $\\Sigma_B$")
        axes[1].set_ylabel("NC1")
        summary = comparison["summary"]
        rho, beta = summary.get("spearman"), summary["beta"].get("beta")
        fig.suptitle(
            "network (solid) vs model (dashed)"
            + (f", $\\beta$={beta:.2g}" if beta else "")
            + (f", Spearman {rho:.2f}" if rho is not None else ""),
            fontsize=7,
        )
    return fig


def _decay_panel(ax, runs: list[dict], x: str, other: str, title: str) -> None:
    import matplotlib as mpl

    levels = sorted({r[other] for r in runs})
    colors = mpl.colormaps["viridis"](np.linspace(0, 0.85, len(levels)))
    for color, level in zip(colors, levels, strict=True):
        for seed in sorted({r["point"].get("seed", 0) for r in runs}):
            chosen = [r for r in runs if r[other] == level and r["point"].get("seed", 0) == seed]
            chosen.sort(key=lambda r: r[x])
            xs = [r[x] for r in chosen]
            net = [r["nc1_network"] or np.nan for r in chosen]
            ax.plot(xs, net, "o-", color=color, label=f"{level:g}" if seed == 0 else None)
            model = [r["nc1_model"] or np.nan for r in chosen]
            ax.plot(xs, model, "o--", color=color, mfc="white")
            off = [i for i, r in enumerate(chosen) if not r["terminal_phase"]]
            ax.plot([xs[i] for i in off], [net[i] for i in off], "x", color="k", ms=6)
    label = "feature decay $\\lambda_H$" if x == "lambda_H" else "weight decay $\\lambda_W$"
    ax.set(xscale="log", yscale="log", xlabel=label)
    ax.legend(title=title, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.3))
