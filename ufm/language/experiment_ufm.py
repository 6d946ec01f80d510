"""`ufm experiment linguistic-ufm`: trained transformers beside the next-token UFM, on a
language where the UFM is the right model of the last layer.

On an order-1 synthetic language (`synthetic`, V = 128 tokens, Zipf exponent 1, entropy rate
at its default midpoint) the Bayes-optimal prediction of the token after position t depends
on the token at t only, so an optimal model's last hidden state is a function of one
context, the current token: the next-token UFM with the language's exact statistics
(``ufm.make("next-token", source="synthetic", ...)``, contexts = tokens, pi = the stationary
frequencies, targets = the transition rows) has the same classes, the same ambiguity and the
same imbalance. Transformers of widths 16-128 (all below or at V) are trained on the
language; the UFM is solved at d = each width (lambda_W = lambda_H = `LAMBDA`); both are
measured over next-token classes the same way (`measure` and `model_side.geometry`), and
`compare` sets them side by side.
"""

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ufm.language import experiment, model_side
from ufm.language.measure import finite_or_none
from ufm.language.study import Study
from ufm.language.study import run as run_study

NAME = "linguistic-ufm"
SUMMARY = "transformers on a synthetic order-1 language beside the next-token UFM's minimizer"
LAMBDA = 1e-3
VOCAB = 128
LANGUAGE = (("seed", 0), ("train_tokens", 400_000), ("validation_tokens", 50_000),
            ("zipf_exponent", 1.0))  # fmt: skip
FULL = Study(
    source="synthetic", vocab_size=VOCAB, synthetic=LANGUAGE, widths=(16, 32, 64, 128),
    depths=(1,), steps=(1500,), seeded=None, extra_seeds=(), context=64, batch=32,
    warmup=100, measure_tokens=50_000,
)  # fmt: skip
QUICK = Study(
    source="synthetic", vocab_size=VOCAB, synthetic=LANGUAGE, widths=(16, 32), depths=(1,),
    steps=(300,), seeded=None, extra_seeds=(), context=32, batch=16, warmup=20,
    measure_tokens=10_000,
)  # fmt: skip
COMPARED = ("cdnv_lc", "nc2_equinorm", "gnc2", "nc2_cos_mean", "nc3", "unc3")
GEOMETRY = ("classifier_norm_frequency_spearman", "mean_norm_frequency_spearman",
            "classifier_interference", "mean_interference")  # fmt: skip


def setup(quick: bool) -> Study:
    return QUICK if quick else FULL


def run(out=None, *, quick: bool = False, resume: bool = False, progress=True):
    ds = run_study(setup(quick), out, resume=resume, progress=progress)
    return ds, compare(ds)


def ufm_side(width: int, language: dict[str, Any]) -> dict[str, Any]:
    """The next-token UFM on the language's exact statistics at d = width: loss, bound,
    convergence and the geometry over next-token classes."""
    import ufm

    problem = ufm.make(
        "next-token", source="synthetic", K=VOCAB, d=width, lambda_W=LAMBDA, lambda_H=LAMBDA,
        zipf_exponent=language["zipf_exponent"], language_seed=language["seed"],
        entropy_rate=language.get("entropy_rate"),
    )  # fmt: skip
    solution = ufm.solve(problem, restarts=1, max_steps=40_000)
    H = np.asarray(problem.feature_columns(solution.params))
    W = np.asarray(solution.params["W"])
    found = model_side.geometry(H, W, np.asarray(problem.weights), np.asarray(problem.targets))
    return {
        "d": width,
        "loss": float(solution.loss),
        "converged": bool(solution.converged),
        "status": solution.status,
        "grad_norm": float(solution.grad_norm),
        "metrics": {k: found["metrics"][k] for k in COMPARED},
        "geometry": {k: found["geometry"][k] for k in GEOMETRY},
    }


def compare(ds: xr.Dataset) -> dict[str, Any]:
    """The study's comparison, plus per width the trained model's metrics and the UFM's.
    A UFM solve that did not converge is reported with its status and not compared."""
    base = experiment.compare(ds)
    language = ds.attrs["data"]
    rows = []
    for i in range(ds.sizes["model"]):
        if not bool(ds["done"].values[i]):
            continue
        width = int(ds["width"].values[i])
        model = ufm_side(width, language)
        metrics = dict(zip(ds["metric"].values.tolist(), ds["metrics"].values[i], strict=True))
        geometry = dict(zip(ds["quantity"].values.tolist(), ds["geometry"].values[i],
                            strict=True))  # fmt: skip
        trained = {k: finite_or_none(metrics[k]) for k in COMPARED}
        trained |= {k: finite_or_none(geometry[k]) for k in GEOMETRY}
        rows.append({
            "width": width,
            "validation_loss": float(ds["validation_loss"].values[i]),
            "trained": trained,
            "ufm": model if model["converged"] else {k: model[k] for k in
                                                     ("d", "converged", "status", "grad_norm")},
        })  # fmt: skip
    base["experiment"] = NAME
    base["ufm_lambda"] = LAMBDA
    base["widths"] = rows
    base["summary"] |= {f"d={r['width']}": _line(r) for r in rows}
    return base


def _line(row: dict[str, Any]) -> str:
    t, u = row["trained"], row["ufm"]
    if not u["converged"]:
        return f"UFM not converged ({u['status']})"
    parts = []
    for key, label in (("gnc2", "GNC2"), ("nc2_equinorm", "equinorm"),
                       ("classifier_interference", "W interference"),
                       ("classifier_norm_frequency_spearman", "rho(|w|, freq)")):  # fmt: skip
        ufm_value = u["metrics"].get(key, u["geometry"].get(key))
        parts.append(f"{label} {_fmt(t[key])} vs UFM {_fmt(ufm_value)}")
    return "trained vs UFM: " + ", ".join(parts)


def _fmt(value) -> str:
    return "undefined" if value is None else f"{value:.3g}"


def plot(ds: xr.Dataset, comparison: dict[str, Any], path) -> Path:
    from ufm.networks.experiments import write_figure

    return write_figure(draw(comparison), path)


def draw(comparison: dict[str, Any]):
    """One panel per quantity against the width: the trained transformers (dots) and the
    UFM's minimizer at d = width (line, crosses)."""
    import matplotlib.pyplot as plt

    rows = comparison["widths"]
    keys = ["gnc2", "nc2_equinorm", "unc3", "classifier_interference",
            "classifier_norm_frequency_spearman", "mean_norm_frequency_spearman"]  # fmt: skip
    fig, axes = plt.subplots(2, 3, figsize=(7.6, 4.2), layout="constrained")
    widths = [r["width"] for r in rows]
    for ax, key in zip(axes.flat, keys, strict=True):
        trained = [r["trained"][key] for r in rows]
        ax.plot(widths, [np.nan if v is None else v for v in trained], "o", label="transformer")
        ufm_values = [
            (r["ufm"]["metrics"] | r["ufm"]["geometry"]).get(key) if r["ufm"]["converged"]
            else None for r in rows
        ]  # fmt: skip
        ax.plot(widths, [np.nan if v is None else v for v in ufm_values], "x-", color="black",
                label="next-token UFM")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_title(key.replace("_", " "), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("width d", fontsize=8)
    axes.flat[0].legend(fontsize=7, frameon=False)
    fig.suptitle(experiment._data_line(comparison["data"]), fontsize=9)
    return fig
