"""The mixup UFM's columns: which pairs of classes are mixed, with which weights, and
their soft labels."""

from typing import Any

import numpy as np
import scipy.special

from ... import _checks
from ...errors import InputError


def parse_mix(mix) -> dict[str, Any]:
    """``{"kind": "fixed", "lams": (...)}``, ``{"kind": "quadrature", "alpha", "nodes"}`` or
    ``{"kind": "sampled", "alpha", "seed"}`` from a list of coefficients or a string."""
    bad = (
        f"mix must be coefficients in [0, 1] (a list or '0.25,0.5'), 'beta:ALPHA:NODES' or "
        f"'beta:ALPHA:sampled:SEED'; got {mix!r}"
    )
    if isinstance(mix, str) and mix.startswith("beta:"):
        parts = mix.split(":")
        try:
            alpha = float(parts[1])
            if len(parts) == 3:
                out = {"kind": "quadrature", "alpha": alpha, "nodes": int(parts[2])}
            elif len(parts) == 4 and parts[2] == "sampled":
                out = {"kind": "sampled", "alpha": alpha, "seed": int(parts[3])}
            else:
                raise InputError
        except (ValueError, IndexError):
            raise InputError(bad) from None
        _checks.real("mix alpha", alpha, positive=True)
        if out["kind"] == "quadrature":
            _checks.integer("mix nodes", out["nodes"], 1)
        else:
            _checks.integer("mix seed", out["seed"], 0)
        return out
    if isinstance(mix, str):
        try:
            mix = [float(x) for x in mix.split(",")]
        except ValueError:
            raise InputError(bad) from None
    try:
        lams = tuple(float(x) for x in np.atleast_1d(np.asarray(mix, dtype=float)))
    except (TypeError, ValueError):
        raise InputError(bad) from None
    if not lams or not all(0 <= x <= 1 for x in lams):
        raise InputError(bad)
    return {"kind": "fixed", "lams": lams}


def beta_quadrature(alpha: float, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes lam_j in (0, 1) and weights (summing to 1) that integrate polynomials of degree
    < 2 nodes exactly against Beta(alpha, alpha): Gauss-Jacobi with a = b = alpha - 1."""
    x, w = scipy.special.roots_jacobi(nodes, alpha - 1, alpha - 1)
    return (1 + x) / 2, w / w.sum()


def make_columns(K: int, n: int, spec: dict[str, Any]) -> dict[str, np.ndarray]:
    """Arrays c1, c2 (int), lam and count (multiplicity mu, summing to N = K n)."""
    if spec["kind"] == "sampled":
        rng = np.random.default_rng(spec["seed"])
        N = K * n
        c1 = np.repeat(np.arange(K), n)
        c2 = rng.integers(0, K, N)
        lam = rng.beta(spec["alpha"], spec["alpha"], N)
        return {"c1": c1, "c2": c2, "lam": lam, "count": np.ones(N)}
    if spec["kind"] == "fixed":
        lams = np.asarray(spec["lams"])
        weights = np.full(lams.size, 1 / lams.size)
    else:
        lams, weights = beta_quadrature(spec["alpha"], spec["nodes"])
    c1, c2, j = (a.ravel() for a in np.meshgrid(np.arange(K), np.arange(K), np.arange(lams.size),
                                                 indexing="ij"))  # fmt: skip
    return {"c1": c1, "c2": c2, "lam": lams[j], "count": n / K * weights[j]}


def soft_labels(K: int, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Y~ (K, M): lam e_c1 + (1 - lam) e_c2 per column."""
    eye = np.eye(K)
    return columns["lam"] * eye[:, columns["c1"]] + (1 - columns["lam"]) * eye[:, columns["c2"]]
