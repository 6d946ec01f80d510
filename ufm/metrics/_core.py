"""Every NC1-NC3 metric from class statistics (`ClassStats`) and, for NC2/NC3 of the
classifier, W (K, d). One definition per metric: the raw-feature functions of `_data` and
the streaming `report` both come here. Formulas and sources: the docstrings below and
`DEFINITIONS`. Empty classes are not allowed here (their means are undefined): `report`
removes them first and says so.

Reference implementations checked, by commit (definitions and tolerances only):
  - Papyan, Han & Donoho's notebook, github.com/neuralcollapse/neuralcollapse @ 7f12011
    (2022-02-08), `neuralcollapse.ipynb`;
  - rhubarbwu/neural-collapse @ c05a0b8 (2025-02-06), `neural_collapse/measure.py`;
  - felixsh/nc-toolbox @ a527f99 (2025-04-16), `nc_toolbox/metrics.py`.
"""

import math
from collections.abc import Callable

import jax.numpy as jnp
from jax import Array

from . import _pairs
from ._stats import ClassStats


def _between_svd(Mt: Array) -> tuple[Array, Array]:
    """Left singular vectors U (d, r) and singular values s (descending) of Mtilde/sqrt(K):
    the eigenpairs of Sigma_B are (U[:, i], s_i^2). For K > d, from the d x d triangular
    factor of Mtilde^T = Q R (backward stable, and no (K, d) singular-vector matrix)."""
    d, K = Mt.shape
    A = Mt / math.sqrt(K)
    if K > d:
        A = jnp.linalg.qr(A.T, mode="r").T
    U, s, _ = jnp.linalg.svd(A, full_matrices=False)
    return U, s


def _within_energy(stats: ClassStats, U: Array) -> Array:
    """u_i^T Sigma_W u_i for each column u_i of U."""
    return jnp.sum(U * (stats.within @ U), axis=0) / stats.num_samples


def pinv_rtol(d: int, dtype=None) -> float:
    """The default relative cut of `nc1_pinv`: d eps (eps of `dtype`, float64 by default).

    It is torch.linalg.pinv's default rtol = max(m, n) eps for the d x d matrix Sigma_B
    (rhubarbwu/neural-collapse @ c05a0b8 calls it with no tolerance), and
    numpy.linalg.pinv(rtol=None)'s; numpy's own default rcond = 1e-15 (nc-toolbox @
    a527f99) equals it at d = 4.5."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    return d * float(jnp.finfo(dtype).eps)


def between_directions(d: int, K: int) -> int:
    """min(K-1, d): the most directions Sigma_B (rank <= K-1, d x d) can have."""
    return min(K - 1, d)


def _kept(s: Array, rtol: float | Array) -> Array:
    """Mask of the eigenvalues s_i^2 of Sigma_B above the cut: s_i^2 > rtol s_1^2 (in
    singular values s_i > sqrt(rtol) s_1, which cannot underflow)."""
    return s > jnp.sqrt(jnp.asarray(rtol, s.dtype)) * s[0]


def nc1_pinv(
    stats: ClassStats,
    *,
    rtol: float | None = None,
    weighted_mean: bool = True,
    between: tuple[Array, Array] | None = None,
    return_dropped: bool = False,
) -> Array | tuple[Array, Array]:
    """Papyan's NC1 = (1/K) Tr(Sigma_W Sigma_B^+) (Papyan, Han & Donoho 2020, PNAS;
    Tirer et al. 2023 Sec. 5), as a sum of nonnegative terms, so it is never negative:

        (1/K) sum_{i: lambda_i > rtol lambda_1} u_i^T Sigma_W u_i / lambda_i

    over the eigenpairs (u_i, lambda_i = s_i^2) of Sigma_B, from the SVD of Mtilde/sqrt(K)
    (never from the rounded product Mtilde Mtilde^T). The pseudo-inverse drops every
    eigenvalue lambda_i <= rtol lambda_1, the largest: the cut is relative to the
    EIGENVALUES of Sigma_B, as torch.linalg.pinv(Sigma_B) (rhubarbwu/neural-collapse @
    c05a0b8, `covariance_ratio(metric="pinv")`) and numpy.linalg.pinv(Sigma_B)
    (felixsh/nc-toolbox @ a527f99, `nc1_strong`) apply it. `rtol` defaults to
    `pinv_rtol(d)` = d eps, torch's default for the d x d Sigma_B (2.2e-16 d in float64;
    in singular values of Mtilde, sqrt(d eps) = 1.5e-8 sqrt(d)). Two class means closer
    than that, relative to the spread of the means (minority collapse, or solver noise),
    span no direction of Sigma_B^+, as in those implementations, instead of one with a
    rounding-error eigenvalue that makes NC1 blow up.

    Blind to within-class variance orthogonal to the kept directions. nan when
    Sigma_B = 0. With `return_dropped`, also the number of the min(K-1, d) possible
    directions that fell below the cut (an int array; `report` states it). `between` is
    `_between_svd` of the centred means when the caller already has it."""
    d, K = stats.means.shape
    if rtol is None:
        rtol = pinv_rtol(d, stats.means.dtype)
    U, s = between or _between_svd(stats.centred_means(weighted_mean))
    keep = _kept(s, rtol)
    terms = jnp.where(keep, _within_energy(stats, U) / jnp.where(keep, s, 1.0) ** 2, 0.0)
    value = jnp.where(s[0] > 0, jnp.sum(terms) / K, jnp.nan)
    if not return_dropped:
        return value
    dropped = jnp.maximum(between_directions(d, K) - jnp.sum(keep), 0)
    return value, dropped


def nc1_svd(
    stats: ClassStats,
    *,
    weighted_mean: bool = True,
    between: tuple[Array, Array] | None = None,
) -> Array:
    """Han, Papyan & Donoho's top-(K-1) NC1 (Han et al. 2022):

        (1/K) sum_{i <= min(K-1, d)} u_i^T Sigma_W u_i / lambda_i

    over the top eigenpairs of Sigma_B, with no cut. It is what Papyan et al.'s notebook
    (neuralcollapse/neuralcollapse @ 7f12011: scipy svds(Sb, k=C-1), then
    trace(Sw @ inv_Sb), without the 1/C; muG the unweighted mean of class means) and
    rhubarbwu/neural-collapse @ c05a0b8 (`covariance_ratio(metric="svd")`, with 1/K)
    compute. Equals `nc1_pinv` when Sigma_B has min(K-1, d) eigenvalues above the pinv
    cut. When it has fewer (means that coincide up to rounding) it inverts an eigenvalue
    at the rounding level and blows up; the size of that blow-up is rounding noise, so
    two implementations then disagree by orders of magnitude (`report` notes it)."""
    d, K = stats.means.shape
    r = between_directions(d, K)
    U, s = between or _between_svd(stats.centred_means(weighted_mean))
    energy = _within_energy(stats, U[:, :r])
    return jnp.where(s[0] > 0, jnp.sum(energy / s[:r] ** 2) / K, jnp.nan)


def scatter_traces(stats: ClassStats, *, weighted_mean: bool = True) -> tuple[Array, Array]:
    """(Tr Sigma_W, Tr Sigma_B), Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(.)^T and
    Sigma_B = (1/K) sum_k (mu_k - mu_G)(.)^T (Papyan et al.; Tirer et al. 2023 Eq. (3))."""
    K = stats.counts.shape[0]
    tr_B = jnp.sum(stats.centred_means(weighted_mean) ** 2) / K
    return jnp.sum(stats.sq_dev) / stats.num_samples, tr_B


def nc1_trace(stats: ClassStats, *, weighted_mean: bool = True) -> Array:
    """Tr Sigma_W / Tr Sigma_B (Tirer et al. 2023 Eq. (3), their NC1-tilde;
    rhubarbwu/neural-collapse @ c05a0b8 `covariance_ratio(metric="quotient")`, whose
    Sigma_B divides by K as ours; before its commit 1ab766b it divided by d). Sees all
    within-class variance. nan when Tr Sigma_B = 0."""
    tr_W, tr_B = scatter_traces(stats, weighted_mean=weighted_mean)
    return jnp.where(tr_B > 0, tr_W / jnp.where(tr_B > 0, tr_B, 1.0), jnp.nan)


def coefficient_of_variation(x: Array) -> Array:
    """std / mean (ddof 0)."""
    return jnp.std(x) / jnp.mean(x)


def nc3_self_duality(W: Array, Mt: Array) -> Array:
    """Papyan's self-duality || W^T/||W||_F - Mtilde/||Mtilde||_F ||_F^2, W (K, d)
    uncentred, Mtilde (d, K) centred (Papyan et al.'s notebook @ 7f12011, `W_M_dist`;
    felixsh/nc-toolbox @ a527f99 `nc3_self_duality` returns its square root). At a
    bias-free MSE optimum (an OF) it is 2 - 2 sqrt((K-1)/K), not 0: use `nc3_uncentred`
    there."""
    return jnp.sum((W.T / jnp.linalg.norm(W) - Mt / jnp.linalg.norm(Mt)) ** 2)


def duality_cosines(W: Array, Mt: Array) -> Array:
    """cos(w_k, mu_k - mu_G) per class, shape (K,) (Wu & Papyan 2024's duality)."""
    return jnp.sum(W * Mt.T, axis=1) / (jnp.linalg.norm(W, axis=1) * jnp.linalg.norm(Mt, axis=0))


def pair_inputs(stats: ClassStats, W: Array | None, weighted_mean: bool) -> _pairs.PairInputs:
    variances = jnp.stack([stats.variances(0), stats.variances(1)])
    mu_G = stats.global_mean(weighted_mean)
    return _pairs.pair_inputs(stats.means - mu_G[:, None], mu_G, variances, W)


def pair_statistics(
    stats: ClassStats,
    W: Array | None = None,
    *,
    weighted_mean: bool = True,
    riesz_s: float | None = None,
    block: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Array]:
    """`_pairs.reduce` of these statistics, in blocks of `block` rows."""
    d = stats.means.shape[0]
    inp = pair_inputs(stats, W, weighted_mean)
    riesz_s = d - 2 if riesz_s is None else riesz_s
    return _pairs.reduce(inp, riesz_s=riesz_s, block=block, progress=progress)


def metrics(
    stats: ClassStats,
    W: Array | None = None,
    *,
    weighted_mean: bool = True,
    riesz_s: float | None = None,
    pairs: dict[str, Array] | None = None,
) -> dict[str, Array]:
    """Every metric but NC4 (which needs the samples), by its name in `DEFINITIONS`, and
    ``nc1_dropped``: how many of the min(K-1, d) between-class directions fell below the
    pinv cut of `nc1_pinv` (an int array, not a metric).

    `pairs` is `pair_statistics(...)` when already computed (in blocks, by `report`);
    otherwise it is computed here in one block, which keeps this function traceable."""
    d, K = stats.means.shape
    if pairs is None:
        pairs = pair_statistics(stats, W, weighted_mean=weighted_mean, riesz_s=riesz_s)
    Mt = stats.centred_means(weighted_mean)
    between = _between_svd(Mt)  # one SVD (a QR of K x d first when K > d) for both NC1s
    norms = jnp.linalg.norm(Mt, axis=0)
    nc1, nc1_dropped = nc1_pinv(
        stats, weighted_mean=weighted_mean, between=between, return_dropped=True
    )
    out = {
        "nc1": nc1,
        "nc1_dropped": nc1_dropped,
        "nc1_svd": nc1_svd(stats, weighted_mean=weighted_mean, between=between),
        "nc1_trace": nc1_trace(stats, weighted_mean=weighted_mean),
        "cdnv": pairs["cdnv"],
        "cdnv_ddof1": pairs["cdnv_ddof1"],
        "cdnv_lc": pairs["cdnv_lc"],
        "nc2": pairs["etf"],
        "nc2_of": pairs["of"],
        "nc2_equinorm": coefficient_of_variation(norms),
        "nc2_equinorm_sq": coefficient_of_variation(norms**2),
        "nc2_equiangularity": pairs["cos_std"],
        "nc2_maxangle": pairs["maxangle"],
        "nc2_cos_mean": pairs["cos_mean"],
        "nc2_cos_max": pairs["cos_max"],
        "gnc2": pairs["gnc2_log_var"],
        "gnc2_log_mean": pairs["gnc2_log_mean"],
        "gnc2_riesz_mean": pairs["gnc2_riesz_mean"],
        "gnc2_riesz_var": pairs["gnc2_riesz_var"],
    }
    if W is None:
        return out
    cosines = duality_cosines(W, Mt)
    out |= {
        "nc2_W": pairs["W_etf"],
        "nc2_W_equinorm": coefficient_of_variation(jnp.linalg.norm(W, axis=1)),
        "nc3": nc3_self_duality(W, Mt),
        "nc3_uncentred": nc3_self_duality(W, stats.means),
        "nc3_alignment": pairs["alignment"],
        "nc3_cos_mean": jnp.mean(cosines),
        "unc3": coefficient_of_variation(cosines),
    }
    return out
