"""`ufm experiment linguistic`: Linguistic Collapse (Wu & Papyan, NeurIPS 2024), small.

Causal transformers of three widths and two depths, each trained for two lengths, plus
five more seeds of one configuration, on the docstring corpus (V = 1024 word tokens);
each model's last hidden states measured over next-token classes (`measure`), then the
paper's analysis (`analysis.correlations`): every NC metric against validation loss across
all models and across the seeds of one size. `--quick`: two tiny models on a small
vocabulary, a few hundred steps (about a minute on 2 cores).
"""

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ufm.language import analysis
from ufm.language.measure import finite_or_none
from ufm.language.study import Study
from ufm.language.study import run as run_study

NAME = "linguistic"
SUMMARY = "Wu & Papyan 2024: NC of small causal language models against validation loss"
QUICK = Study(
    vocab_size=512, widths=(16, 32), depths=(1,), steps=(100, 250), seeded=None,
    extra_seeds=(), context=32, batch=16, warmup=20, measure_tokens=20_000,
)  # fmt: skip


def setup(quick: bool) -> Study:
    return QUICK if quick else Study()


def run(out=None, *, quick: bool = False, resume: bool = False, progress=True):
    """Train and measure the study into `out`, then compare: (Dataset, comparison)."""
    ds = run_study(setup(quick), out, resume=resume, progress=progress)
    return ds, compare(ds)


def models(ds: xr.Dataset) -> list[dict[str, Any]]:
    """One row per model: settings, losses, epochs, the analysis' metrics, time."""
    table = analysis.metric_table(ds)
    rows = []
    for i in range(ds.sizes["model"]):
        row = {k: ds[k].values[i].item() for k in ("width", "depth", "steps", "weight_decay",
                                                   "seed")}  # fmt: skip
        row |= {
            "epochs": float(ds["epochs"].values[i]),
            "validation_loss": finite_or_none(ds["validation_loss"].values[i]),
            "train_loss": finite_or_none(ds["train_loss"].values[i]),
            "seconds": finite_or_none(ds["seconds"].values[i]),
            "done": bool(ds["done"].values[i]),
        }
        row |= {name: finite_or_none(values[i]) for name, values in table.items()}
        rows.append(row)
    return rows


def compare(ds: xr.Dataset) -> dict[str, Any]:
    """The models, the correlations and a summary (strict JSON: None where undefined)."""
    found = analysis.correlations(ds)
    done = int(ds["done"].values.sum())
    losses = ds["validation_loss"].values[ds["done"].values.astype(bool)]
    summary = {
        "models": f"{done} of {ds.sizes['model']} trained",
        "data": _data_line(ds.attrs["data"]),
        "validation_loss": f"{np.min(losses):.3f} .. {np.max(losses):.3f} nats"
        if losses.size
        else "none",
    }
    if ds.attrs.get("bayes_loss") is not None:
        summary["bayes_loss"] = f"{ds.attrs['bayes_loss']:.4f} nats"
    for name, result in found.items():
        a, s = result["all"], result["seeds"]
        lengths = "; ".join(f"{k} steps: {_rho(v)}" for k, v in result["steps"].items())
        summary[name] = (
            f"all: {_rho(a)} ({a['reading']}); seeds: {_rho(s)} ({s['reading']}); {lengths}"
        )
    return {
        "experiment": NAME,
        "summary": summary,
        "correlations": found,
        "models": models(ds),
        "data": ds.attrs["data"],
        "study": ds.attrs["study"],
        "bayes_loss": ds.attrs.get("bayes_loss"),
    }


def _rho(result: dict[str, Any]) -> str:
    if result["rho"] is None:
        return f"undefined (n={result['n']})"
    return f"rho {result['rho']:+.2f}, p {result['p']:.2g}, n={result['n']}"


def _data_line(data: dict[str, Any]) -> str:
    if data["source"] == "docstrings":
        return (
            f"docstrings corpus {data['content_hash'][:12]}, V={data['vocab_size']}, "
            f"{data['train_tokens']} train / {data['validation_tokens']} validation tokens"
        )
    return f"synthetic, V={data['vocab_size']}, entropy rate {data['entropy_rate']:.4f}"


def plot(ds: xr.Dataset, comparison: dict[str, Any], path) -> Path:
    from ufm.networks.experiments import write_figure

    return write_figure(draw(comparison), path)


MARKERS = {1: "o", 2: "s", 3: "D", 4: "^"}


def draw(comparison: dict[str, Any]):
    """One panel per metric against validation loss: colour by width, marker by depth,
    hollow for the shorter training; the seeds of one configuration ringed in black."""
    import matplotlib.pyplot as plt

    rows = [r for r in comparison["models"] if r["done"]]
    names = list(analysis.COLLAPSE_SIGN)
    fig, axes = plt.subplots(3, 3, figsize=(7.6, 6.4), layout="constrained")
    widths = sorted({r["width"] for r in rows})
    colors = dict(zip(widths, plt.cm.viridis(np.linspace(0.1, 0.85, len(widths))), strict=True))
    longest = max((r["steps"] for r in rows), default=0)
    seeded = comparison["study"].get("seeded")
    for ax, name in zip(axes.flat, names, strict=True):
        for r in rows:
            if r[name] is None:
                continue
            c = colors[r["width"]]
            full = r["steps"] == longest
            ax.scatter(r["validation_loss"], r[name], marker=MARKERS.get(r["depth"], "o"),
                       s=26, facecolors=c if full else "none", edgecolors=c, lw=1.0)  # fmt: skip
            if seeded is not None and [r["width"], r["depth"], r["steps"]] == seeded[:3]:
                ax.scatter(r["validation_loss"], r[name], marker="o", s=70, facecolors="none",
                           edgecolors="black", lw=0.6)  # fmt: skip
        result = comparison["correlations"][name]["all"]
        rho = "" if result["rho"] is None else f"\nrho {result['rho']:+.2f} across models"
        ax.set_title(analysis.LABELS[name] + rho, fontsize=8)
        ax.set_yscale("log" if _positive(rows, name) else "linear")
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("validation loss (nats)", fontsize=8)
    handles = [plt.Line2D([], [], ls="", marker="o", color=colors[w], label=f"width {w}")
               for w in widths]  # fmt: skip
    for depth in sorted({r["depth"] for r in rows}):
        marker = MARKERS.get(depth, "o")
        handles.append(
            plt.Line2D([], [], ls="", marker=marker, color="gray", label=f"depth {depth}")
        )
    fig.legend(handles=handles, loc="outside right center", fontsize=7, frameon=False)
    fig.suptitle(_data_line(comparison["data"]) + "; hollow: shorter training", fontsize=9)
    return fig


def _positive(rows, name) -> bool:
    values = [r[name] for r in rows if r[name] is not None]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 20
