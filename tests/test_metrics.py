"""ufm.metrics: exact geometries, a worked example (orthogonal-frame means with noise along one
direction), hand-computed noise cases, invariances, degenerate inputs and jit.

Expected numbers are derived by hand in the comments, never copied from a run. float64
throughout (conftest); tolerances 1e-12 unless a comment says otherwise. Inputs are built
with numpy and every metric of a configuration comes from one jitted call, so each shape
compiles once.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ufm import geometry, metrics

SUMMARY_KEYS = {"nc1", "nc1_trace", "cdnv", "nc2", "nc2_of", "nc2_equinorm", "nc2_equiangularity"}
CLASSIFIER_KEYS = {"nc2_W", "nc2_W_equinorm", "nc3", "nc3_uncentred", "nc4"}


@functools.partial(jax.jit, static_argnums=2)
def _all_metrics(H, y, K, W, b):
    """summary(H, y, K, W, b) plus the variants summary leaves out."""
    out = metrics.summary(H, y, K, W, b)
    Hbar, _ = metrics.class_means(H, y, K)
    Mt = metrics.centred_means(H, y, K)
    unit = Mt / jnp.linalg.norm(Mt, axis=0)[None, :]
    out |= {
        "nc1_svd": metrics.nc1_svd(H, y, K),
        "cdnv_ddof1": metrics.cdnv(H, y, K, ddof=1),
        "cdnv_p2": metrics.cdnv(H, y, K, p=2),
        "nc2_maxangle": metrics.nc2_maxangle(Mt.T),
        "nc2_uncentred": metrics.nc2_etf_error(Hbar.T @ Hbar),
        "nc4_no_bias": metrics.nc4_agreement(H, y, K, W),
        "cosines": unit.T @ unit,
    }
    return out


def _features(means, n, deviations=None):
    """Columns mu_k repeated n times (sorted by class), plus optional (d, K n) deviations."""
    H = np.repeat(np.asarray(means), n, axis=1)
    return H if deviations is None else H + deviations


def _labels(K, n):
    return np.repeat(np.arange(K), n)


def _random_orthogonal(rng, d):
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return Q


def _generic_problem(seed=0, K=4, d=5, n=2):
    """Random means, within-class noise, classifier and bias; balanced, sorted by class."""
    rng = np.random.default_rng(seed)
    H = _features(3.0 * rng.standard_normal((d, K)), n, rng.standard_normal((d, K * n)))
    return H, _labels(K, n), K, rng.standard_normal((K, d)), rng.standard_normal(K)


def _assert_same(a, b, keys, rtol=1e-10):
    # rtol 1e-10: rotated or permuted inputs change the rounding of SVDs and sums
    for k in keys:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=1e-12, err_msg=k)


SCALE_FREE = ["nc1", "nc1_svd", "nc1_trace", "cdnv", "cdnv_ddof1", "nc2", "nc2_of"]
SCALE_FREE += ["nc2_equinorm", "nc2_equiangularity", "nc2_maxangle", "nc2_uncentred"]
SCALE_FREE += ["nc2_W", "nc2_W_equinorm", "nc3", "nc3_uncentred", "nc4_no_bias"]


# --------------------------------------------------------------------------- exact geometries


@pytest.mark.parametrize("K, d", [(2, 1), (4, 3), (4, 5)])
def test_exact_simplex_etf_is_fully_collapsed(K, d):
    E = geometry.simplex_etf(K, d, scale=3.0)  # (K, d), rows = class means, already centred
    out = _all_metrics(_features(E.T, 2), _labels(K, 2), K, E, np.zeros(K))
    for name in ("nc2", "nc2_equinorm", "nc2_equiangularity", "nc2_maxangle"):
        assert abs(out[name]) < 1e-12, name
    for name in ("nc2_W", "nc2_W_equinorm", "nc3", "nc3_uncentred"):
        assert abs(out[name]) < 1e-12, name
    assert out["nc4"] == 1.0
    # every cosine between distinct centred means is -1/(K-1)
    cosines = out["cosines"][~np.eye(K, dtype=bool)]
    np.testing.assert_allclose(cosines, -1.0 / (K - 1), rtol=0, atol=1e-12)


def test_orthogonal_frame_means():
    K, d = 4, 5
    F = geometry.orthogonal_frame(K, d, scale=2.0)
    out = _all_metrics(_features(F.T, 2), _labels(K, 2), K, F, np.zeros(K))
    # uncentred means form the OF; centred OF means e_k - 1/K sum e_j have Gram 4 P_K: an ETF
    for name in ("nc2_of", "nc2", "nc2_equinorm", "nc2_equiangularity", "nc3_uncentred"):
        assert abs(out[name]) < 1e-12, name
    # at an OF, Papyan's centred NC3 is ||F^T/sqrt K - P/sqrt(K-1)||^2
    # = 1 + 1 - 2 Tr(P)/sqrt(K (K-1)) = 2 - 2 sqrt((K-1)/K)
    assert out["nc3"] == pytest.approx(2 - 2 * math.sqrt((K - 1) / K), abs=1e-12)
    # and the uncentred ETF error is its square root
    assert out["nc2_uncentred"] == pytest.approx(math.sqrt(2 - 2 * math.sqrt((K - 1) / K)))


def test_nc1_pinv_nonnegative_at_exact_collapse():
    # rotated ETF means are not exactly representable, so class means of copies carry rounding
    K, d, n = 4, 5, 2
    means = _random_orthogonal(np.random.default_rng(1), d) @ geometry.simplex_etf(K, d, 2.0).T
    out = _all_metrics(_features(means, n), _labels(K, n), K, np.ones((K, d)), np.zeros(K))
    # absolute tolerance: exact collapse is 0 up to (eps * scale)^2 / scale^2 ~ 1e-31
    assert 0.0 <= out["nc1"] < 1e-24
    assert 0.0 <= out["nc1_svd"] < 1e-24
    assert 0.0 <= out["nc1_trace"] < 1e-24


# --------------------------------------------------------------------------- worked example


def _worked_example(v):
    """K=4, d=5, n=2: means mu_k = 2 e_k (an OF), samples mu_k +- 0.6 v, W = Hbar^T."""
    K, d, n, a = 4, 5, 2, 0.6
    Hbar = 2.0 * np.eye(d, K)
    deviations = np.tile(a * np.stack([v, -v], axis=1), (1, K))  # +v, -v per class
    return _all_metrics(_features(Hbar, n, deviations), _labels(K, n), K, Hbar.T, np.zeros(K))


def test_worked_example_noise_orthogonal_to_means():
    out = _worked_example(np.eye(5)[4])  # v = e_5
    # e_5 is orthogonal to span(Mtilde): pinv and svd NC1 are blind to it
    assert abs(out["nc1"]) < 1e-12 and abs(out["nc1_svd"]) < 1e-12
    # Tr Sigma_W = 0.6^2 = 0.36; Mtilde = 2 P_4 so Tr Sigma_B = ||Mtilde||^2 / 4 = 4*3/4 = 3
    assert out["nc1_trace"] == pytest.approx(0.36 / 3, abs=1e-12)
    # sigma_k^2 = 0.36 (ddof 0) or 0.72 (ddof 1); ||mu_k - mu_k'||^2 = 8
    assert out["cdnv"] == pytest.approx(0.36 / 8, abs=1e-12)
    assert out["cdnv_ddof1"] == pytest.approx(0.72 / 8, abs=1e-12)
    assert out["cdnv_p2"] == pytest.approx(0.36 / 64, abs=1e-12)
    # centred means 2(e_k - 1/4 sum e_j) form an ETF, uncentred ones an OF
    for name in ("nc2", "nc2_equinorm", "nc2_equiangularity", "nc2_maxangle", "nc2_of"):
        assert abs(out[name]) < 1e-12, name
    # uncentred Gram 4 I against P_4: ||I/2 - P/sqrt3||^2 = 1 + 1 - 2 * 3/(2 sqrt3) = 2 - sqrt3
    assert out["nc2_uncentred"] == pytest.approx(math.sqrt(2 - math.sqrt(3)), abs=1e-12)
    # W^T/||W|| = [e_k / 2] against Mtilde/||Mtilde|| = P/sqrt3: the same 2 - sqrt3, squared
    assert out["nc3"] == pytest.approx(2 - math.sqrt(3), abs=1e-12)
    assert abs(out["nc3_uncentred"]) < 1e-12
    assert out["nc4"] == 1.0
    # W rows 2 e_k: equal norms, Gram 4 I is an OF, so the same distance to the ETF
    assert abs(out["nc2_W_equinorm"]) < 1e-12
    assert out["nc2_W"] == pytest.approx(math.sqrt(2 - math.sqrt(3)), abs=1e-12)


def test_worked_example_noise_inside_centred_span():
    out = _worked_example((np.eye(5)[0] - np.eye(5)[1]) / math.sqrt(2))
    # Sigma_B = P_4 (embedded), so Sigma_B^+ = P_4 and v in its range:
    # (1/K) Tr(Sigma_W Sigma_B^+) = (1/4) * 0.36 * v^T P v = 0.09
    assert out["nc1"] == pytest.approx(0.09, abs=1e-12)
    assert out["nc1_svd"] == pytest.approx(0.09, abs=1e-12)
    # trace ratio and CDNV see only norms: unchanged from the orthogonal case
    assert out["nc1_trace"] == pytest.approx(0.12, abs=1e-12)
    assert out["cdnv"] == pytest.approx(0.045, abs=1e-12)


# --------------------------------------------------------------------------- hand-computed noise


@pytest.mark.parametrize(
    "direction, nc1_expected",
    [
        # u = (e1 - e2)/sqrt2 lies in span(ETF): Sigma_B = r^2/(K-1) * projector, so
        # nc1 = (1/K) a^2 (K-1) / r^2 = (1/4)(0.25)(3)/4 = 3/64
        pytest.param((1.0, -1.0, 0.0, 0.0, 0.0), 3 / 64, id="inside-span"),
        # u = e5 is orthogonal to the ETF in the first four coordinates: pinv NC1 blind
        pytest.param((0.0, 0.0, 0.0, 0.0, 1.0), 0.0, id="orthogonal"),
    ],
)
def test_etf_means_with_within_class_noise(direction, nc1_expected):
    K, d, n, r, a = 4, 5, 2, 2.0, 0.5
    u = np.asarray(direction) / np.linalg.norm(direction)
    means = geometry.simplex_etf(K, d, scale=r).T
    H = _features(means, n, np.tile(a * np.stack([u, -u], axis=1), (1, K)))
    out = _all_metrics(H, _labels(K, n), K, np.asarray(means.T), np.zeros(K))
    # Tr Sigma_W = a^2 = 0.25; ETF rows have norm r and are centred: Tr Sigma_B = r^2 = 4
    assert out["nc1_trace"] == pytest.approx(0.25 / 4, abs=1e-12)
    assert out["nc1"] == pytest.approx(nc1_expected, abs=1e-12)
    assert out["nc1_svd"] == pytest.approx(nc1_expected, abs=1e-12)
    # ||mu_k - mu_k'||^2 = 2 r^2 (1 + 1/(K-1)) = 32/3, sigma_k^2 = a^2 = 0.25
    assert out["cdnv"] == pytest.approx(0.25 / (32 / 3), abs=1e-12)


def test_imbalanced_one_dimensional_case_by_hand():
    # d = 1: class 0 = {0, 2} (mean 1), class 1 = {6} (mean 6)
    H, y, K = np.asarray([[0.0, 2.0, 6.0]]), np.asarray([0, 0, 1]), 2
    Hbar, counts = metrics.class_means(H, y, K)
    np.testing.assert_allclose(Hbar, [[1.0, 6.0]], atol=1e-15)
    np.testing.assert_allclose(counts, [2.0, 1.0], atol=0)
    # weighted mu_G = 8/3, so Mtilde = [-5/3, 10/3]; unweighted mu_G = 7/2
    np.testing.assert_allclose(metrics.centred_means(H, y, K), [[-5 / 3, 10 / 3]], atol=1e-14)
    unweighted = metrics.centred_means(H, y, K, weighted_mean=False)
    np.testing.assert_allclose(unweighted, [[-2.5, 2.5]], atol=1e-14)
    # Sigma_W = (1 + 1 + 0)/3 = 2/3; Sigma_B = (25/9 + 100/9)/2 = 125/18 (unweighted 25/4)
    out = _all_metrics(H, y, K, np.ones((K, 1)), np.zeros(K))
    assert out["nc1_trace"] == pytest.approx((2 / 3) / (125 / 18), abs=1e-14)
    trace_unweighted = metrics.nc1_trace(H, y, K, weighted_mean=False)
    assert trace_unweighted == pytest.approx((2 / 3) / (25 / 4), abs=1e-14)
    # in d = 1 pinv is 1/Sigma_B: (1/2)(2/3)/(125/18) = 6/125
    assert out["nc1"] == pytest.approx(6 / 125, abs=1e-14)
    assert out["nc1_svd"] == pytest.approx(6 / 125, abs=1e-14)
    # sigma_0^2 = 1, sigma_1^2 = 0, ||mu_0 - mu_1||^2 = 25: (1 + 0)/2/25
    assert out["cdnv"] == pytest.approx(0.02, abs=1e-14)


def test_nc1_pinv_matches_numpy_pinv_at_a_generic_point():
    H, y, K, W, b = _generic_problem()
    means = np.stack([H[:, y == k].mean(axis=1) for k in range(K)], axis=1)
    D = H - means[:, y]
    Mt = means - H.mean(axis=1, keepdims=True)
    Sigma_W, Sigma_B = D @ D.T / H.shape[1], Mt @ Mt.T / K
    expected = np.trace(Sigma_W @ np.linalg.pinv(Sigma_B)) / K
    out = _all_metrics(H, y, K, W, b)
    assert out["nc1"] == pytest.approx(expected, rel=1e-10)
    # Sigma_B has rank K-1 here, so the svd variant agrees
    assert out["nc1_svd"] == pytest.approx(expected, rel=1e-10)
    assert out["nc1_trace"] == pytest.approx(np.trace(Sigma_W) / np.trace(Sigma_B), rel=1e-12)


# --------------------------------------------------------------------------- NC4


def test_nc4_bias_changes_the_decision():
    # d = 1, class 0 = {-1, -1.2} (mean -1.1), class 1 = {1}; W = [[-1], [1]]
    H, y, K = np.asarray([[-1.0, -1.2, 1.0]]), np.asarray([0, 0, 1]), 2
    W = np.asarray([[-1.0], [1.0]])
    # no bias: logits (-h, h) pick the sign, as does the nearest mean
    assert metrics.nc4_agreement(H, y, K, W) == 1.0
    # b = (0, 3): logits (1, 2) and (1.2, 1.8) pick class 1 for both class-0 samples
    b = np.asarray([0.0, 3.0])
    assert metrics.nc4_agreement(H, y, K, W, b) == pytest.approx(1 / 3, abs=1e-15)
    # per-class rates 0 and 1
    assert metrics.nc4_agreement(H, y, K, W, b, per_class=True) == pytest.approx(0.5, abs=1e-15)


def test_nc4_labels_only_define_the_means():
    # h = 1 is labelled 0, yet W and the nearest mean (1.1, of class 1) both say class 1
    H, y, K = np.asarray([[-1.0, 1.0, 1.1]]), np.asarray([0, 0, 1]), 2
    assert metrics.nc4_agreement(H, y, K, np.asarray([[-1.0], [1.0]])) == 1.0


# --------------------------------------------------------------------------- invariances


def test_invariant_under_rotation():
    H, y, K, W, b = _generic_problem()
    Q = _random_orthogonal(np.random.default_rng(2), H.shape[0])
    rotated, base = _all_metrics(Q @ H, y, K, W @ Q.T, b), _all_metrics(H, y, K, W, b)
    _assert_same(rotated, base, SCALE_FREE + ["cdnv_p2", "nc4"])


def test_invariant_under_label_permutation():
    H, y, K, W, b = _generic_problem()
    perm = np.asarray([2, 0, 3, 1])  # old class k is now class perm[k]
    inverse = np.argsort(perm)  # new row perm[k] of W must be old row k
    permuted = _all_metrics(H, perm[y], K, W[inverse], b[inverse])
    _assert_same(permuted, _all_metrics(H, y, K, W, b), SCALE_FREE + ["cdnv_p2", "nc4"])


def test_invariant_under_sample_order():
    H, y, K, W, b = _generic_problem()
    order = np.random.default_rng(3).permutation(H.shape[1])
    shuffled = _all_metrics(H[:, order], y[order], K, W, b)
    _assert_same(shuffled, _all_metrics(H, y, K, W, b), SCALE_FREE + ["cdnv_p2", "nc4"])


def test_scaling_features():
    H, y, K, W, b = _generic_problem()
    c = 7.3
    scaled, base = _all_metrics(c * H, y, K, W, b), _all_metrics(H, y, K, W, b)
    _assert_same(scaled, base, SCALE_FREE)
    # cdnv with p = 2: variances scale by c^2, squared distances squared by c^4
    assert scaled["cdnv_p2"] == pytest.approx(float(base["cdnv_p2"]) / c**2, rel=1e-12)


# --------------------------------------------------------------------------- summary, jit, dtype


def test_summary_keys():
    H, y, K, W, b = _generic_problem()
    # eval_shape traces without compiling: keys and shapes only
    summary = functools.partial(metrics.summary, K=K)
    assert set(jax.eval_shape(summary, H, y)) == SUMMARY_KEYS
    assert set(jax.eval_shape(summary, H, y, W=W)) == SUMMARY_KEYS | CLASSIFIER_KEYS
    shapes = jax.eval_shape(summary, H, y, W=W, b=b)
    assert set(shapes) == SUMMARY_KEYS | CLASSIFIER_KEYS
    assert all(v.shape == () and v.dtype == jnp.float64 for v in shapes.values())


def test_summary_under_jit():
    H, y, K, W, b = _generic_problem()
    # summary is jitted itself; an outer jit with K static changes nothing
    jitted = jax.jit(metrics.summary, static_argnums=2)(H, y, K, W, b)
    keys = sorted(SUMMARY_KEYS | CLASSIFIER_KEYS)
    _assert_same(jitted, _all_metrics(H, y, K, W, b), keys, rtol=1e-12)


def test_float32_in_float32_out():
    # smoke test: strict promotion with x64 on must not meet a float64 constant
    H, y, K, W, b = _generic_problem()
    H, W, b = (x.astype(np.float32) for x in (H, W, b))
    for name, value in _all_metrics(H, y, K, W, b).items():
        assert value.dtype == jnp.float32, name
        assert bool(jnp.all(jnp.isfinite(value))), name


def test_zero_features_are_degenerate_not_collapsed():
    K, n, d = 4, 2, 5
    out = _all_metrics(np.zeros((d, K * n)), _labels(K, n), K, np.ones((K, d)), np.zeros(K))
    # no between-class scatter: NC1 undefined
    for name in ("nc1", "nc1_svd", "nc1_trace", "nc2_equinorm"):
        assert bool(jnp.isnan(out[name])), name
    # a zero Gram is at distance 1 from any target (1 up to the rounding of ||T/||T|| ||)
    assert out["nc2"] == pytest.approx(1.0, abs=1e-15)
    assert out["nc2_of"] == pytest.approx(1.0, abs=1e-15)


def test_structural_errors_raise():
    H, y, K = np.zeros((3, 6)), _labels(3, 2), 3
    with pytest.raises(ValueError, match="H must be"):
        metrics.nc1_trace(np.zeros(6), y, K)
    with pytest.raises(ValueError, match="y must be"):
        metrics.nc1_trace(H, y[:5], K)
    with pytest.raises(ValueError, match="y must be"):
        metrics.nc1_trace(H, y.astype(np.float64), K)
    with pytest.raises(ValueError, match="K must be"):
        metrics.class_means(H, y, 1)
    with pytest.raises(ValueError, match="W must have shape"):
        metrics.summary(H, y, K, W=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="b must have shape"):
        metrics.nc4_agreement(H, y, K, np.zeros((3, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="without W"):
        metrics.summary(H, y, K, b=np.zeros(3))
    with pytest.raises(ValueError, match="Gram"):
        metrics.nc2_etf_error(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="W must be"):
        metrics.nc3_self_duality(np.zeros((3, 4)), np.zeros((3, 4)))
