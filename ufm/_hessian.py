"""The bottom of the Hessian spectrum at one point, with the symmetry's zeros counted apart.

Hessian-vector products are forward-over-reverse (the jvp of the gradient), jitted, on the
parameter pytree; flattened with `jax.flatten_util.ravel_pytree` for the linear algebra. Up
to `DENSE_MAX` unknowns the whole Hessian is built (``jax.hessian``) and diagonalized
(``numpy.linalg.eigvalsh``: every eigenvalue, so the counts are exact); above, Lanczos
(``scipy.sparse.linalg.eigsh``, which='SA') finds the bottom of the spectrum matrix-free.

The symmetry's zeros: the model's `symmetry_tangents` span the tangent space T of the orbit
through the point (its rank r is the orbit's dimension). At a critical point the Hessian is
zero on T; the spectrum reported is that of the Hessian restricted to the orthogonal
complement of T (dense: C^T H C with C an orthonormal basis of it; Lanczos: P H P + s Q Q^T
with P = I - Q Q^T and a shift s above the whole spectrum, so T's r directions sit at the top
and out of the way). Zero eigenvalues left in the complement are unexplained.

Zero: |eigenvalue| <= zero_rtol x `problem.weight_decay()` (default `ZERO_RTOL` = 1e-4). The
weight decay is the curvature the penalties give every direction; a nondegenerate critical
point's eigenvalues are of that order or larger, while the Hessian of a point gtol-close to
a critical point (default gtol 1e-9, a relative distance) is off by about ||D^3 f|| gtol
||params||, many decades below 1e-4 lambda on the models here.
"""

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

DENSE_MAX = 2000  # unknowns: below, the dense Hessian (exact counts); above, Lanczos
ZERO_RTOL = 1e-4  # |eigenvalue| <= ZERO_RTOL x weight decay counts as zero
TANGENT_RTOL = 1e-6  # tangent singular values below this x the largest: not a direction
LANCZOS_MAX = 64  # Lanczos widens its window up to this many eigenvalues to count them


@dataclasses.dataclass(frozen=True)
class Spectrum:
    """The Hessian at one point, the orbit's tangent space taken out.

    index: negative eigenvalues (< -zero_tol): the saddle index. index_complete: False when
        Lanczos's widest window held only negative values (index is then a lower bound);
        zeros_complete likewise for unexplained_zeros.
    symmetry_zeros: the orbit's dimension (rank of the symmetry's tangents); 0 when the
        model has no symmetry or none is known (``symmetry``: "known", "none", "unknown").
    symmetry_residual: max ||H t|| over unit vectors t of the tangent space (~0 at a
        critical point; None without tangents).
    unexplained_zeros: zero eigenvalues (|.| <= zero_tol) in the complement of the orbit.
    smallest: the smallest eigenvalues in the complement, ascending (up to `bottom`).
    largest: the largest |eigenvalue| of the full Hessian. method: "dense" or "lanczos".
    """

    index: int
    index_complete: bool
    symmetry_zeros: int
    symmetry_residual: float | None
    unexplained_zeros: int
    zeros_complete: bool
    smallest: tuple[float, ...]
    largest: float
    zero_tol: float
    symmetry: str
    method: str
    unknowns: int

    def summary(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"smallest": list(self.smallest)}


@eqx.filter_jit
def _hvp(problem, params, tangent):
    return jax.jvp(jax.grad(problem.loss), (params,), (tangent,))[1]


@eqx.filter_jit
def _dense(problem, params):
    x, unravel = ravel_pytree(params)
    return jax.hessian(lambda y: problem.loss(unravel(y)))(x)


def tangent_basis(tangents: list | None, flatten, n: int, size: float) -> np.ndarray:
    """An orthonormal basis (n, r) of the span of `tangents`; r, its numerical rank, counts
    singular values above TANGENT_RTOL x max(size, 1) (`size`: ||params||, the scale of the
    solver's tolerance): a component the solver left at ~gtol ||params|| instead of 0 moves
    by that much under a rotation, and is not a direction of the orbit."""
    if not tangents:
        return np.zeros((n, 0))
    T = np.stack([flatten(t) for t in tangents], axis=1)
    U, s, _ = np.linalg.svd(T, full_matrices=False)
    return U[:, : int(np.sum(s > TANGENT_RTOL * max(size, 1.0)))]


def spectrum(
    problem,
    params: dict,
    tangents: list | None,
    bottom: int,
    zero_rtol: float,
    method: str = "auto",
) -> Spectrum:
    """The `Spectrum` of `problem.loss` at `params`; `tangents`: the symmetry's tangent
    pytrees ([] for none, None for unknown); `method`: "auto", "dense" or "lanczos"."""
    params = {k: jnp.asarray(v) for k, v in params.items()}
    keys = sorted(params)  # ravel_pytree's order for a dict
    sizes = np.cumsum([params[k].size for k in keys])[:-1]
    n = sum(params[k].size for k in keys)
    flatten = lambda tree: np.concatenate([np.ravel(np.asarray(tree[k], float)) for k in keys])
    unravel = lambda v: {
        k: jnp.asarray(part.reshape(params[k].shape), params[k].dtype)
        for k, part in zip(keys, np.split(np.asarray(v, dtype=float), sizes), strict=True)
    }
    Q = tangent_basis(tangents, flatten, n, float(np.linalg.norm(flatten(params))))
    zero_tol = float(zero_rtol * problem.weight_decay())
    if method == "auto":
        method = "dense" if n <= DENSE_MAX else "lanczos"
    if method == "dense":
        H = np.asarray(_dense(problem, params), dtype=float)
        H = (H + H.T) / 2
        matvec = lambda v: H @ v
    else:
        matvec = lambda v: flatten(_hvp(problem, params, unravel(v)))
    residual = None
    if Q.shape[1]:
        residual = float(np.max(np.linalg.norm(np.stack([matvec(q) for q in Q.T], 1), axis=0)))
    if method == "dense":
        values, largest = _dense_complement(H, Q)
        complete = True
    else:
        values, largest, complete = _lanczos_complement(matvec, Q, n, bottom, zero_tol)
    negative = int(np.sum(values < -zero_tol))
    zeros = int(np.sum(np.abs(values) <= zero_tol))
    return Spectrum(
        index=negative,
        index_complete=complete or negative < values.size,
        symmetry_zeros=int(Q.shape[1]),
        symmetry_residual=residual,
        unexplained_zeros=zeros,
        zeros_complete=complete or bool(values.size and values[-1] > zero_tol),
        smallest=tuple(float(v) for v in values[:bottom]),
        largest=largest,
        zero_tol=zero_tol,
        symmetry="unknown" if tangents is None else ("known" if tangents else "none"),
        method=method,
        unknowns=n,
    )


def _dense_complement(H: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, float]:
    """Every eigenvalue of H restricted to the complement of span(Q), and max |eig(H)|."""
    full = np.linalg.eigvalsh(H)
    largest = float(np.max(np.abs(full))) if full.size else 0.0
    if not Q.shape[1]:
        return full, largest
    C = np.linalg.qr(Q, mode="complete")[0][:, Q.shape[1] :]  # orthonormal complement
    return np.linalg.eigvalsh(C.T @ H @ C), largest


def _lanczos_complement(matvec, Q: np.ndarray, n: int, bottom: int, zero_tol: float):
    """The bottom of the spectrum of H on the complement of span(Q), by Lanczos: a window
    of `bottom` eigenvalues, doubled (up to LANCZOS_MAX) until it reaches a value above
    zero_tol, so that the negative and zero ones are all counted. Returns (values,
    max |eig(H)|, whether the window reached above zero)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    rng = np.random.default_rng(0)  # ARPACK's start vector: results repeat run to run
    H = LinearOperator((n, n), matvec=matvec, dtype=float)
    largest = float(abs(eigsh(H, k=1, which="LM", tol=1e-6, v0=rng.standard_normal(n))[0][0]))
    shift = 2 * largest + 1.0

    def restricted(v):
        v = np.asarray(v, dtype=float).ravel()
        along = Q.T @ v
        w = matvec(v - Q @ along)
        return w - Q @ (Q.T @ w) + shift * (Q @ along)

    operator = LinearOperator((n, n), matvec=restricted, dtype=float)
    room = n - Q.shape[1] - 1  # eigsh needs k < n; the shifted directions are not wanted
    k = max(1, min(bottom, room))
    start = rng.standard_normal(n)
    while True:
        values = np.sort(eigsh(operator, k=k, which="SA", v0=start, return_eigenvectors=False))
        complete = values[-1] > zero_tol
        if complete or k >= min(LANCZOS_MAX, room):
            return values, largest, bool(complete)
        k = min(2 * k, LANCZOS_MAX, room)
