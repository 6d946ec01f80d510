"""Dang et al. 2023 (arXiv 2301.00437): linear layers appended to a backbone, per layer,
against the deep linear UFM's closed forms.

The network's backbone output ``hiddenL`` is the UFM's free features H_1 (feature decay
acts on it), ``linear1 .. linear{M-1}`` are W_1 .. W_{M-1} and the bias-free classifier is
W_M: the UFM has M = appended + 1 weight matrices (the official code's ``depth_linear``
counts the classifier too), lambda_W = weight_decay, lambda_H = feature_decay. Weight decay
also acts on the backbone, which the UFM does not have.

Per run and per UFM layer m = 1..M, on the network and on the UFM's global minimizer
(`problem.theory().params`) alike: the class-mean Gram G (UNCENTRED for bias-free MSE, whose
predictions are orthogonal frames; CENTRED for CE, whose ETF and orthoplex are centred), its
``gram_distance`` || G/||G||_F - G*/||G*||_F ||_F to the prediction G* (None where G* is
unique only up to which classes pair up: the orthoplex), ``spectrum_distance`` (the same on
the sorted eigenvalues), ``effective_rank`` (tr G)^2/||G||_F^2 (10 for an orthogonal frame,
9 for a K=10 simplex ETF, 5 for the orthoplex), NC1 (trace and pinv), and on imbalanced
data the minority/majority mean-norm ratio, the mean cosine between minority means and the
classes that are ``off`` (mean below OFF_CUT times the largest; the theory's are 0). The
classifier: NC3 || W^T/||W||_F - Hbar_M/||Hbar_M||_F ||_F, the distances of W W^T and of
the class-mean logits to the prediction. ``ufm_objective``: the UFM's objective at the
network's own point. A run is judged in the terminal phase, or when the prediction has a
training error itself (it misclassifies the classes it switches off); otherwise no
agreement is called."""

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .. import geometry, metrics
from ..errors import InputError
from . import read
from .data import dataset
from .experiments import Setup, write_figure
from .grid import train
from .training import Training

NAME = "dang"
SUMMARY = "Linear layers appended to an MLP, per layer, against the deep linear UFM (Dang)"
MAJORITY, MINORITY = 135, 9
IMBALANCED = (MAJORITY,) * 5 + (MINORITY,) * 5  # digits: classes 0-4 majority, 5-9 minority
APPENDED = (0, 2, 5)  # linear layers between backbone and classifier: M = 1, 3, 6
OFF_CUT = 0.2  # a class is "off" when its mean is below this fraction of the largest mean
SHAPE_MATCH = 0.1  # gram/spectrum distances at or below this are called a match
NONE_MEANS = (
    "None: no prediction (no closed form, or one unique only up to which classes pair up), a"
    " ratio or cosine without minority classes or of zero norms, NC1 of zero scatter"
)


def _setup(counts, quick: bool) -> Setup:
    common = dict(bias=False, weight_decay=5e-3, feature_decay=2e-5, batch_size=64, lr=0.01)
    if quick:
        training = Training(widths=(32, 32), epochs=40, **common)
    else:
        training = Training(widths=(128, 64), epochs=1200, **common)
    grid = {"loss": ["mse", "ce"], "depth": [0, 2] if quick else list(APPENDED)}
    data = dataset("digits", train_per_class=counts)
    return Setup(data, training, grid, record=(training.epochs // 2, training.epochs))


def setup(quick: bool = False) -> Setup:
    """The imbalanced store: digits with 135 training samples in classes 0-4 and 9 in 5-9;
    bias-free classifier, weight decay 5e-3, feature decay 2e-5, MSE and CE, M = 1, 3, 6."""
    return _setup(list(IMBALANCED), quick)


def setup_balanced(quick: bool = False) -> Setup:
    """The balanced store: the same settings, 135 training samples in every class."""
    return _setup(MAJORITY, quick)


def run_balanced(out=None, *, quick=False, resume=False, progress=True):
    """`experiments.run` for `setup_balanced`: (store, comparison)."""
    s = setup_balanced(quick)
    ds = train(
        s.data, s.training, s.grid, seeds=s.seeds, record=s.record, out=out, resume=resume,
        progress=progress,
    )  # fmt: skip
    return ds, compare(ds)


# ----------------------------------------------------------------------------------------
# Shape statistics of class means (numpy; the same functions read network and prediction).


def class_means(H: np.ndarray, labels: np.ndarray, K: int) -> np.ndarray:
    """Hbar (d, K) of features H (d, N)."""
    onehot = np.eye(K)[np.asarray(labels)]
    return (np.asarray(H, dtype=float) @ onehot) / onehot.sum(axis=0)


def mean_gram(means: np.ndarray, counts, centred: bool) -> np.ndarray:
    """Hbar^T Hbar, or that of the means minus their count-weighted mean (``centred``)."""
    means = np.asarray(means, dtype=float)
    if centred:
        n = np.asarray(counts, dtype=float)
        means = means - (means @ n / n.sum())[:, None]
    return means.T @ means


def spectrum(G: np.ndarray) -> np.ndarray:
    return np.clip(np.linalg.eigvalsh((G + G.T) / 2)[::-1], 0.0, None)


def spectrum_distance(G: np.ndarray, target: np.ndarray) -> float:
    """|| s/||s|| - t/||t|| || of the sorted eigenvalues: `gram_distance` with classes and
    rotations factored out (0 iff the spectra are proportional)."""
    return float(geometry.gram_distance(spectrum(G), spectrum(target)))


def effective_rank(G: np.ndarray) -> float | None:
    """(tr G)^2 / ||G||_F^2: r for r equal eigenvalues; None for G = 0."""
    norm2 = float(np.sum(G * G))
    return float(np.trace(G)) ** 2 / norm2 if norm2 > 0 else None


def minority_shape(G: np.ndarray, minority: np.ndarray) -> dict[str, Any]:
    """From a class-mean Gram: which classes are off, the minority/majority norm ratio and
    the mean cosine between minority means (None where undefined)."""
    norms = np.sqrt(np.clip(np.diag(G), 0.0, None))
    top = norms.max()
    off = [int(k) for k in np.flatnonzero(norms <= OFF_CUT * top)] if top > 0 else []
    out: dict[str, Any] = {"off": off, "norm_ratio": None, "minority_cosine": None}
    if not minority.any() or minority.all():
        return out
    major = norms[~minority].mean()
    out["norm_ratio"] = float(norms[minority].mean() / major) if major > 0 else None
    idx = np.flatnonzero(minority)
    if idx.size >= 2 and np.all(norms[idx] > 0):
        cos = G[np.ix_(idx, idx)] / np.outer(norms[idx], norms[idx])
        out["minority_cosine"] = float(cos[np.triu_indices(idx.size, 1)].mean())
    return out


def predicted_train_error(logits: np.ndarray, counts) -> float:
    """Training error of a collapsed point with class-mean logits (K, K) (column k: class
    k's logits): class k is right iff its own logit is strictly the largest."""
    logits, n = np.asarray(logits, dtype=float), np.asarray(counts, dtype=float)
    K = n.size
    others = np.where(np.eye(K, dtype=bool), -np.inf, logits).max(axis=0)
    wrong = ~(np.diag(logits) > others)
    return float(n[wrong].sum() / n.sum())


def _finite(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


# ----------------------------------------------------------------------------------------
# The UFM's side.


def prediction(training: Training, counts, d: int) -> dict[str, Any]:
    """The deep linear UFM with M = appended + 1 layers: its theory, and (where it has a
    closed form) each layer's class means, the classifier and the class-mean logits of its
    global minimizer."""
    import ufm  # the registry imports the models: only when a comparison needs them

    if not training.feature_decay > 0:
        raise InputError("feature_decay: must be > 0 (the UFM's lambda_H) to compare with it")
    counts = [int(c) for c in counts]
    t = training
    hyper = dict(loss=t.loss, K=len(counts), n=counts, d=d, depth=t.depth + 1, bias=t.bias)
    problem = ufm.make("deep-linear", lambda_W=t.weight_decay, lambda_H=t.feature_decay, **hyper)
    theory = problem.theory()
    out: dict[str, Any] = {
        "theory": {
            "regime": theory.regime,
            "geometry": theory.geometry,
            "reason": theory.reason,
            "source": theory.source,
        },
        "means": None,
        "problem": problem,
        "loss": theory.loss,
    }
    if theory.regime == "not_applicable" or theory.params is None:
        return out
    params = dict(theory.params)
    if "W1" not in params:  # the plain model's minimizer (depth 1): W is W_1
        params = {"H": params["H"], "W1": params["W"]}
    layers = problem.layers(params)
    labels, K = np.asarray(problem.labels), len(counts)
    out["means"] = [class_means(layer["H"], labels, K) for layer in layers]
    out["W"] = np.asarray(layers[-1]["W"], dtype=float)
    out["logits"] = out["W"] @ out["means"][-1]
    out["unique_gram"] = theory.geometry != "orthoplex"  # which classes pair up: arbitrary
    out["train_error"] = predicted_train_error(out["logits"], counts)
    return out


# ----------------------------------------------------------------------------------------
# The network's side, beside the prediction.


def layer_numbers(
    H: np.ndarray,
    labels: np.ndarray,
    counts,
    centred: bool,
    predicted_means: np.ndarray | None = None,
    unique: bool = True,
) -> dict[str, Any]:
    """One layer's numbers: features H (N, d) with labels, against the predicted class
    means (d, K) of the same UFM layer (None: no prediction)."""
    K = len(counts)
    Hd, y = np.asarray(H, dtype=float).T, np.asarray(labels)
    minority = np.asarray(counts) < max(counts)
    G = mean_gram(class_means(Hd, y, K), counts, centred)
    out: dict[str, Any] = {
        "nc1_trace": _finite(metrics.nc1_trace(Hd, y, K)),
        "nc1_pinv": _finite(metrics.nc1_pinv(Hd, y, K)),
        "effective_rank": effective_rank(G),
        "etf_distance": float(metrics.nc2_etf_error(G)) if centred else None,
        **minority_shape(G, minority),
    }
    shown = ("effective_rank", "off", "norm_ratio", "minority_cosine")
    out |= dict.fromkeys(["gram_distance", "spectrum_distance"] + [f"predicted_{k}" for k in shown])
    if predicted_means is None:
        return out
    P = mean_gram(predicted_means, counts, centred)
    shape = minority_shape(P, minority) | {"effective_rank": effective_rank(P)}
    out["gram_distance"] = float(geometry.gram_distance(G, P)) if unique else None
    out["spectrum_distance"] = spectrum_distance(G, P)
    return out | {f"predicted_{k}": shape[k] for k in shown}


def _classifier_shape(W: np.ndarray, means: np.ndarray, counts, centred: bool) -> dict:
    n = np.asarray(counts, dtype=float)
    if centred:
        means = means - (means @ n / n.sum())[:, None]
    rows = np.linalg.norm(W, axis=1)
    minority = n < n.max()
    ratio = None
    if minority.any() and rows[~minority].mean() > 0:
        ratio = float(rows[minority].mean() / rows[~minority].mean())
    return {"nc3": float(geometry.gram_distance(W.T, means)), "row_norm_ratio": ratio}


def classifier_numbers(
    W: np.ndarray, means: np.ndarray, counts, centred: bool, predicted: dict | None = None
) -> dict[str, Any]:
    """The classifier W (K, d) with the last layer's class means (d, K), against the
    predicted W_M, last-layer means and class-mean logits."""
    W, means = np.asarray(W, dtype=float), np.asarray(means, dtype=float)
    out = _classifier_shape(W, means, counts, centred)
    keys = ("predicted_nc3", "predicted_row_norm_ratio", "gram_distance", "logits_distance")
    out |= dict.fromkeys(keys)
    if predicted is None or predicted.get("means") is None:
        return out
    Wp, Mp = predicted["W"], predicted["means"][-1]
    shape = _classifier_shape(Wp, Mp, counts, centred)
    out["predicted_nc3"], out["predicted_row_norm_ratio"] = shape["nc3"], shape["row_norm_ratio"]
    if predicted["unique_gram"]:
        out["gram_distance"] = float(geometry.gram_distance(W @ W.T, Wp @ Wp.T))
        out["logits_distance"] = float(geometry.gram_distance(W @ means, predicted["logits"]))
    return out


def _centred(training: Training) -> bool:
    """Bias-free MSE: the theory's frames are uncentred; otherwise compare centred means."""
    return not (training.loss == "mse" and not training.bias)


def compare_run(ds: xr.Dataset, point: dict[str, Any], built=None) -> dict[str, Any]:
    """Every number of one run at its last recorded epoch (`built`: the store's dataset,
    `read.data(ds)`, rebuilt once by the caller)."""
    t = read.training(ds, point)
    epoch = int(ds["epoch"].values.max())
    labels = np.asarray(ds["train_label"].values)
    K = int(ds.attrs["data"]["K"])
    counts = [int(c) for c in np.bincount(labels, minlength=K)]
    centred = _centred(t)
    predicted = prediction(t, counts, t.widths[-1])
    names = read.layer_names(ds, point)[len(t.widths) - 1 :]  # hiddenL, linear1, ...
    means_p = predicted["means"]
    unique = bool(predicted.get("unique_gram", True))
    layers = []
    for m, name in enumerate(names):
        H, y = read.features(ds, point, epoch, name)
        row = layer_numbers(H, y, counts, centred, None if means_p is None else means_p[m], unique)
        layers.append({"m": m + 1, "layer": name, **row})
    W, _ = read.classifier(ds, point, epoch)
    last = class_means(read.features(ds, point, epoch, names[-1])[0].T, labels, K)
    status = read.status(ds, point, epoch)
    objective = ufm_objective(ds, point, predicted["problem"], built)
    gap = None if predicted["loss"] is None else objective / predicted["loss"] - 1
    out = {
        "point": point,
        "loss": t.loss,
        "M": t.depth + 1,
        "appended": t.depth,
        "centred": centred,
        "status": status,
        **predicted["theory"],
        "predicted_train_error": predicted.get("train_error"),
        "ufm_objective": objective,
        "predicted_objective": predicted["loss"],
        "objective_gap": gap,
        "layers": layers,
        "classifier": classifier_numbers(W, last, counts, centred, predicted),
    }
    out["judged"], out["note"] = _judged(status, predicted)
    return out


def ufm_objective(ds: xr.Dataset, point: dict[str, Any], problem, built=None) -> float:
    """The deep linear UFM's objective at the trained network's point: H_1 = the backbone
    output on the training set, W_1 .. W_M = the linear layers and the classifier (the
    network's objective without its backbone's weight decay). Below the predicted minimum
    it would refute the prediction as a global minimum."""
    import jax.numpy as jnp

    net = read.trained_network(ds, point, built)
    t = read.training(ds, point)
    H, labels = read.features(ds, point, int(ds["epoch"].values.max()), f"hidden{len(t.widths)}")
    order = np.argsort(labels, kind="stable")  # the problem's columns are sorted by class
    weights = [*net.linear, net.classifier.weight]
    params = {"H": H[order].T} | {f"W{m}": w for m, w in enumerate(weights, start=1)}
    if t.bias:
        params["b"] = net.classifier.bias
    dtype = problem.lambda_H.dtype
    return float(problem.loss({k: jnp.asarray(v, dtype=dtype) for k, v in params.items()}))


def _judged(status: dict, predicted: dict) -> tuple[bool, str | None]:
    if predicted["means"] is None:
        return False, "no closed form for this case: numbers reported, not judged"
    if status["terminal_phase"]:
        return True, None
    if predicted["train_error"] > 0:
        return True, (
            f"the prediction misclassifies the classes it switches off (training error "
            f"{predicted['train_error']:.4f}); the network's is {status['train_error']:.4f}"
        )
    return False, (
        f"not in the terminal phase (training error {status['train_error']:.4f}, predicted 0):"
        " numbers reported, agreement not called"
    )


def agreement(run: dict[str, Any]) -> dict[str, Any] | None:
    """Where a judged run matches its prediction: the Gram distance (the spectrum distance
    where the Gram is unique only up to class pairing) at the first layer (m = 1, the
    backbone's output), at the last (m = M, the classifier's input) and the largest, each
    against SHAPE_MATCH, and whether every layer switches off exactly the predicted
    classes. None for runs that are not judged."""
    if not run["judged"]:
        return None
    layers = run["layers"]
    key = "gram_distance" if layers[0]["gram_distance"] is not None else "spectrum_distance"
    dist = [r[key] for r in layers]
    return {
        "distance": key,
        "first_layer": dist[0],
        "last_layer": dist[-1],
        "largest": max(dist),
        "shape_match_last_layer": dist[-1] <= SHAPE_MATCH,
        "shape_match_every_layer": max(dist) <= SHAPE_MATCH,
        "off_match": all(r["off"] == r["predicted_off"] for r in layers),
    }


def _line(run: dict[str, Any]) -> str:
    s, a, first, last = run["status"], run["agreement"], run["layers"][0], run["layers"][-1]
    geometry_ = f"/{run['geometry']}" if run["geometry"] else ""
    parts = [f"{run['loss']} M={run['M']}: theory {run['regime']}{geometry_}"]
    parts.append(
        f"train error {s['train_error']:.4f} (predicted {_fmt(run['predicted_train_error'])})"
    )
    parts.append(f"NC1 {_fmt(first['nc1_trace'])} at m=1, {_fmt(last['nc1_trace'])} at m=M")
    parts.append(f"effective rank at m=M {_fmt(last['effective_rank'])} (predicted "
                 f"{_fmt(last['predicted_effective_rank'])})")  # fmt: skip
    if first["norm_ratio"] is not None:
        parts.append(f"minority/majority norm at m=1 {_fmt(first['norm_ratio'])} (predicted "
                     f"{_fmt(first['predicted_norm_ratio'])}), off {first['off']} (predicted "
                     f"{first['predicted_off']})")  # fmt: skip
    if run["objective_gap"] is not None:
        parts.append(f"UFM objective {run['objective_gap']:+.3g} relative to the minimum")
    if a is None:
        return "; ".join(parts) + f". Not judged: {run['note']}"
    parts.append(f"{a['distance'].replace('_', ' ')} {a['first_layer']:.3f} at m=1, "
                 f"{a['last_layer']:.3f} at m=M (<= {SHAPE_MATCH}: {a['shape_match_last_layer']}"
                 f" at m=M, {a['shape_match_every_layer']} at every layer)")  # fmt: skip
    return "; ".join(parts) + f"; off classes as predicted at every layer: {a['off_match']}"


def _fmt(x) -> str:
    return "None" if x is None else f"{x:.3g}" if isinstance(x, float) else str(x)


def compare(ds: xr.Dataset) -> dict[str, Any]:
    """Per run and per layer numbers, and a summary line per run."""
    built = read.data(ds)
    runs = [compare_run(ds, point, built) for point in read.points(ds)]
    for run in runs:
        run["agreement"] = agreement(run)
    labels = np.asarray(ds["train_label"].values)
    counts = np.bincount(labels, minlength=int(ds.attrs["data"]["K"]))
    judged = [r for r in runs if r["agreement"] is not None]
    summary = {
        "runs": len(runs),
        "in_terminal_phase": sum(r["status"]["terminal_phase"] for r in runs),
        "judged": len(judged),
        **{
            k: sum(r["agreement"][k] for r in judged)
            for k in ("shape_match_last_layer", "shape_match_every_layer", "off_match")
        },
        "lines": [_line(r) for r in runs],
    }
    return {
        "experiment": NAME,
        "counts": [int(c) for c in counts],
        "balanced": bool(counts.min() == counts.max()),
        "off_cut": OFF_CUT,
        "shape_match": SHAPE_MATCH,
        "none": NONE_MEANS,
        "runs": runs,
        "summary": summary,
    }


# ----------------------------------------------------------------------------------------

COLORS = {1: "tab:blue", 3: "tab:orange", 6: "tab:green"}
STYLES = {"mse": ("o", "-"), "ce": ("s", "--")}
FLOOR = 1e-4  # distances and NC1 below this are drawn at it (log axes)


def draw(axes, comparison: dict[str, Any], title: str = "", letters: str = "abc") -> None:
    """Three panels against the UFM layer m: the distance of the class-mean Gram to the
    prediction (hollow: spectrum distance, where the Gram is unique only up to class
    pairing), NC1 (trace), and the minority/majority norm ratio (imbalanced) or the
    effective rank (balanced); crosses: the prediction. Faded: runs not judged."""
    balanced = comparison["balanced"]
    for run in comparison["runs"]:
        m = [r["m"] for r in run["layers"]]
        color = COLORS.get(run["M"], "0.4")
        marker, ls = STYLES[run["loss"]]
        kw = dict(color=color, ls=ls, marker=marker, alpha=1.0 if run["judged"] else 0.35)
        gram = [r["gram_distance"] for r in run["layers"]]
        if any(g is not None for g in gram):
            axes[0].plot(m, [max(_nan(g), FLOOR) for g in gram], **kw)
        elif run["layers"][0]["spectrum_distance"] is not None:
            spec = [max(r["spectrum_distance"], FLOOR) for r in run["layers"]]
            axes[0].plot(m, spec, mfc="white", **kw)
        axes[1].plot(m, [max(_nan(r["nc1_trace"]), FLOOR) for r in run["layers"]], **kw)
        key = "effective_rank" if balanced else "norm_ratio"
        axes[2].plot(m, [_nan(r[key]) for r in run["layers"]], **kw)
        predicted = [_nan(r["predicted_" + key]) for r in run["layers"]]
        axes[2].plot(m, predicted, ls="none", marker="x", color=color, ms=5, alpha=kw["alpha"])
    axes[0].set(yscale="log", ylabel="distance to predicted Gram", xlabel="layer m")
    axes[1].set(yscale="log", ylabel="NC1 = Tr Σ_W / Tr Σ_B", xlabel="layer m")
    ylabel = "effective rank of the Gram" if balanced else "minority / majority mean norm"
    axes[2].set(ylabel=ylabel, xlabel="layer m")
    for ax, letter in zip(axes, letters, strict=True):
        ax.set_title(f"({letter}) {title}", loc="left")
        ax.xaxis.get_major_locator().set_params(integer=True)


def legend(fig, runs) -> None:
    """One legend below the figure: a line per (loss, M) of `runs`, the prediction's
    crosses, the hollow spectrum-distance markers and the faded unjudged runs."""
    from matplotlib.lines import Line2D

    handles, labels = [], []
    for loss, M in sorted({(r["loss"], r["M"]) for r in runs}, key=lambda k: (k[0] != "mse", k)):
        marker, ls = STYLES[loss]
        handles.append(Line2D([], [], color=COLORS.get(M, "0.4"), marker=marker, ls=ls))
        labels.append(f"{loss} M={M}")
    handles += [
        Line2D([], [], ls="none", marker="x", color="0.3"),
        Line2D([], [], ls="none", marker="s", mfc="white", color="0.3"),
        Line2D([], [], marker="o", color="0.3", alpha=0.35),
    ]
    labels += ["prediction", "spectrum distance", "not judged"]
    fig.legend(handles, labels, loc="outside lower center", ncol=(len(labels) + 1) // 2)


def _nan(x) -> float:
    return np.nan if x is None else float(x)


def plot(ds: xr.Dataset, comparison: dict[str, Any], path) -> Path:
    """The three panels of `draw` for one store, written to `path`."""
    import matplotlib.pyplot as plt

    title = "balanced" if comparison["balanced"] else "imbalanced"
    with plt.rc_context({"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 7}):
        fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.6), layout="constrained")
        draw(axes, comparison, title)
        legend(fig, comparison["runs"])
    return write_figure(fig, path)
