"""Neural-collapse metrics NC1-NC4 (and CDNV) as pure, jittable jnp functions.

Shapes: features H (d, N) with samples as COLUMNS, labels y (N,) in 0..K-1, the number
of classes K a static python int, classifier W (K, d), bias b (K,). Class means
Hbar (d, K) with columns mu_k; centred means Mtilde = Hbar - mu_G 1^T.

    mu_G    = (1/N) sum_i h_i                          (sample-weighted; Papyan)
    Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T
    Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T = Mtilde Mtilde^T / K

NC2 statistics take `vectors` (K, p), one class vector per ROW: pass Mtilde.T for class
means, W for the classifier. Gram-based metrics take a (K, K) Gram: Mtilde^T Mtilde,
Hbar^T Hbar or W W^T. Definitions and variant names: shared/theory/metrics.md.
Every public function is jitted, with K and the options (rtol, p, ddof, weighted_mean,
per_class) static; shape and dtype errors are ValueErrors at trace time.

Where rhubarbwu/neural-collapse differs:
  - it stores features and means as rows (N, d) and (K, d); we use columns;
  - its default global mean is the unweighted (1/K) sum_k mu_k; ours is sample-weighted
    (`weighted_mean=False` gives theirs; the two agree for balanced classes);
  - its Sigma_B (`covariance_pinv`, `covariance_ratio` at commit c3864c2) is
    Mtilde Mtilde^T / d instead of / K, so its NC1 values are ours times d/K;
  - its `self_duality_error` compares W Mtilde with P_K, a different metric from our
    `nc3_self_duality` (Papyan's);
  - its NC4 accumulator ignores the bias; ours uses b when given.
Every divisor is the plain count (ddof 0) unless a `ddof` argument says otherwise.

Degenerate inputs: NC1 and CDNV are undefined when the class means coincide (zero
between-class scatter) and return nan; NC2 statistics of zero vectors are nan; Gram
distances of a zero Gram are 1.0 (see `geometry.gram_distance`). An empty class gives
nan means. Labels outside 0..K-1 are silently dropped by the class sums: validate them.
"""

import functools
import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from . import geometry


def _check_data(H: ArrayLike, y: ArrayLike, K: int) -> tuple[Array, Array]:
    H, y = jnp.asarray(H), jnp.asarray(y)
    if not isinstance(K, int) or K < 2:
        raise ValueError(f"K must be a python int >= 2, got {K!r}")
    if H.ndim != 2 or not jnp.issubdtype(H.dtype, jnp.floating):
        raise ValueError(f"H must be a floating (d, N) array, got {H.dtype} {H.shape}")
    if y.shape != (H.shape[1],) or not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(
            f"y must be integer labels of shape ({H.shape[1]},), got {y.dtype} {y.shape}"
        )
    return H, y


def _check_classifier(
    W: ArrayLike, b: ArrayLike | None, K: int, d: int
) -> tuple[Array, Array | None]:
    W = jnp.asarray(W)
    if W.shape != (K, d):
        raise ValueError(f"W must have shape (K, d) = ({K}, {d}), got {W.shape}")
    if b is not None:
        b = jnp.asarray(b)
        if b.shape != (K,):
            raise ValueError(f"b must have shape (K,) = ({K},), got {b.shape}")
    return W, b


def _check_vectors(vectors: ArrayLike) -> Array:
    vectors = jnp.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] < 2:
        raise ValueError(f"vectors must be (K, p) with K >= 2 rows, got {vectors.shape}")
    return vectors


def _nan_unless(ok: Array, value: Array) -> Array:
    return jnp.where(ok, value, jnp.nan)


def _off_diagonal(K: int) -> Array:
    return ~jnp.eye(K, dtype=bool)


def _off_diagonal_mean(X: Array) -> Array:
    """Mean of a (K, K) matrix over k != k'; for a symmetric X, the mean over pairs k < k'.
    (Masks rather than triu gathers: XLA compiles them several times faster.)"""
    K = X.shape[0]
    return jnp.sum(jnp.where(_off_diagonal(K), X, 0.0)) / (K * (K - 1))


# --------------------------------------------------------------------------- means


def _one_hot(y: Array, K: int, dtype) -> Array:
    """Y (N, K) with Y[i, k] = [y_i == k]: class sums are matmuls (H @ Y), and so is
    spreading class quantities back over samples (Hbar @ Y^T)."""
    return jax.nn.one_hot(y, K, dtype=dtype)


@functools.partial(jax.jit, static_argnames=("K",))
def class_means(H: ArrayLike, y: ArrayLike, K: int) -> tuple[Array, Array]:
    """Class means Hbar (d, K), Hbar[:, k] = mean of the columns of H labelled k, and the
    class counts n_k (K,) as floats of H's dtype."""
    H, y = _check_data(H, y, K)
    Y = _one_hot(y, K, H.dtype)
    counts = jnp.sum(Y, axis=0)
    return (H @ Y) / counts[None, :], counts


@functools.partial(jax.jit, static_argnames=("K", "weighted_mean"))
def global_mean(H: ArrayLike, y: ArrayLike, K: int, *, weighted_mean: bool = True) -> Array:
    """mu_G (d,): (1/N) sum_i h_i if `weighted_mean` (Papyan), else (1/K) sum_k mu_k
    (rhubarbwu's default)."""
    H, y = _check_data(H, y, K)
    if weighted_mean:
        return jnp.mean(H, axis=1)
    return jnp.mean(class_means(H, y, K)[0], axis=1)


@functools.partial(jax.jit, static_argnames=("K", "weighted_mean"))
def centred_means(H: ArrayLike, y: ArrayLike, K: int, *, weighted_mean: bool = True) -> Array:
    """Centred class means Mtilde = Hbar - mu_G 1^T, shape (d, K)."""
    Hbar, _ = class_means(H, y, K)
    return Hbar - global_mean(H, y, K, weighted_mean=weighted_mean)[:, None]


def _residuals(H: Array, y: Array, K: int) -> Array:
    """Within-class deviations h_i - mu_{y_i}, shape (d, N)."""
    return H - class_means(H, y, K)[0] @ _one_hot(y, K, H.dtype).T


# --------------------------------------------------------------------------- NC1


def _between_svd(H: Array, y: Array, K: int, weighted_mean: bool) -> tuple[Array, Array]:
    """Left singular vectors U and singular values s (descending) of Mtilde / sqrt(K);
    the eigenpairs of Sigma_B are (U[:, i], s[i]^2)."""
    Mt = centred_means(H, y, K, weighted_mean=weighted_mean)
    U, s, _ = jnp.linalg.svd(Mt / math.sqrt(K), full_matrices=False)
    return U, s


@functools.partial(jax.jit, static_argnames=("K", "rtol", "weighted_mean"))
def nc1_pinv(
    H: ArrayLike,
    y: ArrayLike,
    K: int,
    *,
    rtol: float | None = None,
    weighted_mean: bool = True,
) -> Array:
    """Papyan's NC1 = (1/K) Tr(Sigma_W Sigma_B^+) (Papyan, Han, Donoho 2020; Tirer et al.
    2023 Sec. 5).

    Computed as a sum of nonnegative terms, so it is never negative (metrics.md §2, §7):

        (1/K) sum_{i: s_i > rtol s_1} (1/N) ||U[:, i]^T D||^2 / s_i^2,   D = H - Hbar[:, y]

    where s_i, U[:, i] come from the SVD of Mtilde / sqrt(K). `rtol` defaults to
    max(d, K) * eps, the cut-off of numpy/jax `pinv`. Blind to within-class variance
    orthogonal to span(Mtilde). nan when Sigma_B = 0.
    """
    H, y = _check_data(H, y, K)
    d, N = H.shape
    if rtol is None:
        rtol = max(d, K) * float(jnp.finfo(H.dtype).eps)
    U, s = _between_svd(H, y, K, weighted_mean)
    keep = s > rtol * s[0]
    energy = jnp.sum((U.T @ _residuals(H, y, K)) ** 2, axis=1) / N  # u_i^T Sigma_W u_i
    terms = jnp.where(keep, energy / jnp.where(keep, s, 1.0) ** 2, 0.0)
    return _nan_unless(s[0] > 0, jnp.sum(terms) / K)


@functools.partial(jax.jit, static_argnames=("K", "weighted_mean"))
def nc1_svd(H: ArrayLike, y: ArrayLike, K: int, *, weighted_mean: bool = True) -> Array:
    """Han et al. 2022's NC1: (1/K) sum_{i <= K-1} u_i^T Sigma_W u_i / s_i^2 over the top
    K-1 eigenpairs (u_i, s_i^2) of Sigma_B (rhubarbwu `covariance_pinv(svd=True)`, which
    at commit c3864c2 also omits the 1/K).

    Equals `nc1_pinv` when Sigma_B has rank K-1; inf (or nan) when its rank is lower,
    where `nc1_pinv` drops the missing directions instead. nan when Sigma_B = 0.
    """
    H, y = _check_data(H, y, K)
    d, N = H.shape
    r = min(K - 1, d)
    U, s = _between_svd(H, y, K, weighted_mean)
    U, s = U[:, :r], s[:r]
    energy = jnp.sum((U.T @ _residuals(H, y, K)) ** 2, axis=1) / N
    return _nan_unless(s[0] > 0, jnp.sum(energy / s**2) / K)


@functools.partial(jax.jit, static_argnames=("K", "weighted_mean"))
def scatter_traces(
    H: ArrayLike, y: ArrayLike, K: int, *, weighted_mean: bool = True
) -> tuple[Array, Array]:
    """(Tr Sigma_W, Tr Sigma_B): Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(.)^T and
    Sigma_B = (1/K) sum_k (mu_k - mu_G)(.)^T (Papyan et al.; Tirer et al. 2023 Eq. (3))."""
    H, y = _check_data(H, y, K)
    tr_W = jnp.sum(_residuals(H, y, K) ** 2) / H.shape[1]
    tr_B = jnp.sum(centred_means(H, y, K, weighted_mean=weighted_mean) ** 2) / K
    return tr_W, tr_B


@functools.partial(jax.jit, static_argnames=("K", "weighted_mean"))
def nc1_trace(H: ArrayLike, y: ArrayLike, K: int, *, weighted_mean: bool = True) -> Array:
    """Tr(Sigma_W) / Tr(Sigma_B) (Tirer et al. 2023 Eq. (3); rhubarbwu `covariance_ratio`,
    up to its Sigma_B divisor, see the module docstring). Unlike `nc1_pinv` it sees all
    within-class variance. nan when Tr(Sigma_B) = 0."""
    tr_W, tr_B = scatter_traces(H, y, K, weighted_mean=weighted_mean)
    positive = tr_B > 0
    return _nan_unless(positive, tr_W / jnp.where(positive, tr_B, 1.0))


@functools.partial(jax.jit, static_argnames=("K", "p", "ddof"))
def cdnv(H: ArrayLike, y: ArrayLike, K: int, *, p: float = 1, ddof: int = 0) -> Array:
    """Class-distance normalized variance (Galanti et al. 2022), averaged over pairs k < k':

        mean_{k<k'} ((sigma_k^2 + sigma_k'^2) / 2) / ||mu_k - mu_k'||^(2p),
        sigma_k^2 = (1/(n_k - ddof)) sum_{i: y_i = k} ||h_i - mu_k||^2.

    p = 1 is Galanti's (scale-invariant); the Linguistic Collapse analysis uses p = 2
    (rhubarbwu `dist_exp`). ddof 0 as rhubarbwu, ddof 1 as nc-toolbox (needs n_k >= 2).
    Ignores centring. inf or nan when two class means coincide.
    """
    H, y = _check_data(H, y, K)
    _, counts = class_means(H, y, K)
    var = (jnp.sum(_residuals(H, y, K) ** 2, axis=0) @ _one_hot(y, K, H.dtype)) / (counts - ddof)
    # ||mu_k - mu_k'||^2 from the Gram of the centred means: O(K^2) memory, no cancellation
    # against mu_G, and clipped at 0 so rounding never makes a ratio negative
    Mt = centred_means(H, y, K)
    gram = Mt.T @ Mt
    sq = jnp.diagonal(gram)
    dist2 = jnp.maximum(sq[:, None] + sq[None, :] - 2 * gram, 0.0)
    off = _off_diagonal(K)
    ratio = (var[:, None] + var[None, :]) / 2 / jnp.where(off, dist2, 1.0) ** p
    return _off_diagonal_mean(ratio)


# --------------------------------------------------------------------------- NC2


def _cosines(vectors: Array) -> Array:
    """(K, K) cosines between the rows of `vectors`."""
    unit = vectors / jnp.linalg.norm(vectors, axis=1)[:, None]
    return unit @ unit.T


@jax.jit
def nc2_equinorm(vectors: ArrayLike) -> Array:
    """Coefficient of variation std_k / mean_k of the row norms ||v_k|| of `vectors` (K, p),
    ddof 0 (Papyan's equinorm). Pass Mtilde.T for means, W (uncentred) for the classifier.
    nan if all rows are zero."""
    norms = jnp.linalg.norm(_check_vectors(vectors), axis=1)
    return jnp.std(norms) / jnp.mean(norms)


@jax.jit
def nc2_equiangularity(vectors: ArrayLike) -> Array:
    """Std (ddof 0) over pairs k != k' of the cosines between rows of `vectors` (K, p)
    (Papyan's equiangularity). Zero for any equiangular set, ETF or not."""
    cosines = _cosines(_check_vectors(vectors))
    return jnp.sqrt(_off_diagonal_mean((cosines - _off_diagonal_mean(cosines)) ** 2))


@jax.jit
def nc2_maxangle(vectors: ArrayLike) -> Array:
    """Mean over pairs k != k' of |cos(v_k, v_k') + 1/(K-1)| (Papyan's max-angle); zero
    iff all cosines equal the simplex value -1/(K-1)."""
    vectors = _check_vectors(vectors)
    return _off_diagonal_mean(jnp.abs(_cosines(vectors) + 1 / (vectors.shape[0] - 1)))


def _check_gram(G: ArrayLike) -> Array:
    G = jnp.asarray(G)
    if G.ndim != 2 or G.shape[0] != G.shape[1] or G.shape[0] < 2:
        raise ValueError(f"G must be a (K, K) Gram with K >= 2, got {G.shape}")
    return G


@jax.jit
def nc2_etf_error(G: ArrayLike) -> Array:
    """|| G/||G||_F - P_K/sqrt(K-1) ||_F for a (K, K) Gram G (Tirer et al. 2023 Sec. 5;
    rhubarbwu `simplex_etf_error`; Zhu et al. 2021 use G = W W^T).

    Use the CENTRED mean Gram Mtilde^T Mtilde (or W W^T); with uncentred means an OF
    scores sqrt(2 - 2 sqrt((K-1)/K)), not 0. A zero G gives 1.0.
    """
    G = _check_gram(G)
    return geometry.gram_distance(G, geometry.etf_gram(G.shape[0], dtype=G.dtype))


@jax.jit
def nc2_of_error(G: ArrayLike) -> Array:
    """|| G/||G||_F - I/sqrt(K) ||_F: distance to an orthogonal frame, for the UNCENTRED
    mean Gram Hbar^T Hbar or W W^T (bias-free MSE geometry). A zero G gives 1.0."""
    G = _check_gram(G)
    return geometry.gram_distance(G, geometry.of_gram(G.shape[0], dtype=G.dtype))


@functools.partial(jax.jit, static_argnames=("kernel", "s"))
def gnc2(vectors: ArrayLike, *, kernel: str = "log", s: float | None = None) -> tuple[Array, Array]:
    """GNC2 hyperspherical uniformity (Liu et al. 2023; Wu & Papyan 2024): the mean and the
    variance (ddof 0) over pairs k != k' of a kernel of the distances between the unit
    rows v_k/||v_k|| of `vectors` (K, p). Pass Mtilde.T for class means.

        log:   log(1 / ||u_k - u_k'||)            (the default)
        riesz: sign(s) ||u_k - u_k'||^(-s),  s = p - 2 unless given

    An exact simplex ETF has log mean -(1/2) log(2K/(K-1)) and variance 0.
    """
    vectors = _check_vectors(vectors)
    unit = vectors / jnp.linalg.norm(vectors, axis=1)[:, None]
    K, p = unit.shape
    dist2 = jnp.maximum(2.0 - 2.0 * (unit @ unit.T), 0.0)
    safe = jnp.where(_off_diagonal(K), dist2, 1.0)
    if kernel == "log":
        values = -0.5 * jnp.log(safe)
    elif kernel == "riesz":
        s = p - 2 if s is None else s
        values = math.copysign(1.0, s) * safe ** (-s / 2)
    else:
        raise ValueError(f"kernel must be 'log' or 'riesz', got {kernel!r}")
    mean = _off_diagonal_mean(values)
    return mean, _off_diagonal_mean((values - mean) ** 2)


# --------------------------------------------------------------------------- NC3


def _check_duality(W: ArrayLike, means: ArrayLike) -> tuple[Array, Array]:
    W, means = jnp.asarray(W), jnp.asarray(means)
    if W.ndim != 2 or means.shape != W.T.shape:
        raise ValueError(f"W must be (K, d) and the means (d, K), got {W.shape} and {means.shape}")
    return W, means


@jax.jit
def nc3_self_duality(W: ArrayLike, Hbar_centred: ArrayLike) -> Array:
    """Papyan's self-duality || W^T/||W||_F - Mtilde/||Mtilde||_F ||_F^2 with W (K, d)
    uncentred and Mtilde (d, K) centred (metrics.md `nc3_papyan`; nc-toolbox).

    Not rhubarbwu's `self_duality_error` (a Gram of W Mtilde against P_K). At a bias-free
    MSE optimum (an OF) it is 2 - 2 sqrt((K-1)/K), not 0: use `nc3_uncentred` there.
    """
    W, M = _check_duality(W, Hbar_centred)
    return geometry.gram_distance(W.T, M) ** 2


@jax.jit
def nc3_uncentred(W: ArrayLike, Hbar: ArrayLike) -> Array:
    """|| W^T/||W||_F - Hbar/||Hbar||_F ||_F^2 with UNCENTRED means Hbar (d, K): the
    self-duality of the OF geometry (bias-free MSE)."""
    W, M = _check_duality(W, Hbar)
    return geometry.gram_distance(W.T, M) ** 2


# --------------------------------------------------------------------------- NC4


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
    rates instead of pooling samples (rhubarbwu's `weighted=False`). Ties go to the lower
    class index.
    """
    H, y = _check_data(H, y, K)
    W, b = _check_classifier(W, b, K, H.shape[0])
    Hbar, counts = class_means(H, y, K)
    logits = W @ H if b is None else W @ H + b[:, None]
    # argmin_k ||h - mu_k||^2 = argmax_k (2 mu_k^T h - ||mu_k||^2)
    closeness = 2 * (Hbar.T @ H) - jnp.sum(Hbar**2, axis=0)[:, None]
    agree = (jnp.argmax(logits, axis=0) == jnp.argmax(closeness, axis=0)).astype(H.dtype)
    if per_class:
        return jnp.mean((agree @ _one_hot(y, K, H.dtype)) / counts)
    return jnp.mean(agree)


# --------------------------------------------------------------------------- summary


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
    """
    H, y = _check_data(H, y, K)
    if W is None and b is not None:
        raise ValueError("b was given without W")
    Hbar, _ = class_means(H, y, K)
    Mt = centred_means(H, y, K)
    out = {
        "nc1": nc1_pinv(H, y, K),
        "nc1_trace": nc1_trace(H, y, K),
        "cdnv": cdnv(H, y, K),
        "nc2": nc2_etf_error(Mt.T @ Mt),
        "nc2_of": nc2_of_error(Hbar.T @ Hbar),
        "nc2_equinorm": nc2_equinorm(Mt.T),
        "nc2_equiangularity": nc2_equiangularity(Mt.T),
    }
    if W is None:
        return out
    W, b = _check_classifier(W, b, K, H.shape[0])
    out["nc2_W"] = nc2_etf_error(W @ W.T)
    out["nc2_W_equinorm"] = nc2_equinorm(W)
    out["nc3"] = nc3_self_duality(W, Mt)
    out["nc3_uncentred"] = nc3_uncentred(W, Hbar)
    out["nc4"] = nc4_agreement(H, y, K, W, b)
    return out
