"""Gradient conflict at symmetric collapse points of the single head (derivations/dhkd_geometry.py).

A symmetric collapse point (d >= K): W's rows a u_k + w0 e and the class means b u_c + h0 e,
with u_k a unit simplex ETF in the first K-1 coordinates and e the K-th: margin scale a b,
a common row w0 on the head and a common feature component h0 (post-ReLU features have one).
There the gradients of CE and of the logit loss on W and on H are G H^T/N and W^T G/N with
class-mean logit gradients G_ce = x P (P = I - J/K: CE sums to zero) and G_l = y P + z J, and
H^T H, W W^T in span{P, J}: both full-batch inner products are proportional to x y (K - 1),
so cos(W) and cos(H) have the same sign at every such point (our argument, checked here
over a grid): the full-batch conflict cannot be "in the classifier but not in the backbone"
there. Per row of W and per sample they can differ; both are reported.
"""

import itertools

import numpy as np

from ... import geometry
from . import gradients


def collapse_point(problem, a: float, b: float, w0: float, h0: float) -> dict[str, np.ndarray]:
    """The symmetric collapse point (module doc) in the problem's dimensions (d >= K)."""
    K, d = problem.K, problem.d
    U = np.zeros((K, d))
    U[:, : K - 1] = np.asarray(geometry.simplex_etf(K, K - 1))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    e = np.zeros(d)
    e[K - 1] = 1.0
    W = a * U + w0 * e[None, :]
    Hbar = b * U.T + h0 * e[:, None]
    params = {"W": W, "H": Hbar[:, problem.labels]}
    if problem.heads == "dual":
        params["W2"] = W.copy()
    for key in ("b", "b2") if problem.bias != "none" else ():
        if key == "b" or problem.heads == "dual":
            params[key] = np.zeros(K)
    return params


GRID = {
    "a": (0.5, 2.0),  # head scale
    "b": (0.5, 3.0),  # feature scale (margin ~ a b K/(K-1))
    "w0": (-1.0, 0.0, 1.0),  # common row of the head
    "h0": (0.0, 1.0),  # common feature component
}


def survey(problem, grid: dict | None = None) -> list[dict]:
    """The cosines at every point of the grid of collapse points."""
    grid = GRID if grid is None else grid
    rows = []
    for a, b, w0, h0 in itertools.product(*grid.values()):
        cos = gradients.cosines(problem, collapse_point(problem, a, b, w0, h0))
        rows.append({"a": a, "b": b, "w0": w0, "h0": h0} | cos)
    return rows
