"""Every NC1-NC3 metric from class statistics (`ClassStats`) and, for NC2/NC3 of the
classifier, W (K, d). One definition per metric: the raw-feature functions of `_data` and
the streaming `report` both come here. Formulas and sources: the docstrings below and
../shared/theory/metrics.md. Empty classes are not allowed here (their means are
undefined): `report` removes them first and says so.
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


def nc1_pinv(
    stats: ClassStats,
    *,
    rtol: float | None = None,
    weighted_mean: bool = True,
    between: tuple[Array, Array] | None = None,
) -> Array:
    """Papyan's NC1 = (1/K) Tr(Sigma_W Sigma_B^+) (Papyan, Han & Donoho 2020, PNAS; Tirer et
    al. 2023 Sec. 5), as a sum of nonnegative terms so it is never negative (metrics.md §7):

        (1/K) sum_{i: s_i > rtol s_1} u_i^T Sigma_W u_i / s_i^2

    over the SVD of Mtilde/sqrt(K). `rtol` defaults to max(d, K) eps (numpy's pinv cut-off).
    Blind to within-class variance orthogonal to span(Mtilde). nan when Sigma_B = 0.
    `between` is `_between_svd` of the centred means when the caller already has it."""
    d, K = stats.means.shape
    if rtol is None:
        rtol = max(d, K) * float(jnp.finfo(stats.means.dtype).eps)
    U, s = between or _between_svd(stats.centred_means(weighted_mean))
    keep = s > rtol * s[0]
    terms = jnp.where(keep, _within_energy(stats, U) / jnp.where(keep, s, 1.0) ** 2, 0.0)
    return jnp.where(s[0] > 0, jnp.sum(terms) / K, jnp.nan)


def nc1_svd(
    stats: ClassStats,
    *,
    weighted_mean: bool = True,
    between: tuple[Array, Array] | None = None,
) -> Array:
    """Han et al. 2022's NC1: (1/K) sum_{i <= min(K-1, d)} u_i^T Sigma_W u_i / s_i^2 over the
    top eigenpairs of Sigma_B (rhubarbwu `covariance_pinv(svd=True)`, which omits the 1/K).
    Equals `nc1_pinv` when Sigma_B has rank min(K-1, d); inf when its rank is lower."""
    d, K = stats.means.shape
    r = min(K - 1, d)
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
    """Tr Sigma_W / Tr Sigma_B (Tirer et al. 2023 Eq. (3), their NC1-tilde; rhubarbwu
    `covariance_ratio` up to its Sigma_B divisor). Sees all within-class variance. nan when
    Tr Sigma_B = 0."""
    tr_W, tr_B = scatter_traces(stats, weighted_mean=weighted_mean)
    return jnp.where(tr_B > 0, tr_W / jnp.where(tr_B > 0, tr_B, 1.0), jnp.nan)


def coefficient_of_variation(x: Array) -> Array:
    """std / mean (ddof 0)."""
    return jnp.std(x) / jnp.mean(x)


def nc3_self_duality(W: Array, Mt: Array) -> Array:
    """Papyan's self-duality || W^T/||W||_F - Mtilde/||Mtilde||_F ||_F^2, W (K, d)
    uncentred, Mtilde (d, K) centred (metrics.md `nc3_papyan`; nc-toolbox). At a bias-free
    MSE optimum (an OF) it is 2 - 2 sqrt((K-1)/K), not 0: use `nc3_uncentred` there."""
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
    """Every metric but NC4 (which needs the samples), by its name in `DEFINITIONS`.

    `pairs` is `pair_statistics(...)` when already computed (in blocks, by `report`);
    otherwise it is computed here in one block, which keeps this function traceable."""
    d, K = stats.means.shape
    if pairs is None:
        pairs = pair_statistics(stats, W, weighted_mean=weighted_mean, riesz_s=riesz_s)
    Mt = stats.centred_means(weighted_mean)
    between = _between_svd(Mt)  # one SVD (a QR of K x d first when K > d) for both NC1s
    norms = jnp.linalg.norm(Mt, axis=0)
    out = {
        "nc1": nc1_pinv(stats, weighted_mean=weighted_mean, between=between),
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
