"""NC metrics of features given in memory, as pure, jittable jnp functions.

Shapes: features H (d, N) with samples as COLUMNS, labels y (N,) in 0..K-1, the number
of classes K a static python int, classifier W (K, d), bias b (K,). Class means
Hbar (d, K) with columns mu_k; centred means Mtilde = Hbar - mu_G 1^T.

    mu_G    = (1/N) sum_i h_i                          (sample-weighted; Papyan)
    Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T
    Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T = Mtilde Mtilde^T / K

NC2 statistics take `vectors` (K, p), one class vector per ROW: pass Mtilde.T for class
means, W for the classifier. Gram-based metrics take a (K, K) Gram: Mtilde^T Mtilde,
Hbar^T Hbar or W W^T. Each function computes `ClassStats` and hands them to the one
definition of its metric in `_core` (pair statistics: `_pairs`). Every public function is
jitted, with K and the options static; shape and dtype errors are ValueErrors at trace
time. For features that do not fit in memory, or real networks' files: `report`.

Where rhubarbwu/neural-collapse (checked at commit c05a0b8, 2025-02-06) differs:
  - it stores features and means as rows (N, d) and (K, d); we use columns;
  - its default global mean (`MeanAccumulator.compute(weighted=False)`) is the
    unweighted (1/K) sum_k mu_k; ours is sample-weighted (`weighted_mean=False` gives
    theirs; the two agree for balanced classes);
  - its Sigma_B (`covariance_ratio`) is Mtilde Mtilde^T / K as ours; before its commit
    1ab766b (2024-11-01, `variability_pinv`) it was / d, giving NC1 values d/K times ours;
  - its `self_duality_error` compares W Mtilde with P_K, a different metric from our
    `nc3_self_duality` (Papyan's); ours under that name is `nc3_alignment` in `report`;
  - its NC4 accumulator (`DecAccumulator`) ignores the bias; ours uses b when given.
Every divisor is the plain count (ddof 0) unless a `ddof` argument says otherwise.

Degenerate inputs: NC1 and CDNV are undefined when the class means coincide (zero
between-class scatter) and return nan; NC2 statistics of zero vectors are nan; Gram
distances of a zero Gram are 1.0 (see `geometry.gram_distance`). An empty class gives
nan means. Labels outside 0..K-1 are silently dropped by the class sums: validate them
(`report` does).
"""

import functools

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from .. import geometry
from ..errors import InputError
from . import _core, _pairs
from ._stats import class_stats


def _check_data(H: ArrayLike, y: ArrayLike, K: int) -> tuple[Array, Array]:
    H, y = jnp.asarray(H), jnp.asarray(y)
    if not isinstance(K, int) or K < 2:
        raise InputError(f"K must be a python int >= 2, got {K!r}")
    if H.ndim != 2 or not jnp.issubdtype(H.dtype, jnp.floating):
        raise InputError(f"H must be a floating (d, N) array, got {H.dtype} {H.shape}")
    if y.shape != (H.shape[1],) or not jnp.issubdtype(y.dtype, jnp.integer):
        raise InputError(
            f"y must be integer labels of shape ({H.shape[1]},), got {y.dtype} {y.shape}"
        )
    return H, y


def _check_classifier(
    W: ArrayLike, b: ArrayLike | None, K: int, d: int
) -> tuple[Array, Array | None]:
    W = jnp.asarray(W)
    if W.shape != (K, d):
        raise InputError(f"W must have shape (K, d) = ({K}, {d}), got {W.shape}")
    if b is not None:
        b = jnp.asarray(b)
        if b.shape != (K,):
            raise InputError(f"b must have shape (K,) = ({K},), got {b.shape}")
    return W, b


def _check_vectors(vectors: ArrayLike) -> Array:
    vectors = jnp.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] < 2:
        raise InputError(f"vectors must be (K, p) with K >= 2 rows, got {vectors.shape}")
    return vectors


def _stats(H: ArrayLike, y: ArrayLike, K: int):
    return class_stats(*_check_data(H, y, K), K)


# --------------------------------------------------------------------------- means


@functools.partial(jax.jit, static_argnames=("K",))
def class_means(H: ArrayLike, y: ArrayLike, K: int) -> tuple[Array, Array]:
    """Class means Hbar (d, K), Hbar[:, k] = mean of the columns of H labelled k, and the
    class counts n_k (K,) as floats of H's dtype."""
    stats = _stats(H, y, K)
    return stats.means, stats.counts


@functools.partial(jax.jit, static_argnames=("K", "weighted_mean"))
def global_mean(H: ArrayLike, y: ArrayLike, K: int, *, weighted_mean: bool = True) -> Array:
    """mu_G (d,): (1/N) sum_i h_i if `weighted_mean` (Papyan), else (1/K) sum_k mu_k
    (rhubarbwu's default)."""
    return _stats(H, y, K).global_mean(weighted_mean)


@functools.partial(jax.jit, static_argnames=("K", "weighted_mean"))
def centred_means(H: ArrayLike, y: ArrayLike, K: int, *, weighted_mean: bool = True) -> Array:
    """Centred class means Mtilde = Hbar - mu_G 1^T, shape (d, K)."""
    return _stats(H, y, K).centred_means(weighted_mean)


# --------------------------------------------------------------------------- NC1


@functools.partial(jax.jit, static_argnames=("K", "rtol", "weighted_mean", "return_dropped"))
def nc1_pinv(
    H: ArrayLike,
    y: ArrayLike,
    K: int,
    *,
    rtol: float | None = None,
    weighted_mean: bool = True,
    return_dropped: bool = False,
) -> Array | tuple[Array, Array]:
    """Papyan's NC1 = (1/K) Tr(Sigma_W Sigma_B^+), dropping the eigenvalues of Sigma_B at
    or below rtol times the largest (default rtol = d eps, torch.linalg.pinv's default for
    the d x d Sigma_B); see `_core.nc1_pinv`. With `return_dropped`, (nc1, number of the
    min(K-1, d) between-class directions below that cut)."""
    return _core.nc1_pinv(
        _stats(H, y, K), rtol=rtol, weighted_mean=weighted_mean, return_dropped=return_dropped
    )


@functools.partial(jax.jit, static_argnames=("K", "weighted_mean"))
def nc1_svd(H: ArrayLike, y: ArrayLike, K: int, *, weighted_mean: bool = True) -> Array:
    """Han et al. 2022's top-(K-1) NC1, as Papyan et al.'s notebook computes it (no cut,
    so it blows up when Sigma_B has fewer directions); see `_core.nc1_svd`."""
    return _core.nc1_svd(_stats(H, y, K), weighted_mean=weighted_mean)


@functools.partial(jax.jit, static_argnames=("K", "weighted_mean"))
def scatter_traces(
    H: ArrayLike, y: ArrayLike, K: int, *, weighted_mean: bool = True
) -> tuple[Array, Array]:
    """(Tr Sigma_W, Tr Sigma_B); see `_core.scatter_traces`."""
    return _core.scatter_traces(_stats(H, y, K), weighted_mean=weighted_mean)


@functools.partial(jax.jit, static_argnames=("K", "weighted_mean"))
def nc1_trace(H: ArrayLike, y: ArrayLike, K: int, *, weighted_mean: bool = True) -> Array:
    """Tr(Sigma_W) / Tr(Sigma_B) (Tirer et al. 2023 Eq. (3)); see `_core.nc1_trace`."""
    return _core.nc1_trace(_stats(H, y, K), weighted_mean=weighted_mean)


@functools.partial(jax.jit, static_argnames=("K", "p", "ddof"))
def cdnv(H: ArrayLike, y: ArrayLike, K: int, *, p: float = 1, ddof: int = 0) -> Array:
    """Class-distance normalized variance (Galanti et al. 2022), averaged over pairs k < k':

        mean_{k<k'} ((sigma_k^2 + sigma_k'^2) / 2) / ||mu_k - mu_k'||^(2p),
        sigma_k^2 = (1/(n_k - ddof)) sum_{i: y_i = k} ||h_i - mu_k||^2.

    p = 1 is Galanti's (scale-invariant); the Linguistic Collapse analysis (Wu & Papyan
    2024; rhubarbwu/linguistic-collapse @ 9e25020 `analyze.py` calls
    `variability_cdnv(V, M, 2)`, the `dist_exp` of rhubarbwu/neural-collapse @ c05a0b8)
    uses p = 2 (`cdnv_lc` in `report`). ddof 0 as rhubarbwu/neural-collapse @ c05a0b8,
    ddof 1 as felixsh/nc-toolbox @ a527f99 (`class_embedding_variances`; needs
    n_k >= 2). Ignores centring. inf or nan when two class means coincide.
    """
    stats = _stats(H, y, K)
    inp = _core.pair_inputs(stats, None, True)._replace(variances=stats.variances(ddof)[None])
    return _pairs.reduce(inp, riesz_s=1.0, cdnv=(("cdnv", 0, p),))["cdnv"]


# --------------------------------------------------------------------------- NC2


def _vector_pairs(vectors: ArrayLike, riesz_s: float | None = None) -> dict[str, Array]:
    """Pair statistics of the rows of `vectors` (K, p), taken as they are (no centring)."""
    V = _check_vectors(vectors).T
    empty = jnp.zeros((0, V.shape[1]), V.dtype)
    inp = _pairs.pair_inputs(V, jnp.zeros(V.shape[0], V.dtype), empty, None)
    return _pairs.reduce(inp, riesz_s=V.shape[0] - 2 if riesz_s is None else riesz_s, cdnv=())


@jax.jit
def nc2_equinorm(vectors: ArrayLike) -> Array:
    """Coefficient of variation std_k / mean_k of the row norms ||v_k|| of `vectors` (K, p),
    ddof 0 (Papyan's equinorm). Pass Mtilde.T for means, W (uncentred) for the classifier.
    nan if all rows are zero."""
    return _core.coefficient_of_variation(jnp.linalg.norm(_check_vectors(vectors), axis=1))


@jax.jit
def nc2_equiangularity(vectors: ArrayLike) -> Array:
    """Std (ddof 0) over pairs k != k' of the cosines between rows of `vectors` (K, p)
    (Papyan's equiangularity). Zero for any equiangular set, ETF or not."""
    return _vector_pairs(vectors)["cos_std"]


@jax.jit
def nc2_maxangle(vectors: ArrayLike) -> Array:
    """Mean over pairs k != k' of |cos(v_k, v_k') + 1/(K-1)| (Papyan's max-angle); zero
    iff all cosines equal the simplex value -1/(K-1)."""
    return _vector_pairs(vectors)["maxangle"]


@functools.partial(jax.jit, static_argnames=("kernel", "s"))
def gnc2(vectors: ArrayLike, *, kernel: str = "log", s: float | None = None) -> tuple[Array, Array]:
    """GNC2 hyperspherical uniformity (Liu et al. 2023, arXiv 2303.06484; Wu & Papyan 2024):
    the mean and the variance (ddof 0) over pairs k != k' of a kernel of the distances
    between the unit rows u_k = v_k/||v_k|| of `vectors` (K, p). Pass Mtilde.T for means.

        log:   log(1 / ||u_k - u_k'||)            (the default)
        riesz: sign(s) ||u_k - u_k'||^(-s),  s = p - 2 unless given

    The log mean is the logarithmic energy, minimal for uniformly spread points; an exact
    simplex ETF has log mean -(1/2) log(2K/(K-1)) and variance 0.
    """
    if kernel not in ("log", "riesz"):
        raise InputError(f"kernel must be 'log' or 'riesz', got {kernel!r}")
    pairs = _vector_pairs(vectors, s)
    return pairs[f"gnc2_{kernel}_mean"], pairs[f"gnc2_{kernel}_var"]


def _check_gram(G: ArrayLike) -> Array:
    G = jnp.asarray(G)
    if G.ndim != 2 or G.shape[0] != G.shape[1] or G.shape[0] < 2:
        raise InputError(f"G must be a (K, K) Gram with K >= 2, got {G.shape}")
    return G


@jax.jit
def nc2_etf_error(G: ArrayLike) -> Array:
    """|| G/||G||_F - P_K/sqrt(K-1) ||_F for a (K, K) Gram G (Tirer et al. 2023 Sec. 5;
    rhubarbwu/neural-collapse @ c05a0b8 `simplex_etf_error`; Zhu et al. 2021 use
    G = W W^T, tding1/Neural-Collapse @ 04ef586 `compute_ETF`).

    Use the CENTRED mean Gram Mtilde^T Mtilde (or W W^T); with uncentred means an OF
    scores sqrt(2 - 2 sqrt((K-1)/K)), not 0. A zero G gives 1.0. For K > d+1 no ETF
    exists and the error is at least sqrt(2 - 2 sqrt(d/(K-1))) (`report` states it).
    """
    G = _check_gram(G)
    return geometry.gram_distance(G, geometry.etf_gram(G.shape[0], dtype=G.dtype))


@jax.jit
def nc2_of_error(G: ArrayLike) -> Array:
    """|| G/||G||_F - I/sqrt(K) ||_F: distance to an orthogonal frame, for the UNCENTRED
    mean Gram Hbar^T Hbar or W W^T (bias-free MSE geometry). A zero G gives 1.0."""
    G = _check_gram(G)
    return geometry.gram_distance(G, geometry.of_gram(G.shape[0], dtype=G.dtype))


# --------------------------------------------------------------------------- NC3


def _check_duality(W: ArrayLike, means: ArrayLike) -> tuple[Array, Array]:
    W, means = jnp.asarray(W), jnp.asarray(means)
    if W.ndim != 2 or means.shape != W.T.shape:
        raise InputError(f"W must be (K, d) and the means (d, K), got {W.shape} and {means.shape}")
    return W, means


@jax.jit
def nc3_self_duality(W: ArrayLike, Hbar_centred: ArrayLike) -> Array:
    """Papyan's self-duality || W^T/||W||_F - Mtilde/||Mtilde||_F ||_F^2 with W (K, d)
    uncentred and Mtilde (d, K) centred; see `_core.nc3_self_duality`."""
    return _core.nc3_self_duality(*_check_duality(W, Hbar_centred))


@jax.jit
def nc3_uncentred(W: ArrayLike, Hbar: ArrayLike) -> Array:
    """|| W^T/||W||_F - Hbar/||Hbar||_F ||_F^2 with UNCENTRED means Hbar (d, K): the
    self-duality of the OF geometry (bias-free MSE)."""
    return _core.nc3_self_duality(*_check_duality(W, Hbar))


# --------------------------------------------------------------------------- NC4


def agreement(H: Array, W: Array, b: Array | None, means: Array) -> Array:
    """[argmax_k (W h_i + b)_k == argmin_k ||h_i - mu_k||] per column h_i of H (d, B), as
    floats; ties go to the lower class index. `means` (d, K) may hold nan columns (empty
    classes), which are never nearest."""
    logits = W @ H if b is None else W @ H + b[:, None]
    # argmin_k ||h - mu_k||^2 = argmax_k (2 mu_k^T h - ||mu_k||^2)
    closeness = 2 * (means.T @ H) - jnp.sum(means**2, axis=0)[:, None]
    closeness = jnp.where(jnp.isnan(closeness), -jnp.inf, closeness)
    return (jnp.argmax(logits, axis=0) == jnp.argmax(closeness, axis=0)).astype(H.dtype)


@functools.partial(jax.jit, static_argnames=("K", "per_class"))
def nc4_agreement(
    H: ArrayLike,
    y: ArrayLike,
    K: int,
    W: ArrayLike,
    b: ArrayLike | None = None,
    *,
    per_class: bool = False,
) -> Array:
    """Fraction of samples where the classifier and the nearest class mean agree:

        argmax_k (W h_i + b)_k == argmin_k ||h_i - mu_k||

    (Papyan's NC4, as agreement; disagreement is 1 - this). y only defines the means,
    never the decision. b = None means no bias. `per_class=True` averages the per-class
    rates instead of pooling samples (`clf_ncc_agreement(weighted=False)` of
    rhubarbwu/neural-collapse @ c05a0b8). Ties go to the lower class index.
    """
    H, y = _check_data(H, y, K)
    W, b = _check_classifier(W, b, K, H.shape[0])
    stats = class_stats(H, y, K)
    agree = agreement(H, W, b, stats.means)
    if per_class:
        return jnp.mean((agree @ jax.nn.one_hot(y, K, dtype=H.dtype)) / stats.counts)
    return jnp.mean(agree)


# --------------------------------------------------------------------------- summary

SUMMARY = ("nc1", "nc1_trace", "cdnv", "nc2", "nc2_of", "nc2_equinorm", "nc2_equiangularity")
SUMMARY_W = ("nc2_W", "nc2_W_equinorm", "nc3", "nc3_uncentred")


@functools.partial(jax.jit, static_argnames=("K",))
def summary(
    H: ArrayLike,
    y: ArrayLike,
    K: int,
    W: ArrayLike | None = None,
    b: ArrayLike | None = None,
) -> dict[str, Array]:
    """The metrics `check` and the CLI report, as a dict of scalar arrays.

    Always: nc1 (`nc1_pinv`), nc1_trace, cdnv (p=1, ddof 0), nc2 (`nc2_etf_error` of the
    centred mean Gram), nc2_of (`nc2_of_error` of the uncentred mean Gram), nc2_equinorm
    and nc2_equiangularity (of the centred means). With W: nc2_W (`nc2_etf_error` of
    W W^T), nc2_W_equinorm, nc3 (`nc3_self_duality`), nc3_uncentred, nc4 (agreement,
    using b if given). Jit with K static: `jax.jit(summary, static_argnums=2)`.
    `report` gives every variant.
    """
    H, y = _check_data(H, y, K)
    if W is None and b is not None:
        raise InputError("b was given without W")
    if W is not None:
        W, b = _check_classifier(W, b, K, H.shape[0])
    stats = class_stats(H, y, K)
    every = _core.metrics(stats, W)
    out = {name: every[name] for name in SUMMARY + (SUMMARY_W if W is not None else ())}
    if W is not None:
        out["nc4"] = jnp.mean(agreement(H, W, b, stats.means))
    return out
