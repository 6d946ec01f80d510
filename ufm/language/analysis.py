"""The paper's analysis of a language study: each NC metric against validation loss.

Wu & Papyan ask whether the neural-collapse properties that develop with scale go with
generalization (validation loss), and whether they do so independently of scale (across
seeds of one size). `correlations(ds)` gives the Spearman rank correlation of every metric
with validation loss across all models and across the seeds of the study's `seeded`
configuration, each with its p-value and a reading:

  ``collapse goes with lower loss``: the correlation has the sign that "more collapse,
  lower validation loss" predicts, with p < ALPHA;
  ``collapse goes with higher loss``: the opposite sign, p < ALPHA;
  ``no relation detected``: p >= ALPHA (or too few models).

A metric's collapse direction (`COLLAPSE_SIGN`): +1 where it falls as features collapse
(NC1, CDNV, equinorm, equiangularity, GNC2, NC3, UNC3, |interference - ETF value|), -1
where it rises (NC4).
"""

import itertools
import math
from typing import Any

import numpy as np
import scipy.stats
import xarray as xr

ALPHA = 0.05
COLLAPSE_SIGN = {
    "cdnv_lc": 1,
    "nc1": 1,
    "nc2_equinorm": 1,
    "nc2_equiangularity": 1,
    "interference_gap": 1,
    "gnc2": 1,
    "nc3": 1,
    "unc3": 1,
    "nc4": -1,
}
LABELS = {
    "cdnv_lc": "NC1: CDNV (the paper's)",
    "nc1": "NC1: Tr(Sigma_W Sigma_B^+)/K",
    "nc2_equinorm": "NC2 equinorm",
    "nc2_equiangularity": "NC2 equiangularity",
    "interference_gap": "|interference + 1/(V-1)|",
    "gnc2": "GNC2 (uniformity)",
    "nc3": "NC3 self-duality",
    "unc3": "UNC3 uniform duality",
    "nc4": "NC4 (validation)",
}


def metric_table(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """{metric: values per model} for the metrics of `COLLAPSE_SIGN`; the interference gap
    is |mean cosine of centred means + 1/(K-1)| with K the classes seen."""
    K = ds.attrs["study"]["vocab_size"]
    out = {}
    for name in COLLAPSE_SIGN:
        if name == "interference_gap":
            cos = ds["metrics"].sel(metric="nc2_cos_mean").values
            out[name] = np.abs(cos + 1 / (K - 1))
        else:
            out[name] = ds["metrics"].sel(metric=name).values
    return out


EXACT_UP_TO = 8  # samples: below this the p-value enumerates all n! orderings


def spearman(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Spearman's rho and its two-sided p-value over the finite pairs (None where undefined):
    exact (every permutation of y) for n <= EXACT_UP_TO, where the t approximation is poor
    (it gives p = 0 at |rho| = 1), else scipy's."""
    keep = np.isfinite(x) & np.isfinite(y)
    n = int(keep.sum())
    if n < 3 or _constant(x[keep]) or _constant(y[keep]):
        return {"rho": None, "p": None, "n": n}
    result = scipy.stats.spearmanr(x[keep], y[keep])
    rho, p = float(result.statistic), float(result.pvalue)
    if n <= EXACT_UP_TO:
        p = _exact_p(x[keep], y[keep], rho)
    return {"rho": rho if math.isfinite(rho) else None, "p": p if math.isfinite(p) else None,
            "n": n}  # fmt: skip


def _constant(values: np.ndarray) -> bool:
    """Equal up to rounding (rho is then undefined)."""
    return bool(np.ptp(values) <= 1e-12 * np.max(np.abs(values)))


def _exact_p(x: np.ndarray, y: np.ndarray, rho: float) -> float:
    """P(|rho'| >= |rho|) over all orderings of y (ties keep their average ranks)."""
    rx, ry = scipy.stats.rankdata(x), scipy.stats.rankdata(y)
    orders = np.array(list(itertools.permutations(range(len(y)))))
    permuted = ry[orders]
    rx, permuted = rx - rx.mean(), permuted - permuted.mean(axis=1, keepdims=True)
    rhos = permuted @ rx / (np.linalg.norm(rx) * np.linalg.norm(permuted, axis=1))
    return float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))


def reading(result: dict[str, Any], sign: int) -> str:
    if result["rho"] is None or result["p"] is None or result["n"] < 4:
        return "too few models"
    if result["p"] >= ALPHA:
        return "no relation detected"
    if np.sign(result["rho"]) == sign:
        return "collapse goes with lower loss"
    return "collapse goes with higher loss"


def seeded_models(ds: xr.Dataset) -> np.ndarray:
    """Indices of the models with the study's `seeded` configuration (every seed)."""
    seeded = ds.attrs["study"].get("seeded")
    if seeded is None:
        return np.array([], dtype=int)
    width, depth, steps, decay = seeded
    match = (
        (ds["width"].values == width) & (ds["depth"].values == depth)
        & (ds["steps"].values == steps) & np.isclose(ds["weight_decay"].values, decay)
    )  # fmt: skip
    return np.flatnonzero(match)


def correlations(ds: xr.Dataset) -> dict[str, Any]:
    """Per metric: the correlation with validation loss across all models (``all``), across
    the seeds of one configuration (``seeds``), across the sizes at each training length
    (``steps``: {steps: result}, the seeds' extra models left out), and with the models'
    size (``scale``: rank correlation with width^2 x depth, the blocks' parameters),
    each with its reading."""
    done = ds["done"].values.astype(bool)
    loss = np.where(done, ds["validation_loss"].values, np.nan)
    size = (ds["width"].values ** 2 * ds["depth"].values).astype(float)
    seeds = seeded_models(ds)
    grid = ds["seed"].values == ds.attrs["study"]["seeds"][0]
    lengths = sorted(set(ds["steps"].values.tolist()))
    out = {}
    for name, values in metric_table(ds).items():
        values = np.where(done, values, np.nan)
        sign = COLLAPSE_SIGN[name]
        across = spearman(values, loss)
        within = spearman(values[seeds], loss[seeds])
        by_steps = {}
        for steps in lengths:
            pick = grid & (ds["steps"].values == steps)
            result = spearman(values[pick], loss[pick])
            by_steps[str(steps)] = result | {"reading": reading(result, sign)}
        out[name] = {
            "all": across | {"reading": reading(across, sign)},
            "seeds": within | {"reading": reading(within, sign)},
            "steps": by_steps,
            "scale": spearman(values, size),
        }
    return out
