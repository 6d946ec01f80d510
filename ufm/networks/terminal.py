"""NC1-NC4 per layer along training: the classic terminal-phase picture (Papyan, Han &
Donoho 2020), against what the plain CE UFM's global minimizer has (Zhu et al. 2021: NC1 = 0,
class means and classifier rows a simplex ETF, W proportional to the centred means,
NC4 agreement 1).

Per recorded epoch and layer: NC1 (`nc1_pinv`, and Tirer's trace ratio), NC2 (distance of
the centred class-mean Gram to the simplex ETF, equinorm, equiangularity). On the last layer,
with the classifier: NC2 of W, NC3 (self-duality distance), NC4 (agreement of the classifier
with the nearest class mean, on the training set and on the test set with the training means).
"""

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .. import metrics
from . import read
from .data import dataset
from .experiments import Setup, write_figure
from .training import Training

NAME = "terminal"
SUMMARY = "NC1-NC4 per layer along training, into the terminal phase (digits, CE)"
LAYER_METRICS = ("nc1", "nc1_trace", "nc2", "nc2_equinorm", "nc2_equiangularity")
LAST_METRICS = ("nc2_W", "nc3", "nc4", "nc4_test")
SHRINKS = ("nc1", "nc1_trace", "nc2", "nc2_W", "nc3")  # the UFM's minimizer has these at 0


def setup(quick: bool = False) -> Setup:
    """Digits, CE; without and with a little feature decay (the UFM's lambda_H)."""
    if quick:
        return Setup(
            dataset("digits"),
            Training(widths=(64, 64), epochs=120, lr=0.2, weight_decay=5e-4),
            grid={"feature_decay": [0.0, 1e-5]},
            record=(0, 5, 20, 40, 80, 120),
        )
    return Setup(
        dataset("digits"),
        Training(widths=(256, 256, 256), epochs=600, lr=0.05, weight_decay=5e-3),
        grid={"feature_decay": [0.0, 1e-5]},
        seeds=(0, 1),
        record=(0, 2, 5, 10, 25, 50, 100, 200, 300, 400, 500, 600),
    )


def layer_metrics(H, labels, K: int, W=None, b=None, H_test=None, labels_test=None):
    """NC metrics of one layer's features H (N, d); with W (and b) those of the classifier
    too, and NC4 on test features with the training means."""
    Hd = np.asarray(H).T
    values = metrics.summary(Hd, np.asarray(labels), K, W, b)
    out = {k: float(values[k]) for k in LAYER_METRICS}
    if W is not None:
        out |= {k: float(values[k]) for k in ("nc2_W", "nc3", "nc4")}
        if H_test is not None:
            means, _ = metrics.class_means(Hd, np.asarray(labels), K)
            agree = metrics.agreement(np.asarray(H_test).T, W, b, means)
            out["nc4_test"] = float(np.mean(agree))
    return out


def compare(ds: xr.Dataset) -> dict[str, Any]:
    K = int(ds.attrs["data"]["K"])
    epochs = [int(e) for e in ds["epoch"].values]
    runs = []
    for point in read.points(ds):
        layers = read.layer_names(ds, point)
        table = {layer: {} for layer in layers}
        for epoch in epochs:
            W, b = read.classifier(ds, point, epoch)
            for layer in layers:
                H, y = read.features(ds, point, epoch, layer)
                extra = {}
                if layer == layers[-1]:
                    Ht, yt = read.features(ds, point, epoch, layer, "test")
                    extra = {"W": W, "b": b, "H_test": Ht, "labels_test": yt}
                for k, v in layer_metrics(H, y, K, **extra).items():
                    table[layer].setdefault(k, []).append(v)
        runs.append(
            {
                "point": point,
                "epochs": epochs,
                "layers": table,
                "status": read.status(ds, point, epochs[-1]),
                "shrink": _shrink(ds, point, epochs, table[layers[-1]]),
            }
        )
    return {"experiment": NAME, "runs": runs, "summary": _summary(runs)}


def _shrink(ds, point, epochs, last: dict) -> dict[str, Any]:
    """Each last-layer metric at the last epoch over its value when the training error
    first stayed 0 (the nearest recorded epoch at or after it): < 1 means it kept falling
    in the terminal phase, as collapse towards the UFM's minimizer needs."""
    terminal = int(ds["terminal_epoch"].sel(point).values)
    if terminal < 0:
        return {"note": "the training error never stayed 0: no terminal phase to measure"}
    start = next((i for i, e in enumerate(epochs) if e >= terminal), len(epochs) - 1)
    if start == len(epochs) - 1:
        return {"note": f"no recorded epoch after the terminal phase began ({terminal})"}
    out = {"from_epoch": epochs[start], "to_epoch": epochs[-1]}
    for k in SHRINKS:
        a, z = last[k][start], last[k][-1]
        out[k] = z / a if a > 0 else None
    return out


def _summary(runs) -> dict[str, Any]:
    """Per setting (the grid point without its seed): how many runs reached the terminal
    phase, and the medians over those runs of the last layer's final metrics."""
    out: dict[str, Any] = {
        "runs": len(runs),
        "in_terminal_phase": sum(r["status"]["terminal_phase"] for r in runs),
    }
    for label, group in _groups(runs).items():
        out[label] = _group_summary(group)
    return out


def _groups(runs) -> dict[str, list]:
    groups: dict[str, list] = {}
    for r in runs:
        setting = {k: v for k, v in r["point"].items() if k != "seed"}
        label = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in setting.items()) or "all runs"  # fmt: skip
        groups.setdefault(label, []).append(r)
    return groups


def _group_summary(runs) -> dict[str, Any]:
    terminal = [r for r in runs if r["status"]["terminal_phase"]]
    out: dict[str, Any] = {
        "runs": len(runs),
        "in_terminal_phase": len(terminal),
        "train_error": [r["status"]["train_error"] for r in runs],
        "test_error": [r["status"]["test_error"] for r in runs],
    }
    if not terminal:
        out["note"] = "no run reached zero training error: collapse is not judged"
        return out
    last = lambda k: [r["layers"][list(r["layers"])[-1]][k][-1] for r in terminal]
    out |= {f"final_{k}": _median(last(k)) for k in LAYER_METRICS + LAST_METRICS}
    shrinks = {k: [r["shrink"].get(k) for r in terminal] for k in SHRINKS}
    out["falling_in_terminal_phase"] = {
        k: sum(1 for v in vs if v is not None and v < 1) for k, vs in shrinks.items()
    }
    first = lambda k: [r["layers"][list(r["layers"])[0]][k][-1] for r in terminal]
    out["nc1_first_layer"], out["nc1_last_layer"] = _median(first("nc1")), _median(last("nc1"))
    return out


def _median(values) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


def plot(ds: xr.Dataset, comparison: dict[str, Any], path) -> Path:
    """Draw the figure (`draw`) and write it to `path`."""
    return write_figure(draw(comparison), path)


def draw(comparison: dict[str, Any]):
    """NC1 and NC2 of every layer, NC3 and NC4 of the last, against epoch (the median over
    seeds); one line style per setting (e.g. without and with feature decay)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter

    runs = comparison["runs"]
    groups = _groups(runs)
    epochs = np.asarray(runs[0]["epochs"], dtype=float)
    x = np.where(epochs > 0, epochs, np.nan)
    panels = [
        ("nc1", "NC1 (pinv)", "Tr(Σ_W Σ_B⁺)/K"),
        ("nc2", "NC2", "distance to simplex ETF"),
        ("nc3", "NC3", "distance of W to means"),
        ("nc4", "NC4", "1 − agreement with NCC"),
    ]
    layers = list(runs[0]["layers"])
    colors = dict(
        zip(layers, plt.get_cmap("viridis")(np.linspace(0, 0.85, len(layers))), strict=True)
    )
    styles = dict(zip(groups, ["-", "--", ":", "-."] * 4, strict=False))
    with plt.rc_context({"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 7}):
        fig, axes = plt.subplots(1, 4, figsize=(7.0, 2.1), layout="constrained")
        for ax, (key, title, ylabel) in zip(axes, panels, strict=True):
            for label, group in groups.items():
                for layer in layers if key in ("nc1", "nc2") else layers[-1:]:
                    y = np.median([r["layers"][layer][key] for r in group], axis=0)
                    ax.plot(x, 1 - y if key == "nc4" else y, marker="o", ms=2, ls=styles[label],
                            color=colors[layer])  # fmt: skip
            ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel=ylabel, title=title)
            ax.xaxis.set_minor_formatter(NullFormatter())
        handles = [Line2D([], [], color=colors[layer], marker="o", ms=2) for layer in layers]
        handles += [Line2D([], [], color="0.3", ls=styles[label]) for label in groups]
        fig.legend(handles, layers + list(groups), loc="outside lower center",
                   ncol=len(layers) + len(groups), frameon=False)  # fmt: skip
    return fig
