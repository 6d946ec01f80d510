"""Fisher, Meng & Papyan 2024 (arXiv 2402.06171): the last-layer geometry of mixed inputs in
a network trained with mixup, against ufm's mixup UFM (`ufm.models.mixup`).

Digits MLPs trained with CE, weight decay and feature decay (the UFM's lambda_H, on the last
layer: depth 0), with mixup (alpha 1) and without (the control), are evaluated on mixed
training inputs lam x_i + (1 - lam) x_j of same-class and different-class pairs: (1) does a
same-class mix's feature and margin z_c - mean_o z_o depend on lam (model: no, margin g*)?
(2) which energy fraction of a different-class mix's h - mu_G lies in span{w_c1, w_c2}
(model: 1)? (3) its logit gap z_c1 - z_c2 against log(lam/(1-lam)) and the model's
(`theory.mixed_gaps`) at kappa = r^2 K / ((K-1) lambda_bar), r the RMS centred row norm of W,
lambda_bar = N feature_decay: the network's penalty N feature_decay/2 mean_i ||h_i||^2 over an
epoch's N mixed samples is the UFM's lambda_H/2 ||H_mix||^2 with N_mix = N (exact), but its
features are not free, so kappa is also fitted once, and the shape compared up to a scale.
"""

from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
import scipy.optimize

from .. import _output, metrics
from ..models.mixup import theory
from . import read
from .data import dataset
from .experiments import Setup, write_figure
from .training import Training

NAME = "fisher"
SUMMARY = (
    "Fisher, Meng & Papyan 2024: last-layer features of mixed inputs in a mixup-trained MLP "
    "(same-class collapse, span of the two classifier rows, logit gap against lam) against "
    "the mixup UFM, with networks trained without mixup as the control"
)
LAMS = tuple(round(0.05 * k, 10) for k in range(1, 20))  # 0.05 .. 0.95, 0.5 included
PAIRS = 300  # same-class and different-class pairs each
PAIR_SEED = 0
KAPPA_BRACKET = (1e-2, 1e6)  # where the fitted kappa is looked for (log scale)
SPREAD_TOL = 0.1  # same-class spreads, relative: "independent of lam" if at most this
SPAN_TOL = 0.9  # energy fraction in span{w_c1, w_c2}: "in the span" if at least this
BOUNDARY_TOL = 0.1  # mean |gap| at lam = 1/2 over the mean |gap| at the grid's ends
GAP_TOL = 0.2  # relative RMS distance of gaps and margins from the model's


def setup(quick: bool = False) -> Setup:
    """Full: all of digits (N = 1438), widths (256, 256), 400 epochs of minibatches of 128,
    weight decay 5e-4, feature decay {1e-5, 3e-5} x mixup alpha {0, 1} x seeds {0, 1}. Quick:
    30 samples per class, widths (64, 64), 150 epochs of batches of 50, feature decay 1e-5."""
    grid = {"mixup_alpha": [0.0, 1.0]}
    if quick:
        data = dataset("digits", train_per_class=30)
        training = Training(widths=(64, 64), epochs=150, batch_size=50, feature_decay=1e-5)
        return Setup(data, training, grid, (0,), (150,))
    training = Training(widths=(256, 256), epochs=400, batch_size=128)
    grid |= {"feature_decay": [1e-5, 3e-5]}
    return Setup(dataset("digits"), training, grid, (0, 1), (400,))


# ----------------------------------------------------------------------------------------
# The pairs and the network on mixed inputs


def draw_pairs(y: np.ndarray, K: int, count: int, same: bool, seed: int = PAIR_SEED):
    """`count` pairs (i, j) of training rows, i != j: same class (ceil(count/K) from each
    class, cut to count) or different classes (uniform over such pairs)."""
    rng = np.random.default_rng(seed + (0 if same else 1))
    if same:
        per, i, j = -(-count // K), [], []
        for c in range(K):
            rows = np.flatnonzero(y == c)
            a = rng.integers(0, rows.size, per)
            i.append(rows[a])
            j.append(rows[(a + rng.integers(1, rows.size, per)) % rows.size])  # != rows[a]
        return np.concatenate(i)[:count], np.concatenate(j)[:count]
    i, j = np.empty(0, dtype=int), np.empty(0, dtype=int)
    while i.size < count:
        a, b = rng.integers(0, y.size, (2, 2 * count))
        i, j = np.concatenate([i, a[y[a] != y[b]]]), np.concatenate([j, b[y[a] != y[b]]])
    return i[:count], j[:count]


def mixed_outputs(net, x: np.ndarray, i, j, lams=LAMS) -> tuple[np.ndarray, np.ndarray]:
    """Last-layer features (L, P, d) and logits (L, P, K) of lam x_i + (1 - lam) x_j for each
    lam and pair, by `net.features(inputs, reference=x)` (batch norm: training statistics)."""
    lam = np.asarray(lams, dtype=float)[:, None, None]
    mixed = lam * x[i][None] + (1 - lam) * x[j][None]  # (L, P, p)
    L, P = mixed.shape[:2]
    feats, logits = net.features(jnp.asarray(mixed.reshape(L * P, -1)), reference=jnp.asarray(x))
    return np.asarray(feats[-1]).reshape(L, P, -1), np.asarray(logits).reshape(L, P, -1)


# ----------------------------------------------------------------------------------------
# The measurements (numpy arrays in, numbers out: tests feed known geometries)


def centred_row_norm(W: np.ndarray) -> float:
    """r = sqrt(mean_c ||w_c - mean_k w_k||^2): the row norm of the simplex ETF with the same
    centred energy (a row common to all classes adds the same logit to each: gaps ignore it)."""
    return float(np.sqrt(np.mean(np.sum((W - W.mean(axis=0)) ** 2, axis=1))))


def clean_geometry(H: np.ndarray, y: np.ndarray, K: int) -> dict[str, Any]:
    """Of clean features H (N, d): mu_G (d,), class means (K, d) (`ufm.metrics`), `scale` =
    RMS distance of the class means from mu_G, `within` = RMS ||h_i - mu_(y_i)|| / scale."""
    Ht, yj = jnp.asarray(H.T), jnp.asarray(y)
    means = np.asarray(metrics.class_means(Ht, yj, K)[0]).T
    mu = np.asarray(metrics.global_mean(Ht, yj, K))
    scale = float(np.sqrt(np.mean(np.sum((means - mu) ** 2, axis=1))))
    within = float(np.sqrt(np.mean(np.sum((H - means[y]) ** 2, axis=1))) / scale)
    return {"mu": mu, "means": means, "scale": scale, "within": within}


def same_class(H: np.ndarray, Z: np.ndarray, c: np.ndarray, clean: dict) -> dict[str, Any]:
    """Features H (L, P, d), logits Z (L, P, K) of same-class mixes of classes c (P,);
    `clean` from `clean_geometry`. Distances are over the between-class spread clean["scale"].

    feature_spread: RMS over pairs and lam of ||h(lam) - mean_lam h|| (0: independent of lam);
    class_distance (RMS) and class_distance_per_lam (mean over pairs): ||h(lam) - mu_c||;
    margin m = z_c - mean_{o != c} z_o: per lam mean and 10th/90th percentiles over pairs,
    overall mean, and margin_spread = mean over pairs of std_lam(m) / |mean_lam(m)|."""
    L, P, K = Z.shape
    scale = clean["scale"]
    spread = np.linalg.norm(H - H.mean(axis=0, keepdims=True), axis=2) / scale  # (L, P)
    distance = np.linalg.norm(H - clean["means"][c], axis=2) / scale
    z_c = Z[:, np.arange(P), c]
    margin = z_c - (Z.sum(axis=2) - z_c) / (K - 1)  # (L, P)
    level = np.maximum(np.abs(margin.mean(axis=0)), 1e-300)
    return {
        "feature_spread": float(np.sqrt(np.mean(spread**2))),
        "class_distance": float(np.sqrt(np.mean(distance**2))),
        "class_distance_per_lam": distance.mean(axis=1).tolist(),
        "clean_within_class": clean["within"],
        "margin_per_lam": margin.mean(axis=1).tolist(),
        "margin_q10": np.quantile(margin, 0.1, axis=1).tolist(),
        "margin_q90": np.quantile(margin, 0.9, axis=1).tolist(),
        "margin_mean": float(margin.mean()),
        "margin_spread": float(np.mean(margin.std(axis=0) / level)),
    }


def pair_bases(W: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """Orthonormal bases (P, d, 2) of span{w_c1, w_c2} per pair."""
    return np.linalg.qr(np.stack([W[c1], W[c2]], axis=2))[0]


def span_fraction(U: np.ndarray, bases: np.ndarray) -> np.ndarray:
    """Per lam, sum over pairs of ||P_p u||^2 over sum of ||u||^2 for vectors U (L, P, d) and
    orthonormal bases (P, d, k) (or one (d, k) for every pair): the energy fraction (L,)."""
    inside = np.einsum("lpd,pdk->lpk", U, np.broadcast_to(bases, (U.shape[1], *bases.shape[-2:])))
    return np.sum(inside**2, axis=(1, 2)) / np.sum(U**2, axis=(1, 2))


def other_classes(c1, c2, K: int, seed: int = PAIR_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, two random distinct classes outside {c1, c2} (K >= 4)."""
    scores = np.random.default_rng(seed + 2).random((len(c1), K))
    scores[np.arange(len(c1)), c1] = scores[np.arange(len(c1)), c2] = np.inf
    order = np.argsort(scores, axis=1)
    return order[:, 0], order[:, 1]


def logit_gaps(Z: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """z_c1 - z_c2 (L, P) of logits Z (L, P, K)."""
    return Z[:, np.arange(Z.shape[1]), c1] - Z[:, np.arange(Z.shape[1]), c2]


def log_odds(lams=LAMS) -> np.ndarray:
    return np.log(np.asarray(lams, dtype=float) / (1 - np.asarray(lams, dtype=float)))


def gap_fit(gaps: np.ndarray, lams=LAMS) -> dict[str, float]:
    """Least squares gap = slope log(lam/(1-lam)) + intercept over every pair (gaps (L, P)),
    its R^2, and the R^2 of a straight line in lam, r2_linear_in_lam (the shape test)."""
    L, P = gaps.shape
    g = gaps.ravel()
    total = np.sum((g - g.mean()) ** 2)
    fits = []
    for x in (log_odds(lams), 2 * np.asarray(lams) - 1):
        A = np.stack([np.repeat(x, P), np.ones(L * P)], axis=1)
        coef = np.linalg.lstsq(A, g, rcond=None)[0]
        r2 = 1 - np.sum((A @ coef - g) ** 2) / total if total > 0 else 1.0
        fits.append((float(coef[0]), float(coef[1]), float(r2)))
    (slope, intercept, r2), linear = fits
    return {"slope": slope, "intercept": intercept, "r2": r2, "r2_linear_in_lam": linear[2]}


def different_class(H, Z, c1, c2, W: np.ndarray, mu: np.ndarray, lams) -> dict[str, Any]:
    """Features H (L, P, d), logits Z (L, P, K) of different-class mixes (classes c1, c2 per
    pair) at coefficients `lams`; classifier W (K, d); mu = mu_G (d,).

    span_per_lam / span (mean over lam): energy fraction of h - mu_G in span{w_c1, w_c2};
    span_other(_per_lam): in the span of two other classes' rows (K >= 4, else None);
    span_rows: in the span of all K rows; span_random: 2/d; gap_per_lam, gap_q10, gap_q90:
    z_c1 - z_c2 per lam (mean and 10th/90th percentiles over pairs); gap_fit (`gap_fit`);
    shape: `curve_shape` of the mean gap;
    boundary: mean over pairs of |gap| at the lam nearest 1/2 / mean |gap| at the grid's ends."""
    K, U = Z.shape[2], H - mu
    per_lam = span_fraction(U, pair_bases(W, c1, c2))
    other = span_fraction(U, pair_bases(W, *other_classes(c1, c2, K))) if K >= 4 else None
    gaps = logit_gaps(Z, c1, c2)
    mean = gaps.mean(axis=1)
    middle = int(np.argmin(np.abs(np.asarray(lams) - 0.5)))
    ends = 0.5 * (np.mean(np.abs(gaps[0])) + np.mean(np.abs(gaps[-1])))
    return {
        "span_per_lam": per_lam.tolist(),
        "span": float(per_lam.mean()),
        "span_other_per_lam": None if other is None else other.tolist(),
        "span_other": None if other is None else float(other.mean()),
        "span_rows": float(span_fraction(U, np.linalg.qr(W.T)[0]).mean()),
        "span_random": 2 / H.shape[2],
        "gap_per_lam": mean.tolist(),
        "gap_q10": np.quantile(gaps, 0.1, axis=1).tolist(),
        "gap_q90": np.quantile(gaps, 0.9, axis=1).tolist(),
        "gap_fit": gap_fit(gaps, lams),
        "shape": curve_shape(mean, lams),
        "boundary": float(np.mean(np.abs(gaps[middle])) / ends) if ends > 0 else None,
    }


# ----------------------------------------------------------------------------------------
# The model's side


def model_gaps(K: int, kappa: float, lams=LAMS) -> np.ndarray:
    """The mixup UFM's z_c1 - z_c2 of a different-class column at each lam, fixed simplex ETF:
    u - v of `theory.mixed_gaps`, all lams in one call of `theory.ce_logits`."""
    lam = np.asarray(lams, dtype=float)
    targets = np.zeros((K, lam.size))
    targets[0], targets[1] = lam, 1 - lam
    Z = theory.ce_logits(targets, kappa)
    return Z[0] - Z[1]


def fit_kappa(mean_gaps: np.ndarray, K: int, lams=LAMS) -> tuple[float, float]:
    """(kappa, RMS residual): the kappa whose model gaps are closest (least squares) to the
    mean network gap per lam; a log grid over KAPPA_BRACKET, then bounded Brent."""
    residual = lambda t: float(np.mean((model_gaps(K, np.exp(t), lams) - mean_gaps) ** 2))
    grid = np.linspace(*np.log(KAPPA_BRACKET), 25)
    best, step = grid[int(np.argmin([residual(t) for t in grid]))], grid[1] - grid[0]
    bounds = (max(grid[0], best - step), min(grid[-1], best + step))
    result = scipy.optimize.minimize_scalar(residual, bounds=bounds, method="bounded")
    return float(np.exp(result.x)), float(np.sqrt(result.fun))


def curve_shape(mean_gaps: np.ndarray, lams=LAMS) -> float:
    """Slope of a gap curve across lam = 1/2 (the grid points either side) over its mean slope
    end to end: 1 for a straight line, 0.61 for the log-odds on `LAMS` (a channel: flat in
    the middle), > 1 for a sigmoid (the decision flips at 1/2)."""
    lam, g = np.asarray(lams), np.asarray(mean_gaps)
    lo, hi = int(np.flatnonzero(lam < 0.5)[-1]), int(np.flatnonzero(lam > 0.5)[0])
    return float((g[hi] - g[lo]) / (lam[hi] - lam[lo]) / ((g[-1] - g[0]) / (lam[-1] - lam[0])))


def relative_rms(network: np.ndarray, model: np.ndarray) -> float:
    """RMS(network - model) / RMS(model), model (L,) broadcast over network's pairs (L, P)."""
    diff = network - model.reshape(model.shape + (1,) * (network.ndim - model.ndim))
    return float(np.sqrt(np.mean(diff**2)) / np.sqrt(np.mean(model**2)))


def model_side(W: np.ndarray, lambda_bar: float, gaps, margin: float, lams) -> dict[str, Any]:
    """The mixup UFM under a simplex ETF of the network's centred row norm r, with kappa
    "mapped" from (r, lambda_bar) and "fitted" to the mean gap; for each, the gap curve, its
    slope against the log-odds and `curve_shape`, the RMS distance of the network's gaps from
    it over the model's RMS gap, over every pair (gap_error) and of the mean over pairs
    (mean_gap_error), and the least-squares `scale` s of the mean gap onto the curve with
    scaled_error = RMS(mean gap - s curve) / RMS(mean gap). W_etf_error: `ufm.metrics.
    nc2_etf_error` of W W^T; margin_error: (network's same-class margin - g*) / g*."""
    K, mean = W.shape[0], gaps.mean(axis=1)
    r = centred_row_norm(W)
    out: dict[str, Any] = {
        "r": r,
        "r_raw": float(np.mean(np.linalg.norm(W, axis=1))),
        "lambda_bar": lambda_bar,
        "W_etf_error": float(metrics.nc2_etf_error(jnp.asarray(W @ W.T))),
        "log_odds_per_lam": log_odds(lams).tolist(),
        "same_class_margin": None,
        "margin_error": None,
    }
    kappas = {"mapped": theory.kappa(K, r, lambda_bar) if lambda_bar > 0 else None}
    kappas["fitted"] = fit_kappa(mean, K, lams)[0]
    if kappas["mapped"] is not None:
        g_star = theory.same_class_gap(K, kappas["mapped"])
        out["same_class_margin"], out["margin_error"] = g_star, (margin - g_star) / g_star
    for name, k in kappas.items():
        curve = None if k is None else model_gaps(K, k, lams)
        scale = None if k is None else float(mean @ curve / (curve @ curve))
        out[name] = curve if k is None else {
            "kappa": k,
            "gap_per_lam": curve.tolist(),
            "slope": gap_fit(curve[:, None], lams)["slope"],
            "shape": curve_shape(curve, lams),
            "gap_error": relative_rms(gaps, curve),
            "mean_gap_error": relative_rms(mean, curve),
            "scale": scale,
            "scaled_error": relative_rms(scale * curve, mean),
        }  # fmt: skip
    return out


def measure(net, data, feature_decay: float, pairs: int = PAIRS, lams=LAMS) -> dict[str, Any]:
    """Every number of one trained network (`net.features`, `net.classifier.weight`) on mixed
    training inputs of `data` (x_train, y_train, K), and the model's (`model_side`)."""
    x, y, K = data.x_train, data.y_train, data.K
    feats, _ = net.features(jnp.asarray(x), reference=jnp.asarray(x))
    W = np.asarray(net.classifier.weight)
    clean = clean_geometry(np.asarray(feats[-1]), y, K)
    i, j = draw_pairs(y, K, pairs, same=True)
    same = same_class(*mixed_outputs(net, x, i, j, lams), y[i], clean)
    i, j = draw_pairs(y, K, pairs, same=False)
    H, Z = mixed_outputs(net, x, i, j, lams)
    different = different_class(H, Z, y[i], y[j], W, clean["mu"], lams)
    gaps = logit_gaps(Z, y[i], y[j])
    model = model_side(W, x.shape[0] * feature_decay, gaps, same["margin_mean"], lams)
    return {"same_class": same, "different_class": different, "model": model}


# ----------------------------------------------------------------------------------------
# The experiment


def compare(ds) -> dict[str, Any]:
    """Per run (grid point and seed, at the last recorded epoch): its errors and terminal
    phase (`read.status`) and `measure`'s numbers; then `summary`."""
    data = read.data(ds)
    epoch = int(np.max(ds["epoch"].values))
    runs = []
    for point in read.points(ds):
        t = read.training(ds, point)
        status = read.status(ds, point, epoch)
        run = {"point": point, "mixup_alpha": t.mixup_alpha, "feature_decay": t.feature_decay}
        run |= status | measure(read.trained_network(ds, point, data), data, t.feature_decay)
        if not status["terminal_phase"]:
            run["note"] = (
                f"not in the terminal phase: training error {status['train_error']:.4g} at "
                f"epoch {epoch}; no agreement is called for this run"
            )
        runs.append(run)
    return _output.jsonable(dict(lams=list(LAMS), pairs=PAIRS, runs=runs, summary=summary(runs)))


MODEL_KEYS = ("kappa", "slope", "shape", "gap_error", "mean_gap_error", "scale", "scaled_error")
NUMBERS = {  # summary name: where it is in a run
    "train_error": ("train_error",),
    "test_error": ("test_error",),
    **{
        f"same_{k}": ("same_class", k)
        for k in ("feature_spread", "class_distance", "clean_within_class", "margin_spread")
    },
    "same_margin": ("same_class", "margin_mean"),
    "model_same_margin": ("model", "same_class_margin"),
    "margin_error": ("model", "margin_error"),
    **{k: ("different_class", k) for k in ("span", "span_other", "span_rows", "span_random")},
    "boundary": ("different_class", "boundary"),
    **{k: ("different_class", "gap_fit", k) for k in ("slope", "r2", "r2_linear_in_lam")},
    "shape": ("different_class", "shape"),
    "W_etf_error": ("model", "W_etf_error"),
    **{f"{k}_{name}": ("model", name, k) for name in ("mapped", "fitted") for k in MODEL_KEYS},
}
CHECKS = (  # (claim, number, the model's value, "<=" or ">=", tolerance)
    ("same-class feature independent of lam", "same_feature_spread", 0.0, "<=", SPREAD_TOL),
    ("same-class margin independent of lam", "same_margin_spread", 0.0, "<=", SPREAD_TOL),
    ("same-class margin = the model's g*", "margin_error", 0.0, "<=", GAP_TOL),
    ("different-class feature in span{w_c1, w_c2}", "span", 1.0, ">=", SPAN_TOL),
    ("different-class mix at lam = 1/2 on the boundary", "boundary", 0.0, "<=", BOUNDARY_TOL),
    ("mean logit gap = model, kappa mapped", "mean_gap_error_mapped", 0.0, "<=", GAP_TOL),
    ("mean logit gap = model, kappa fitted once", "mean_gap_error_fitted", 0.0, "<=", GAP_TOL),
    ("mean logit gap = s x model, kappa mapped", "scaled_error_mapped", 0.0, "<=", GAP_TOL),
)


def _number(run: dict[str, Any], path: tuple[str, ...]):  # None where a step is missing
    for key in path:
        run = None if run is None else run.get(key)
    return run


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per feature decay, the mean `NUMBERS` of the mixup runs and of the control runs, and
    each of `CHECKS` judged on the mixup runs' means (None unless all of them reached the
    terminal phase), with the control's number and whether mixup is the closer to the model."""
    out: dict[str, Any] = {"groups": {}, "text": []}
    for decay in sorted({r["feature_decay"] for r in runs}):
        means, terminal = {}, {}
        for kind in ("mixup", "control"):
            rs = [r for r in runs if r["feature_decay"] == decay and _kind(r) == kind]
            values = {k: [_number(r, p) for r in rs] for k, p in NUMBERS.items()}
            means[kind] = {k: None if not v or None in v else float(np.mean(v))
                           for k, v in values.items()}  # fmt: skip
            terminal[kind] = bool(rs) and all(r["terminal_phase"] for r in rs)
        checks = [_check(c, means, terminal["mixup"]) for c in CHECKS]
        out["groups"][f"feature_decay={decay:g}"] = {
            "means": means, "terminal_phase": terminal, "checks": checks
        }  # fmt: skip
        out["text"] += [f"feature_decay {decay:g}:"] + [c["text"] for c in checks]
        if not all(terminal.values()):
            out["text"].append("  some runs did not reach zero training error: see their notes")
    return out


def _check(check: tuple, means: dict, terminal: bool) -> dict[str, Any]:
    claim, key, model, op, tol = check
    value, control = means["mixup"][key], means["control"][key]
    holds = closer = None
    if value is not None and terminal:
        holds = bool(abs(value) <= tol if op == "<=" else value >= tol)
    if value is not None and control is not None:
        closer = bool(abs(abs(value) - model) < abs(abs(control) - model))
    word = {True: "holds", False: "does not hold", None: "not judged"}[holds]
    fmt = lambda v: "n/a" if v is None else f"{v:.3g}"
    text = f"  {claim}: mixup {fmt(value)}, control {fmt(control)}, model {model:g} "
    text += f"(holds if {op} {tol:g}): {word}"
    text += "" if closer is None else f"; mixup {'closer' if closer else 'not closer'} to model"
    keys = ("claim", "number", "mixup", "control", "model", "holds", "mixup_closer", "text")
    return dict(zip(keys, (claim, key, value, control, model, holds, closer, text), strict=True))


def _kind(run: dict[str, Any]) -> str:
    return "mixup" if run["mixup_alpha"] > 0 else "control"


# ----------------------------------------------------------------------------------------
# The figure

COLORS = {"mixup": "tab:blue", "control": "tab:orange"}


def plot(ds, comparison: dict[str, Any], path) -> Path:
    """Write `draw`'s figure to `path`."""
    return write_figure(draw(comparison), path)


def draw(comparison: dict[str, Any]):
    """2 x 2 panels at the largest feature decay (figures/fisher.py says what they show):
    mixup runs blue, control runs orange, the model (first mixup run's kappa) black; lines the
    mean over runs, bands the 10th-90th percentiles over the first run's pairs; one legend."""
    import matplotlib.pyplot as plt

    lams = np.asarray(comparison["lams"])
    decay = max(r["feature_decay"] for r in comparison["runs"])
    runs = [r for r in comparison["runs"] if r["feature_decay"] == decay]
    fig, axes = plt.subplots(2, 2, figsize=(7.0, 4.4), layout="constrained")
    (a, b), (c, d) = axes
    for kind in ("mixup", "control"):
        rs = [r for r in runs if _kind(r) == kind]
        if not rs:
            continue
        color, first = COLORS[kind], rs[0]
        mean = lambda part, key, rs=rs: np.mean([r[part][key] for r in rs], axis=0)
        label = f"{kind}, alpha {first['mixup_alpha']:g} ({len(rs)} run{'s' * (len(rs) > 1)})"
        a.plot(lams, mean("different_class", "gap_per_lam"), color=color, label=label)
        dc, sc = first["different_class"], first["same_class"]
        a.fill_between(lams, dc["gap_q10"], dc["gap_q90"], color=color, alpha=0.2, lw=0)
        b.plot(lams, mean("different_class", "span_per_lam"), color=color, label=kind)
        if dc["span_other_per_lam"] is not None:
            b.plot(lams, mean("different_class", "span_other_per_lam"), "--", color=color)
        c.plot(lams, mean("same_class", "margin_per_lam"), color=color)
        c.fill_between(lams, sc["margin_q10"], sc["margin_q90"], color=color, alpha=0.2, lw=0)
        d.plot(lams, mean("same_class", "class_distance_per_lam"), color=color)
        d.axhline(sc["clean_within_class"], color=color, ls=":")
    _model_lines(axes, [r for r in runs if _kind(r) == "mixup"][:1], lams)
    a.set(xlabel="lam", ylabel="z_c1 - z_c2", title="(a) different classes: logit gap")
    b.set(xlabel="lam", ylabel="energy fraction", ylim=(0, 1.05))
    b.set_title("(b) different classes: h - mu_G in span{w_c1, w_c2}")
    c.set(xlabel="lam", ylabel="z_c - mean z_o", title="(c) same class: margin")
    d.set(xlabel="lam", ylabel="|h - mu_c| / between-class", title="(d) same class: feature")
    d.set_ylim(bottom=0)
    fig.suptitle(f"digits MLP, feature decay {decay:g}")
    _legend(fig, axes)
    return fig


def _model_lines(axes, mixup_runs: list, lams: np.ndarray) -> None:
    (a, b), (c, d) = axes
    b.axhline(1.0, color="k", lw=0.9, label="model")
    d.axhline(0.0, color="k", lw=0.9)
    for run in mixup_runs:
        m = run["model"]
        a.plot(lams, m["log_odds_per_lam"], ":", color="0.5", label="log-odds")
        for name, style in (("mapped", "-"), ("fitted", "--")):
            if m[name] is not None:
                label = f"model, kappa {name} {m[name]['kappa']:.3g}"
                a.plot(lams, m[name]["gap_per_lam"], style, color="k", lw=0.9, label=label)
        if (mapped := m["mapped"]) is not None:
            scaled = mapped["scale"] * np.asarray(mapped["gap_per_lam"])
            a.plot(lams, scaled, "-.", color="k", lw=0.9, label=f"{mapped['scale']:.2f} x mapped")
        if m["same_class_margin"] is not None:
            c.axhline(m["same_class_margin"], color="k", lw=0.9, label="model g*")
        b.axhline(run["different_class"]["span_random"], color="0.5", ls=":", label="random 2-dim")


def _legend(fig, axes) -> None:
    """One legend below the panels, clear of the data; entries of (b) and (c) say so."""
    handles, labels = [], []
    for ax, panel in zip(axes.flat[:3], "abc", strict=True):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if panel == "a" or label not in ("mixup", "control"):  # (a) names those already
                handles.append(handle)
                labels.append(label if panel == "a" else f"{label} ({panel})")
    fig.legend(handles, labels, loc="outside lower center", ncol=3)
