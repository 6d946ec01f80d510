"""Pairwise class statistics, tiled: T x T tiles of class pairs, the upper triangle only.

Everything NC2 and CDNV need from the K x K matrices of centred-mean inner products, of
the classifier Gram W W^T and of W Mtilde is reduced tile by tile, so K x K is never held
at once (K = 50,000 classes is 2.5e9 pairs). Pair statistics run over ordered pairs
k != k' (the same means and variances as over k < k'), Gram errors over all K^2 entries;
a tile off the diagonal counts for itself and its mirror image, which halves the work.

Per tile the means and centred second moments are exact two-pass values; tiles are merged
with Chan et al.'s pairwise formula, so variances never come from raw sums of squares.
With `block=None` there is one tile: the function is then traceable, and is what
`summary` uses inside jit.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array


class PairInputs(NamedTuple):
    """Centred class means `Mt` (d, K) and what the pair reductions need besides; build
    it with `pair_inputs` so that the O(K d) per-class quantities are computed once."""

    Mt: Array  # (d, K) centred means
    sq: Array  # (K,) ||mu_k - mu_G||^2
    shift: Array  # (K,) Mt^T mu_G: the uncentred Gram is G + shift 1^T + 1 shift^T + ||mu_G||^2
    mu_G_sq: Array  # ||mu_G||^2
    variances: Array  # (m, K): sigma_k^2 under each CDNV variant
    W: Array | None  # (K, d) classifier, or None
    norms: Array  # Frobenius norms of Mt^T Mt, Hbar^T Hbar, W W^T, W Mt (1.0 where absent)


def pair_inputs(Mt: Array, mu_G: Array, variances: Array, W: Array | None) -> PairInputs:
    return PairInputs(
        Mt, jnp.sum(Mt**2, axis=0), Mt.T @ mu_G, mu_G @ mu_G, variances, W,
        gram_norms(Mt, mu_G, W),
    )  # fmt: skip


# CDNV variants reported by name: (name, row of `variances`, distance exponent p)
CDNV_VARIANTS = (("cdnv", 0, 1), ("cdnv_ddof1", 1, 1), ("cdnv_lc", 0, 2))


def gram_norms(Mt: Array, mu_G: Array, W: Array | None) -> Array:
    """||Mt^T Mt||_F, ||Hbar^T Hbar||_F, ||W W^T||_F and ||W Mt||_F from d x d products
    when K > d (||A^T B||_F^2 = <A A^T, B B^T>), from the K x K ones otherwise."""
    Hbar = Mt + mu_G[:, None]
    d, K = Mt.shape

    def fro(A: Array, B: Array) -> Array:  # ||A^T B||_F for A, B (d, K)
        if K > d:
            return jnp.sqrt(jnp.maximum(jnp.sum((A @ A.T) * (B @ B.T)), 0.0))
        return jnp.linalg.norm(A.T @ B)

    one = jnp.ones((), Mt.dtype)
    w = (one, one) if W is None else (fro(W.T, W.T), fro(W.T, Mt))
    return jnp.stack([fro(Mt, Mt), fro(Hbar, Hbar), *w])


def _tile(
    i0: Array, j0: Array, inp: PairInputs, T: int, riesz_s: float, cdnv: tuple
) -> dict[str, Array]:
    """Partial reductions of the T x T tile of classes i0.. x j0.. (indices past K masked).

    Tiles with j0 > i0 stand for their mirror image too (every pair statistic and Gram is
    symmetric, except W Mtilde, whose mirror is computed): `reduce` visits j0 >= i0 only.
    """
    Mt, W = inp.Mt, inp.W
    K = Mt.shape[1]
    I, J = i0 + jnp.arange(T), j0 + jnp.arange(T)
    entry = (I < K)[:, None] & (J < K)[None, :]
    I, J = jnp.minimum(I, K - 1), jnp.minimum(J, K - 1)
    same = I[:, None] == J[None, :]
    pair = entry & ~same
    twice = jnp.where(i0 == j0, 1.0, 2.0)

    G = Mt[:, I].T @ Mt[:, J]  # centred Gram
    sq, r = inp.sq, jnp.sqrt(inp.sq)
    cos = G / (r[I][:, None] * r[None, J])
    dist2 = jnp.maximum(sq[I][:, None] + sq[None, J] - 2 * G, 0.0)  # ||mu_k - mu_k'||^2
    log_unit2 = jnp.log(jnp.where(pair, jnp.maximum(2.0 - 2.0 * cos, 0.0), 1.0))

    def moments(x: Array) -> Array:  # (count, mean, M2), exact two-pass, mirror included
        n = jnp.sum(pair, dtype=x.dtype)
        mean = jnp.sum(jnp.where(pair, x, 0.0)) / jnp.maximum(n, 1)
        return jnp.stack([twice * n, mean, twice * jnp.sum(jnp.where(pair, x - mean, 0.0) ** 2)])

    out: dict[str, Array] = {}
    out["cos"] = moments(cos)
    out["cos_max"] = jnp.max(jnp.where(pair, cos, -jnp.inf))
    out["maxangle"] = twice * jnp.sum(jnp.where(pair, jnp.abs(cos + 1.0 / (K - 1)), 0.0))
    out["log"] = moments(-0.5 * log_unit2)  # log(1/||u_k - u_k'||)
    out["riesz"] = moments(math.copysign(1.0, riesz_s) * jnp.exp(-riesz_s / 2 * log_unit2))
    safe = jnp.where(pair, dist2, 1.0)
    for name, v, p in cdnv:
        var = inp.variances[v]
        ratio = (var[I][:, None] + var[None, J]) / 2 / safe**p
        out[name] = twice * jnp.sum(jnp.where(pair, ratio, 0.0))

    eye = same.astype(Mt.dtype)
    etf = (eye - 1.0 / K) / math.sqrt(K - 1)  # P_K / sqrt(K-1) on this tile

    def error(gram: Array, norm: Array, target: Array, mask: Array = entry) -> Array:
        # a zero Gram is at distance ||target||_F = 1 (as `geometry.gram_distance`)
        scaled = jnp.where(norm > 0, gram / jnp.where(norm > 0, norm, 1.0), 0.0)
        return jnp.sum(jnp.where(mask, (scaled - target) ** 2, 0.0))

    c = inp.shift
    Gu = G + c[I][:, None] + c[None, J] + inp.mu_G_sq  # uncentred Gram Hbar^T Hbar
    out["etf"] = twice * error(G, inp.norms[0], etf)
    out["of"] = twice * error(Gu, inp.norms[1], eye / math.sqrt(K))
    if W is not None:
        out["W_etf"] = twice * error(W[I] @ W[J].T, inp.norms[2], etf)
        mirror = error(W[J] @ Mt[:, I], inp.norms[3], etf.T, entry.T)  # W Mtilde: not symmetric
        out["alignment"] = error(W[I] @ Mt[:, J], inp.norms[3], etf) + (twice - 1) * mirror
    return out


_tile_jit = jax.jit(_tile, static_argnames=("T", "riesz_s", "cdnv"))


def _merge_moments(parts: Array) -> tuple[Array, Array]:
    """Mean and variance (ddof 0) from per-tile (count, mean, M2) rows (Chan et al.)."""
    n, mean, m2 = parts[:, 0], parts[:, 1], parts[:, 2]
    total = jnp.sum(n)
    grand = jnp.sum(n * mean) / total
    return grand, (jnp.sum(m2) + jnp.sum(n * (mean - grand) ** 2)) / total


def reduce(
    inp: PairInputs,
    *,
    riesz_s: float,
    cdnv: tuple = CDNV_VARIANTS,
    block: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Array]:
    """Every pairwise statistic of `inp`, in `block` x `block` tiles (one tile if None).

    Returns cos_mean, cos_std (equiangularity), cos_max, maxangle, gnc2_log_mean,
    gnc2_log_var, gnc2_riesz_mean, gnc2_riesz_var, the CDNV variants, and the Gram errors
    etf, of (and W_etf, alignment with W). `cdnv` lists (name, row of inp.variances,
    exponent p). `progress(done, total)` is called after each tile.
    """
    K = inp.Mt.shape[1]
    zero = jnp.asarray(0)
    if block is None or block >= K:
        parts = jax.tree.map(lambda x: x[None], _tile(zero, zero, inp, K, riesz_s, cdnv))
    else:
        starts = range(0, K, block)
        tiles = [(i, j) for i in starts for j in starts if j >= i]
        done = []
        for n, (i, j) in enumerate(tiles):
            args = (jnp.asarray(i), jnp.asarray(j), inp)
            done.append(_tile_jit(*args, T=block, riesz_s=riesz_s, cdnv=cdnv))
            if progress is not None:
                progress(n + 1, len(tiles))
        parts = jax.tree.map(lambda *x: jnp.stack(x), *done)
    pairs = K * (K - 1)
    out = {}
    out["cos_mean"], cos_var = _merge_moments(parts["cos"])
    out["cos_std"] = jnp.sqrt(cos_var)
    out["cos_max"] = jnp.max(parts["cos_max"])
    out["maxangle"] = jnp.sum(parts["maxangle"]) / pairs
    out["gnc2_log_mean"], out["gnc2_log_var"] = _merge_moments(parts["log"])
    out["gnc2_riesz_mean"], out["gnc2_riesz_var"] = _merge_moments(parts["riesz"])
    for name, _, _ in cdnv:
        out[name] = jnp.sum(parts[name]) / pairs
    for name in ("etf", "of", "W_etf", "alignment"):
        if name in parts:
            out[name] = jnp.sqrt(jnp.sum(parts[name]))
    return out
