"""Yang et al., "Dual-Head Knowledge Distillation" (arXiv 2411.08937), small: a teacher MLP,
student MLPs distilled from its logits six ways, test accuracy and the CE head's geometry.

Read: the abstract, the reviews and the official code (github.com/penghui-yang/DHKD @
7976c69), not the paper body. The abstract's claim: a logit-level loss (BinaryKL) added to
the cross-entropy on ONE linear head makes the student worse than either loss alone ("head
collapse": the two losses' gradients conflict in the linear classifier, not in the
backbone); two heads on the shared features, CE on one and BinaryKL-Norm on the other, fix
it. The recipe is the code's train_student.py: SGD lr 0.05, momentum 0.9, weight decay 5e-4
on every parameter (biases too), batch 64, lr x0.1 at 5/8, 3/4, 7/8 of the epochs (its 150,
180, 210 of 240), gamma = alpha = 1, T = 2 for BinaryKL(-Norm) and 4 for KD.

The teacher (`teacher_training`, an MLP of widths (256, 256) trained with CE by the same
recipe but a weight decay of 5e-3) is trained once per store (`ufm.networks.training.teach`);
its training-set logits are the targets, and the store keeps them. Students: one hidden
layer of 12 units (narrow enough that distillation matters: at 32 units a CE student
matched the teacher on digits; at least K - 1 = 9, so that a simplex ETF fits in the
features), each seed trained six ways (`METHODS`, a variant axis ``method``; one seed
means one initial network and one batch order for every method, so differences are paired
by seed):

(a) ``ce`` CE only; (b) ``binary-kl`` BinaryKL only (gamma = 0); (c) ``ce+binary-kl`` both
on one head; (d) ``dual`` CE on head 1, BinaryKL-Norm on a second linear head (the code's
``dhkd`` mode); (e) ``ce+kd`` softmax KD (T = 4) + CE on one head (the standard baseline);
(f) ``dual+projection`` (d) with the code's ``--ga`` gradient projection.

Accuracy is head 1's (the CE head; (b)'s only head). The CE head's geometry, per run:
``common_mode`` = |mean_k w_k| / max_k |w_k| (0 for a centred head; the CE gradient's rows
sum to zero, BinaryKL's do not), ``etf_uncentred`` / ``etf_centred`` = `nc2_etf_error` of
W W^T and of the row-centred W's Gram, ``nc3`` = Papyan's self-duality of W (uncentred)
against the centred class means of the last-layer features, and the features' NC1 (Papyan's
Tr(Sigma_W Sigma_B^+)/K); each head's logit levels (`dhkd_shift.logit_levels`: |1^T W|,
|1^T W| / ||W||_F, the bias's mean, the mean logit on the training set and the rows' part).

On digits, (c) and (d) are trained again against the teacher's logits shifted by m = 2 and
4 on every class (`dhkd_shift`; quick: m = 2): the UFM predicts that the single head's mean
logit follows the shift with a common row, and that the dual CE head stays centred.
`dhkd_gaussian` runs the six unshifted students on a Gaussian mixture.
"""

import math
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .. import _output, metrics
from . import dhkd_shift, read
from .data import Dataset, dataset
from .experiments import Setup, write_figure
from .paired_seeds import mean_se, paired, plus_minus, plus_minus_paired
from .training import Training, teach

NAME = "dhkd"
SUMMARY = (
    "Yang et al. (DHKD): students distilled from a teacher MLP with CE, BinaryKL, both on "
    "one head, or two heads; test accuracy and the CE head's geometry (digits)"
)
RECIPE = dict(
    batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4, decay_all=True, schedule="step-late"
)
METHODS = {  # the variant axis: label -> the settings that differ from plain CE
    "ce": {},
    "binary-kl": {"distill": "binary-kl", "gamma": 0.0, "temperature": 2.0},
    "ce+binary-kl": {"distill": "binary-kl", "temperature": 2.0},
    "dual": {"distill": "binary-kl-norm", "heads": 2, "temperature": 2.0},
    "ce+kd": {"distill": "kd", "temperature": 4.0},
    "dual+projection": {
        "distill": "binary-kl-norm", "heads": 2, "temperature": 2.0, "projection": True
    },
}  # fmt: skip
LABELS = {
    "ce": "(a) CE",
    "binary-kl": "(b) BKL",
    "ce+binary-kl": "(c) CE+BKL",
    "dual": "(d) dual",
    "ce+kd": "(e) CE+KD",
    "dual+projection": "(f) dual+ga",
}
DUAL = ("dual", "dual+projection")
STUDENT_WIDTHS = (12,)
TEACHER_WIDTHS = (256, 256)
TEACHER_DECAY = 5e-3  # digits: 97.5 % test accuracy, against 96.9 % at the recipe's 5e-4
GAUSSIAN = dict(K=10, dim=30, separation=3.5, per_class=300, test_fraction=0.5)
NOT_TERMINAL = "not in the terminal phase (training error > 0 at the end)"


def teacher_training(epochs: int, widths=TEACHER_WIDTHS) -> Training:
    """The teacher: CE, the students' recipe with weight decay `TEACHER_DECAY`, seed 0."""
    return Training(widths=widths, epochs=epochs, **(RECIPE | {"weight_decay": TEACHER_DECAY}))


def student_setup(data: Dataset, quick: bool, seeds: int = 10, methods=METHODS) -> Setup:
    """The teacher trained on `data` (full: 120 epochs; quick: widths (128, 128), 20), then
    the students' grid: `methods` x seeds (full: 240 epochs, `seeds` seeds; quick: 24, 2)."""
    teacher = teacher_training(20, (128, 128)) if quick else teacher_training(120)
    epochs, count = (24, 2) if quick else (240, seeds)
    student = Training(widths=STUDENT_WIDTHS, epochs=epochs, **RECIPE)
    return Setup(teach(data, teacher), student, {"method": methods}, tuple(range(count)), (epochs,))


def setup(quick: bool = False) -> Setup:
    """digits: all 1438 training samples (quick: 40 per class), 359 test samples; METHODS
    and (c), (d) against the teacher shifted by `dhkd_shift.SHIFTS` (quick: QUICK_SHIFTS)."""
    shifts = dhkd_shift.QUICK_SHIFTS if quick else dhkd_shift.SHIFTS
    methods = METHODS | dhkd_shift.variants(METHODS, shifts)
    data = dataset("digits", train_per_class=40 if quick else None)
    return student_setup(data, quick, methods=methods)


def setup_gaussian(quick: bool = False) -> Setup:
    """A seeded Gaussian mixture (`GAUSSIAN`: K = 10 classes in 30 dimensions, means 3.5
    apart, 150 training and 150 test samples per class; quick: 40 training per class)."""
    return student_setup(
        dataset("gaussian", train_per_class=40 if quick else None, **GAUSSIAN), quick
    )


# ----------------------------------------------------------------------------------------
# Geometry of one head and statistics over seeds (numpy: any W and features).


def head_geometry(W, H, labels, K: int) -> dict[str, float | None]:
    """A linear head W (K, d) against features H (d, N): ``common_mode`` |mean_k w_k| /
    max_k |w_k|, ``etf_uncentred`` and ``etf_centred`` (`metrics.nc2_etf_error` of W W^T and
    of (W - 1 mean^T)(.)^T), ``nc3`` (`metrics.nc3_self_duality` against the centred class
    means of H)."""
    W = np.asarray(W, dtype=float)
    centred = W - W.mean(axis=0)
    largest = float(np.linalg.norm(W, axis=1).max())
    means = metrics.centred_means(np.asarray(H, float), np.asarray(labels), K)
    values = {
        "common_mode": float(np.linalg.norm(W.mean(axis=0))) / largest if largest > 0 else None,
        "etf_uncentred": float(metrics.nc2_etf_error(W @ W.T)),
        "etf_centred": float(metrics.nc2_etf_error(centred @ centred.T)),
        "nc3": float(metrics.nc3_self_duality(W, means)),
    }
    return {k: v if v is None or math.isfinite(v) else None for k, v in values.items()}


# ----------------------------------------------------------------------------------------
# The comparison.


def _run(ds: xr.Dataset, point: dict, epoch: int, K: int) -> dict[str, Any]:
    t = read.training(ds, point)
    status = read.status(ds, point, epoch)
    H, labels = read.features(ds, point, epoch, read.layer_names(ds, point)[-1])
    H = np.ascontiguousarray(H.T)
    row = {"point": dict(point), "method": point["method"], "seed": int(point["seed"])}
    row |= {"accuracy": 1 - status["test_error"]} | status
    row["nc1"] = _output.jsonable(float(metrics.nc1_pinv(H, labels, K)))
    row["head1"] = row["head2"] = None
    for head in (1, 2) if t.heads == 2 else (1,):
        W, b = read.classifier(ds, point, epoch, head=head)
        row[f"head{head}"] = head_geometry(W, H, labels, K) | dhkd_shift.logit_levels(W, b, H)
    if not status["terminal_phase"]:
        row["note"] = NOT_TERMINAL
    return row


def method_summary(rows: list[dict]) -> dict[str, Any]:
    """Mean and standard error over a method's seeds of the accuracy, the errors, NC1 and
    each head's geometry; how many runs reached zero training error."""
    out = {k: mean_se([r[k] for r in rows]) for k in ("accuracy", "train_error", "nc1")}
    for head in ("head1", "head2"):
        runs = [r[head] for r in rows if r[head] is not None]
        out[head] = {k: mean_se([g[k] for g in runs]) for k in runs[0]} if runs else None
    return out | {"terminal_runs": sum(r["terminal_phase"] for r in rows), "runs": len(rows)}


def ordering(rows: list[dict], summaries: dict[str, dict]) -> dict[str, Any]:
    """The abstract's ordering, tested: (c) below (a) and below (b), a dual head ((d), or
    (f) its projected variant) the best. Paired differences for each ((d) against every
    single-head method), the method with the highest mean accuracy (of all run, and of
    (a)-(d)), whether each part and the whole hold (on the means), and whether each part's
    outcome is ``resolved`` (decided by paired differences beyond 2 standard errors)."""
    present = [m for m in METHODS if m in summaries]
    best = max(present, key=lambda m: summaries[m]["accuracy"]["mean"])
    core = [m for m in ("ce", "binary-kl", "ce+binary-kl", "dual") if m in present]
    best_core = max(core, key=lambda m: summaries[m]["accuracy"]["mean"])
    differences = {
        "single_minus_ce": paired(rows, "ce+binary-kl", "ce"),
        "single_minus_binary_kl": paired(rows, "ce+binary-kl", "binary-kl"),
    }
    for m in present:
        if m != "dual":
            differences[f"dual_minus_{m}"] = paired(rows, "dual", m)
    holds = {
        "single_worse_than_ce": differences["single_minus_ce"]["difference"] < 0,
        "single_worse_than_binary_kl": differences["single_minus_binary_kl"]["difference"] < 0,
        "dual_best": best in DUAL,
        "dual_best_of_a_to_d": best_core == "dual",
    }
    versus = [d for d in differences.values() if d["a"] == "dual" and d["b"] not in DUAL]
    gap = lambda d, sign: d["resolved"] and sign * d["difference"] > 0  # noqa: E731
    resolved = {
        "single_worse_than_ce": differences["single_minus_ce"]["resolved"],
        "single_worse_than_binary_kl": differences["single_minus_binary_kl"]["resolved"],
        # holds: ahead of every other by > 2 s.e.; fails: some other ahead by > 2 s.e.
        "dual_best": all(gap(d, 1) for d in versus)
        if holds["dual_best"]
        else any(gap(d, -1) for d in versus),
    }
    reproduces = holds["single_worse_than_ce"] and holds["single_worse_than_binary_kl"]
    reproduces = reproduces and holds["dual_best"]
    return {
        "differences": differences,
        "best": best,
        "best_of_a_to_d": best_core,
        "holds": holds,
        "resolved": resolved,
        "reproduces": reproduces,
    }


def compare(ds: xr.Dataset) -> dict[str, Any]:
    """Per run (``runs``): test accuracy (head 1), errors, terminal phase, NC1 of the last
    layer's features and each head's geometry and logit levels. ``summary``: ``methods``
    (mean and standard error over seeds, in the grid's order), ``ordering`` (the abstract's
    ordering tested on paired differences of the unshifted students), ``teacher`` (its
    settings, errors and mean logit over classes and training samples, with the spread of
    the per-sample means), ``shift`` (`dhkd_shift.summary`: the students of the shifted
    teacher; None without them) and ``verdict`` (the numbers in one paragraph)."""
    epoch = int(np.max(ds["epoch"].values))
    K = int(ds.attrs["data"]["K"])
    rows = [_run(ds, p, epoch, K) for p in read.points(ds)]
    summaries = {
        str(m): method_summary([r for r in rows if r["method"] == m])
        for m in ds["method"].values
        if any(r["method"] == m for r in rows)
    }
    teacher = dict(ds.attrs["data"]["teacher"])
    teacher["accuracy"] = 1 - teacher["test_error"]
    logits = np.asarray(ds["teacher_train_logits"].values)  # its mean logit: the common mode
    teacher["mean_logit"] = float(logits.mean())  # a logit loss hands on to a shared head
    teacher["mean_logit_sd"] = float(logits.mean(axis=1).std())
    summary = {
        "data": ds.attrs["data"]["name"],
        "teacher": teacher,
        "epochs": epoch,
        "seeds": len({r["seed"] for r in rows}),
        "methods": summaries,
        "ordering": ordering(rows, summaries),
        "shift": dhkd_shift.summary(rows, summaries, teacher["mean_logit"]),
    }
    summary["verdict"] = verdict(summary)
    return _output.jsonable({"runs": rows, "summary": summary})


def verdict(out: dict) -> str:
    """The accuracies, the ordering's paired differences and whether it reproduces (`out`:
    the comparison's summary)."""
    methods, order = out["methods"], out["ordering"]
    diff = order["differences"]
    accuracy = ", ".join(f"{m} {plus_minus(s['accuracy'], 100, 2)}" for m, s in methods.items())
    common = ", ".join(f"{m} {plus_minus(s['head1']['common_mode'])}" for m, s in methods.items())
    parts = [
        f"{out['data']}, {out['seeds']} seeds, {out['epochs']} epochs: test accuracy % (mean ± "
        f"s.e.) {accuracy}; teacher {100 * out['teacher']['accuracy']:.2f}",
        f"CE head common-mode fraction {common}",
        f"(c) - (a) {plus_minus_paired(diff['single_minus_ce'])} points, (c) - (b) "
        f"{plus_minus_paired(diff['single_minus_binary_kl'])} (paired by seed)",
        f"best: {order['best']} (of (a)-(d): {order['best_of_a_to_d']})",
    ]
    failed = [k for k, v in order["holds"].items() if not v and k != "dual_best_of_a_to_d"]
    said = "yes" if order["reproduces"] else "no (" + ", ".join(failed) + " fails)"
    unresolved = [k for k, v in order["resolved"].items() if not v]
    if unresolved:
        said += "; not resolved (paired differences within 2 s.e.): " + ", ".join(unresolved)
    return "; ".join(parts) + f". The abstract's ordering reproduces: {said}"


# ----------------------------------------------------------------------------------------
# The figure.

GEOMETRY = (  # key, marker, filled, label
    ("common_mode", "o", True, "common-mode |mean w_k| / max |w_k|"),
    ("etf_uncentred", "s", True, "ETF error of W W$^T$"),
    ("etf_centred", "s", False, "ETF error, centred W"),
)


def draw(comparisons: dict[str, dict]):
    """One row per dataset: (a) test accuracy per method, mean ± s.e. over seeds (dots:
    the seeds; dashed: the teacher); (b) the CE head's common-mode fraction and ETF errors
    (mean ± s.e.; crosses: the second head's common mode). Then one row per dataset with
    shifted-teacher students (`dhkd_shift.levels_panel`, `dhkd_shift.centring_panel`): the
    heads' mean logits and the CE head's common row against the shift. Returns the open
    figure."""
    import matplotlib.pyplot as plt

    shifted = {
        n: c["summary"]["shift"] for n, c in comparisons.items() if c["summary"].get("shift")
    }
    rows = len(comparisons) + len(shifted)
    fig, axes = plt.subplots(
        rows, 2, figsize=(7.0, 2.2 * rows + 0.4), layout="constrained", squeeze=False
    )
    letters = "abcdefghijklmnop"
    for i, (name, comparison) in enumerate(comparisons.items()):
        comparison = comparison["summary"] | {"runs": comparison["runs"]}
        _accuracy_panel(axes[i, 0], comparison)
        _geometry_panel(axes[i, 1], comparison)
        axes[i, 0].set_title(f"({letters[2 * i]}) {name}: test accuracy (head 1)", loc="left")
        axes[i, 1].set_title(f"({letters[2 * i + 1]}) {name}: the CE head's geometry", loc="left")
    handles, labels = axes[len(comparisons) - 1, 1].get_legend_handles_labels()
    for i, (name, shift) in enumerate(shifted.items(), start=len(comparisons)):
        dhkd_shift.levels_panel(axes[i, 0], shift)
        dhkd_shift.centring_panel(axes[i, 1], shift)
        axes[i, 0].set_title(f"({letters[2 * i]}) {name}: mean logits, shifted teacher", loc="left")
        axes[i, 1].set_title(f"({letters[2 * i + 1]}) {name}: the CE head's common row", loc="left")
        more = axes[i, 0].get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    fig.legend(handles, labels, loc="outside lower center", ncol=4, frameon=False)
    return fig


def _methods(comparison: dict) -> list[str]:
    return list(comparison["methods"])


def _labels(methods: list[str]) -> list[str]:
    return [dhkd_shift.display(m, LABELS) for m in methods]


def _accuracy_panel(ax, comparison: dict) -> None:
    methods = _methods(comparison)
    for x, m in enumerate(methods):
        seeds = [100 * r["accuracy"] for r in comparison["runs"] if r["method"] == m]
        jitter = np.linspace(-0.15, 0.15, len(seeds)) if len(seeds) > 1 else [0.0]
        ax.plot(x + np.asarray(jitter), seeds, ".", color="0.7", ms=3, zorder=1)
        stats = comparison["methods"][m]["accuracy"]
        ax.errorbar(
            x, 100 * stats["mean"], yerr=100 * (stats["se"] or 0), fmt="o", color="C0",
            capsize=3, zorder=2,
        )  # fmt: skip
    ax.axhline(100 * comparison["teacher"]["accuracy"], ls="--", color="0.4", lw=0.8)
    ax.set_xticks(range(len(methods)), _labels(methods), rotation=30, ha="right")
    ax.set(ylabel="test accuracy (%)", xlabel="student")


def _geometry_panel(ax, comparison: dict) -> None:
    methods = _methods(comparison)
    for j, (key, marker, filled, label) in enumerate(GEOMETRY):
        means = [comparison["methods"][m]["head1"][key] for m in methods]
        ax.errorbar(
            np.arange(len(methods)) + 0.12 * (j - 1), [s["mean"] for s in means],
            yerr=[s["se"] or 0 for s in means], fmt=marker, color=f"C{j + 1}",
            mfc=None if filled else "white", capsize=2, label=label,
        )  # fmt: skip
    second = [comparison["methods"][m]["head2"] for m in methods]
    xs = [x for x, s in enumerate(second) if s is not None]
    ax.plot(
        [x - 0.12 for x in xs], [second[x]["common_mode"]["mean"] for x in xs], "x",
        color="C1", ms=5, label="common-mode of head 2",
    )  # fmt: skip
    ax.set_xticks(range(len(methods)), _labels(methods), rotation=30, ha="right")
    ax.set(ylim=(0, None), ylabel="fraction, ETF error", xlabel="student")


def plot(ds: xr.Dataset | None, comparison: dict, path) -> Path:
    """`draw` for this one store, written to `path`; `ds` is not read."""
    import matplotlib.pyplot as plt

    with plt.rc_context({"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 7}):
        fig = draw({comparison["summary"]["data"]: comparison})
    return write_figure(fig, path)
