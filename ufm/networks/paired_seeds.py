"""Statistics over seeds for experiments whose variants share each seed (the same initial
network and batch order): mean ± standard error, and differences paired by seed."""

from typing import Any

import numpy as np


def mean_se(values) -> dict[str, Any]:
    """{"mean", "se" (std with ddof 1 / sqrt n; None under 2 values), "n"} of the values
    that are not None."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return {"mean": None, "se": None, "n": 0}
    se = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else None
    return {"mean": float(x.mean()), "se": se, "n": int(x.size)}


def paired(rows: list[dict], a: str, b: str, key: str = "accuracy") -> dict[str, Any]:
    """Method a minus method b in `key`, paired by seed (the same initial network and batch
    order): mean and standard error of the per-seed differences, and ``resolved`` (the
    difference is more than twice its standard error)."""
    by = {m: {r["seed"]: r[key] for r in rows if r["method"] == m} for m in (a, b)}
    seeds = sorted(by[a].keys() & by[b].keys())
    stats = mean_se([by[a][s] - by[b][s] for s in seeds])
    resolved = stats["se"] is not None and abs(stats["mean"]) > 2 * stats["se"]
    return {"a": a, "b": b, "difference": stats["mean"], "se": stats["se"], "seeds": len(seeds)} | {
        "resolved": bool(resolved)
    }


def plus_minus(stats: dict, scale: float = 1.0, digits: int = 3) -> str:
    """ "mean ± se" of `mean_se`'s output, both times `scale`; "n/a" without values."""
    if stats["mean"] is None:
        return "n/a"
    se = "" if stats["se"] is None else f" ± {scale * stats['se']:.{digits}f}"
    return f"{scale * stats['mean']:.{digits}f}{se}"


def plus_minus_paired(difference: dict, scale: float = 100.0, digits: int = 2) -> str:
    """`plus_minus` of a `paired` difference (in percentage points by default)."""
    return plus_minus({"mean": difference["difference"], "se": difference["se"]}, scale, digits)
