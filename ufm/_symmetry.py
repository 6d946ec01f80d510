"""Continuous symmetries of a model's parameters: the tangent vectors of their orbits.

A model whose loss is unchanged when an orthogonal matrix Q in O(d) acts on a feature axis,

    left -> left Q^T  (the factor that reads the d features: W, or the next layer's weight)
    right -> Q right  (the factor that writes them: H, or the previous layer's weight),

has, at every point, an orbit {(left Q^T, right Q^T)} whose tangent space is spanned by the
infinitesimal actions of a basis of skew-symmetric A = E_ij - E_ji (i < j):

    d left = -left A,    d right = A right.

At a critical point the Hessian vanishes on these vectors (the gradient is equivariant, and
zero there), so they are zero eigenvalues the symmetry explains. Their rank is the orbit's
dimension: for a point whose d-dimensional vectors (the columns of right and the rows of left)
span r dimensions it is d(d-1)/2 - (d-r)(d-r-1)/2 (the rotations of the other d - r
dimensions fix the point). `ufm.landscape` counts them apart from unexplained zeros.
"""

import itertools

import numpy as np


def skew_basis(d: int, within: np.ndarray | None = None) -> list[np.ndarray]:
    """The d(d-1)/2 generators E_ij - E_ji (i < j) of so(d), as (d, d) arrays; with
    `within` (d, r) with orthonormal columns, the r(r-1)/2 generators P (E_ij - E_ji) P^T of
    the rotations that act only inside its span (and fix its orthogonal complement)."""
    P = np.eye(d) if within is None else np.asarray(within, dtype=float)
    r = P.shape[1]
    out = []
    for i, j in itertools.combinations(range(r), 2):
        out.append(np.outer(P[:, i], P[:, j]) - np.outer(P[:, j], P[:, i]))
    return out


def rotation_tangents(
    params: dict, left: str | None, right: str | None, within: np.ndarray | None = None
) -> list[dict]:
    """The tangent vectors at `params` of O(d) acting on one feature axis (module docstring):
    ``params[left] -> params[left] Q^T`` and ``params[right] -> Q params[right]``, every other
    parameter unchanged; `left` or `right` None where that side is not a parameter (a fixed
    classifier). `within`: an orthonormal (d, r) basis of the subspace the rotations act on
    (the rest is fixed), default all of R^d. One dict of numpy arrays like `params` per
    generator (host data: the tangents feed linear algebra, not a traced computation)."""
    params = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    d = params[right].shape[0] if right is not None else params[left].shape[1]
    zeros = {k: np.zeros_like(v) for k, v in params.items()}
    out = []
    for A in skew_basis(d, within):
        tangent = dict(zeros)
        if left is not None:
            tangent[left] = -params[left] @ A
        if right is not None:
            tangent[right] = A @ params[right]
        out.append(tangent)
    return out


def orbit_dimension(d: int, rank: int) -> int:
    """The dimension of the O(d)-orbit of a point whose d-dimensional vectors span `rank`
    dimensions: d(d-1)/2 - (d-r)(d-r-1)/2."""
    free = d - rank
    return d * (d - 1) // 2 - free * (free - 1) // 2
