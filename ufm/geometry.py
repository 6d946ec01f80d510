"""Exact neural-collapse geometries and scale-free comparisons of Gram matrices.

Constructors return class vectors as the ROWS of a (K, d) matrix, the shape of a classifier
W; for class means pass the transpose (Hbar has shape (d, K)).

    P_K  = I_K - 11^T / K                      centering(K)
    ETF  : rows of norm `scale`, Gram = scale^2 K/(K-1) P_K       simplex_etf(K, d)
    OF   : orthonormal rows times `scale`, Gram = scale^2 I_K     orthogonal_frame(K, d)

A simplex ETF needs d >= K-1 and an orthogonal frame d >= K (Papyan, Han, Donoho 2020,
PNAS 117(40), Def. of the simplex ETF; the OF is the bias-free MSE geometry).

dtype flows from `scale` (a python float gives the default float dtype) unless `dtype`
is given; nothing here enables x64. Every function is jitted: sizes K, d and dtype are
static python values, `scale` may be traced (a sweep over it never recompiles).
"""

import functools
import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from .errors import InputError


def _check_K(K: int, minimum: int) -> None:
    if not isinstance(K, int) or K < minimum:
        raise InputError(f"K must be a python int >= {minimum}, got {K!r}")


def _scale_array(scale: ArrayLike, dtype: DTypeLike | None) -> Array:
    """`scale` as a floating array: of `dtype` if given, else of its own (or default) float."""
    scale = jnp.asarray(scale, dtype=dtype)
    if not jnp.issubdtype(scale.dtype, jnp.floating):
        scale = scale.astype(jnp.result_type(float))
    return scale


@functools.partial(jax.jit, static_argnames=("K", "dtype"))
def centering(K: int, *, dtype: DTypeLike | None = None) -> Array:
    """The (K, K) centering projector P_K = I_K - 11^T / K (rank K-1, P_K 1 = 0)."""
    _check_K(K, 1)
    return jnp.eye(K, dtype=dtype) - jnp.full((K, K), 1 / K, dtype=dtype)


def _helmert(K: int, dtype: DTypeLike | None) -> Array:
    """(K, K-1) orthonormal basis of the complement of 1 (the Helmert contrasts).

    Column j = 1..K-1 is (1, ..., 1, -j, 0, ..., 0) / sqrt(j (j+1)) with j ones.
    """
    i = jnp.arange(K, dtype=dtype)[:, None]
    j = jnp.arange(1, K, dtype=dtype)[None, :]
    column = jnp.where(i < j, 1.0, jnp.where(i == j, -j, 0.0))
    return column / jnp.sqrt(j * (j + 1.0))


@functools.partial(jax.jit, static_argnames=("K", "d", "dtype"))
def simplex_etf(
    K: int, d: int | None = None, scale: ArrayLike = 1.0, *, dtype: DTypeLike | None = None
) -> Array:
    """A (K, d) simplex ETF: rows of norm `scale`, pairwise cosines -1/(K-1).

        Gram = E E^T = scale^2 * K/(K-1) * P_K = scale^2 * etf_gram(K)

    d defaults to K. For d >= K it is Papyan's standard ETF sqrt(K/(K-1)) P_K (a symmetric
    K x K block) padded with d-K zero columns; for d = K-1 it is sqrt(K/(K-1)) times the
    Helmert basis of the complement of 1. Rows sum to zero in both cases, so the ETF is
    already centred. Raises ValueError if d < K-1 or K < 2.
    """
    _check_K(K, 2)
    d = K if d is None else d
    if not isinstance(d, int) or d < K - 1:
        raise InputError(f"a simplex ETF of K={K} classes needs d >= K-1 = {K - 1}, got d={d!r}")
    scale = _scale_array(scale, dtype)
    dtype = scale.dtype
    if d == K - 1:
        block = _helmert(K, dtype)
    else:
        block = jnp.pad(centering(K, dtype=dtype), ((0, 0), (0, d - K)))
    return block * (scale * math.sqrt(K / (K - 1)))


@functools.partial(jax.jit, static_argnames=("K", "d", "dtype"))
def orthogonal_frame(
    K: int, d: int | None = None, scale: ArrayLike = 1.0, *, dtype: DTypeLike | None = None
) -> Array:
    """A (K, d) orthogonal frame [I_K, 0] * scale: Gram = scale^2 I_K.

    d defaults to K; raises ValueError if d < K.
    """
    _check_K(K, 1)
    d = K if d is None else d
    if not isinstance(d, int) or d < K:
        raise InputError(f"an orthogonal frame of K={K} classes needs d >= K, got d={d!r}")
    scale = _scale_array(scale, dtype)
    return jnp.eye(K, d, dtype=scale.dtype) * scale


@functools.partial(jax.jit, static_argnames=("K", "dtype"))
def etf_gram(K: int, *, dtype: DTypeLike | None = None) -> Array:
    """The unit-diagonal simplex-ETF Gram K/(K-1) P_K: ones on the diagonal, -1/(K-1) off it."""
    _check_K(K, 2)
    return centering(K, dtype=dtype) * (K / (K - 1))


@functools.partial(jax.jit, static_argnames=("K", "dtype"))
def of_gram(K: int, *, dtype: DTypeLike | None = None) -> Array:
    """The orthogonal-frame Gram I_K."""
    _check_K(K, 1)
    return jnp.eye(K, dtype=dtype)


def _norm(X: Array) -> Array:
    """||X||_F with gradient 0 (not nan) at X = 0."""
    sq = jnp.sum(X**2)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _unit(X: Array) -> Array:
    """X / ||X||_F, and the zero matrix for X = 0 (no nan, also in gradients)."""
    norm = _norm(X)
    return X / jnp.where(norm > 0, norm, 1.0)


@jax.jit
def gram_distance(G: ArrayLike, target: ArrayLike) -> Array:
    """Scale-free distance || G/||G||_F - T/||T||_F ||_F, in [0, 2].

    Zero iff G is a positive multiple of T. A zero matrix normalizes to zero, so G = 0
    gives 1.0 (for T != 0): the trivial solution is not called collapsed.
    With T = P_K this is Tirer et al. 2023's NC2 (Sec. 5) and rhubarbwu's
    `simplex_etf_error`, since ||P_K||_F = sqrt(K-1). Works for any two arrays of the same
    shape (NC3 uses it on W^T and the class means). Gradients are finite everywhere,
    including at G = 0 and at the minimum.
    """
    G, target = jnp.asarray(G), jnp.asarray(target)
    if G.shape != target.shape:
        raise InputError(f"G and target must have the same shape, got {G.shape} and {target.shape}")
    return _norm(_unit(G) - _unit(target))
