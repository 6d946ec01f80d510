"""`ufm.metrics.report` and `Accumulator`: streamed and tiled metrics against a dense numpy
reference written here, exact configurations with hand-derived values, invariances, and the
handling of awkward inputs (labels, empty and singleton classes, K > d, low precision,
non-finite rows).

Small blocks and batches (pair_block 3, batch_size 7) force many tiles and merges on small
problems; the reference builds every K x K matrix at once.
"""

import math

import numpy as np
import pytest
from nc_reference import random_features as _random
from nc_reference import reference

from ufm import geometry, metrics

TILED = dict(pair_block=3, batch_size=7)


def _assert_metrics(found, expected, rtol=1e-9, atol=1e-12):
    assert set(found) == set(expected), set(found) ^ set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(found[name], value, rtol=rtol, atol=atol, err_msg=name)


# --------------------------------------------------------------------------- against the reference


@pytest.mark.parametrize(
    "K, d, n, classifier",
    [
        pytest.param(5, 6, (4, 7, 3, 5, 9), True, id="imbalanced-with-W"),
        pytest.param(5, 6, 6, False, id="balanced-no-W"),
        pytest.param(5, 2, (5, 3, 6, 2, 4), True, id="K-above-d-plus-1"),
    ],
)
def test_report_matches_a_dense_reference(K, d, n, classifier):
    H, y, W, b = _random(1, K, d, n, classifier)
    # rtol 1e-9: pinv and the SVD / QR routes round differently on a generic point
    _assert_metrics(metrics.report(H, y, W, b, **TILED)["metrics"], reference(H, y, W, b))


def test_tiles_batches_and_sample_order_leave_every_number_alone():
    H, y, W, b = _random(2)
    base = metrics.report(H, y, W, b)["metrics"]
    order = np.random.default_rng(0).permutation(y.size)
    for options in (dict(pair_block=1, batch_size=1), dict(pair_block=2, batch_size=1000)):
        found = metrics.report(H[:, order], y[order], W, b, **options)["metrics"]
        _assert_metrics(found, base, rtol=1e-11)


def test_summary_keys_and_values_are_the_reports():
    H, y, W, b = _random(3)
    summary = metrics.summary(H, y, 5, W, b)
    report = metrics.report(H, y, W, b, **TILED)["metrics"]
    assert set(summary) <= set(report)
    for name, value in summary.items():
        assert report[name] == pytest.approx(float(value), rel=1e-10, abs=1e-14), name


# --------------------------------------------------------------------------- exact configurations


def test_exact_simplex_etf_with_its_classifier():
    K, d, n, r = 5, 6, 3, 2.0
    E = np.asarray(geometry.simplex_etf(K, d, scale=r))  # rows: centred means of norm r
    y = np.repeat(np.arange(K), n)
    out = metrics.report(E.T[:, y], y, 0.5 * E, **TILED)
    m, g = out["metrics"], out["geometry"]
    for name in ("nc1_trace", "cdnv", "nc2", "nc2_equinorm", "nc2_equiangularity"):
        assert abs(m[name]) < 1e-12, name
    # the means are centred, so their Gram r^2 K/(K-1) P_K is also the uncentred one:
    # ||P/sqrt(K-1) - I/sqrt(K)||^2 = 2 - 2 Tr(P)/sqrt(K (K-1)) = 2 - 2 sqrt((K-1)/K)
    assert m["nc2_of"] == pytest.approx(math.sqrt(2 - 2 * math.sqrt((K - 1) / K)), abs=1e-12)
    for name in ("nc2_maxangle", "gnc2", "nc2_W", "nc3", "nc3_alignment", "unc3"):
        assert abs(m[name]) < 1e-12, name
    # all cosines -1/(K-1); unit means at distance^2 2 + 2/(K-1) = 2K/(K-1)
    assert m["nc2_cos_max"] == pytest.approx(-1 / (K - 1), abs=1e-12)
    assert m["gnc2_log_mean"] == pytest.approx(-0.5 * math.log(2 * K / (K - 1)), abs=1e-12)
    # Riesz s = d - 2 = 4: (2K/(K-1))^(-2) = (8/5)^-2
    assert m["gnc2_riesz_mean"] == pytest.approx((2 * K / (K - 1)) ** -2, abs=1e-12)
    assert m["nc3_cos_mean"] == pytest.approx(1.0, abs=1e-12)
    assert m["nc4"] == 1.0 and m["nc4_per_class"] == 1.0
    assert g["etf_exists"] and g["nc2_floor"] == 0.0 and g["nearest"] == "simplex_etf"
    assert g["min_angle_deg"] == pytest.approx(math.degrees(math.acos(-1 / (K - 1))), abs=1e-9)


def test_regular_polygon_attains_the_least_etf_error_in_two_dimensions():
    K, n = 5, 2
    angle = 2 * np.pi * np.arange(K) / K
    means = np.stack([np.cos(angle), np.sin(angle)])  # centred: sum_k e^{i angle_k} = 0
    y = np.repeat(np.arange(K), n)
    out = metrics.report(3.0 * means[:, y], y, **TILED)
    m, g = out["metrics"], out["geometry"]
    # its Gram is (K/2) times the projector on one Fourier pair, inside range(P_K): the
    # bound sqrt(2 - 2 sqrt(d/(K-1))) is reached, and likewise for the OF with d/K
    floor = math.sqrt(2 - 2 * math.sqrt(2 / (K - 1)))
    assert m["nc2"] == pytest.approx(floor, abs=1e-12) and g["nc2_floor"] == pytest.approx(floor)
    assert m["nc2_of"] == pytest.approx(math.sqrt(2 - 2 * math.sqrt(2 / K)), abs=1e-12)
    assert not g["etf_exists"] and any("no simplex ETF" in note for note in out["notes"])
    # each class sees cos(2 pi j/K), j = 1..K-1: mean -1/(K-1), mean square (K/2-1)/(K-1)
    variance = (K / 2 - 1) / (K - 1) - 1 / (K - 1) ** 2
    assert m["nc2_cos_mean"] == pytest.approx(-1 / (K - 1), abs=1e-12)
    assert m["nc2_equiangularity"] == pytest.approx(math.sqrt(variance), abs=1e-12)
    assert m["nc2_cos_max"] == pytest.approx(math.cos(2 * math.pi / K), abs=1e-12)
    assert g["min_angle_deg"] == pytest.approx(360 / K, abs=1e-9)
    # distances 2 sin(pi j/K) and prod_j 2 sin(pi j/K) = K: log energy mean -log(K)/(K-1)
    assert m["gnc2_log_mean"] == pytest.approx(-math.log(K) / (K - 1), abs=1e-12)
    logs = [-math.log(2 * math.sin(math.pi * j / K)) for j in range(1, K)]
    assert m["gnc2"] == pytest.approx(np.var(logs), abs=1e-12)
    assert m["nc2_equinorm"] < 1e-12 and m["nc1_trace"] < 1e-12


def test_worked_example_new_variants():
    # the worked example of tests/test_metrics.py: means 2 e_k (K=4, d=5), W = Hbar^T,
    # samples mu_k +- 0.6 e_5
    K, n, a = 4, 2, 0.6
    y = np.repeat(np.arange(K), n)
    H = 2.0 * np.eye(5, K)[:, y] + a * np.outer(np.eye(5)[4], np.tile([1.0, -1.0], K))
    m = metrics.report(H, y, 2.0 * np.eye(K, 5), **TILED)["metrics"]
    # W Mtilde = 2 I . 2 P = 4 P: exactly the ETF pattern
    assert abs(m["nc3_alignment"]) < 1e-12
    # cos(2 e_k, 2 (e_k - 1/4 sum e_j)) = (3/4) / sqrt(3/4) = sqrt(3)/2 for every k
    assert m["nc3_cos_mean"] == pytest.approx(math.sqrt(3) / 2, abs=1e-12)
    assert abs(m["unc3"]) < 1e-12
    # sigma_k^2 = 0.36 (ddof 0), 0.72 (ddof 1); ||mu_k - mu_k'||^2 = 8
    assert m["cdnv_lc"] == pytest.approx(0.36 / 64, abs=1e-12)
    assert m["cdnv_ddof1"] == pytest.approx(0.72 / 8, abs=1e-12)
    # the centred means form an ETF: every unit distance^2 is 2K/(K-1) = 8/3
    assert abs(m["gnc2"]) < 1e-12


# --------------------------------------------------------------------------- invariances

SCALE_FREE = [
    "nc1", "nc1_svd", "nc1_trace", "cdnv", "cdnv_ddof1", "nc2", "nc2_of", "nc2_equinorm",
    "nc2_equinorm_sq", "nc2_equiangularity", "nc2_maxangle", "nc2_cos_mean", "nc2_cos_max",
    "gnc2", "gnc2_log_mean", "gnc2_riesz_mean", "gnc2_riesz_var", "nc2_W", "nc2_W_equinorm",
    "nc3", "nc3_uncentred", "nc3_alignment", "nc3_cos_mean", "unc3", "nc4", "nc4_per_class",
]  # fmt: skip


def _same(a, b, names, rtol=1e-9):
    for name in names:
        np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=1e-12, err_msg=name)


def test_rotation_and_class_permutation_change_nothing():
    H, y, W, b = _random(4)
    base = metrics.report(H, y, W, b, **TILED)["metrics"]
    Q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((6, 6)))
    _same(metrics.report(Q @ H, y, W @ Q.T, b, **TILED)["metrics"], base, SCALE_FREE + ["cdnv_lc"])
    perm = np.array([3, 0, 4, 1, 2])  # class k is called perm[k]; W rows follow
    inverse = np.argsort(perm)
    found = metrics.report(H, perm[y], W[inverse], b[inverse], **TILED)["metrics"]
    _same(found, base, SCALE_FREE + ["cdnv_lc"])


def test_scaling_leaves_scale_free_metrics_and_scales_cdnv_lc():
    H, y, W, _ = _random(6)
    base = metrics.report(H, y, W, **TILED)["metrics"]
    scaled = metrics.report(3.0 * H, y, 0.5 * W, **TILED)["metrics"]
    _same(scaled, base, SCALE_FREE)
    # variance scales by 9, distance^4 by 81
    assert scaled["cdnv_lc"] == pytest.approx(base["cdnv_lc"] / 9, rel=1e-10)


def test_translation_moves_only_uncentred_metrics():
    H, y, W, _ = _random(7)
    base = metrics.report(H, y, W, **TILED)["metrics"]
    moved = metrics.report(H + 5.0 * np.ones((6, 1)), y, W, **TILED)["metrics"]
    centred = [
        k for k in SCALE_FREE if k not in ("nc2_of", "nc3_uncentred", "nc4", "nc4_per_class")
    ]
    _same(moved, base, centred + ["cdnv_lc"], rtol=1e-8)  # 1e-8: the shift is 5x the data
    assert abs(moved["nc2_of"] - base["nc2_of"]) > 1e-3


# --------------------------------------------------------------------------- awkward inputs


def test_arbitrary_labels_are_relabelled_in_sorted_order():
    H, y, _, _ = _random(8, classifier=False)
    base = metrics.report(H, y, **TILED)
    names = np.array(["ant", "bee", "cat", "dog", "eel"])
    for labels in (names[y], np.array([7, 100, 3, -2, 50])[np.argsort([7, 100, 3, -2, 50])][y]):
        out = metrics.report(H, labels, **TILED)
        _same(out["metrics"], base["metrics"], list(base["metrics"]), rtol=1e-12)
        assert out["data"]["labels"]["encoding"] == "relabelled"
    assert base["data"]["labels"]["encoding"] == "0..4"


def test_empty_classes_are_left_out_and_counted():
    H, y, W, b = _random(9)
    base = metrics.report(H, y, W, b, **TILED)
    # classes 5 and 6 exist in W (and may win its argmax) but have no samples
    rng = np.random.default_rng(1)
    W7, b7 = np.vstack([W, rng.standard_normal((2, 6))]), np.concatenate([b, [-50.0, -50.0]])
    out = metrics.report(H, y, W7, b7, **TILED)
    assert out["data"]["empty_classes"] == 2 and out["data"]["K"] == 5
    assert any("2 of 7 classes have no samples" in note for note in out["notes"])
    _same(out["metrics"], base["metrics"], list(base["metrics"]), rtol=1e-12)
    # with a bias that makes class 5 win everywhere, NC4 drops to 0
    b7[5] = 1e6
    assert metrics.report(H, y, W7, b7, **TILED)["metrics"]["nc4"] == 0.0
    # num_classes without W
    out = metrics.report(H, y, num_classes=9)
    assert out["data"]["empty_classes"] == 4


def test_a_singleton_class_is_used_and_its_ddof1_variance_is_undefined():
    H, y, W, b = _random(10, n=(4, 1, 3, 5, 2))
    out = metrics.report(H, y, W, b, **TILED)
    expected = reference(H, y, W, b)
    del expected["cdnv_ddof1"]
    assert math.isnan(out["metrics"].pop("cdnv_ddof1"))
    _assert_metrics(out["metrics"], expected)
    assert out["data"]["singleton_classes"] == 1
    assert any("one sample" in note for note in out["notes"])


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_low_precision_input_is_computed_in_float64(dtype):
    H, y, W, b = _random(11)
    low = H.astype(dtype)
    out = metrics.report(low, y, W, b, **TILED)
    # the same numbers as the float64 copy of the rounded features: no float32 arithmetic
    _assert_metrics(out["metrics"], reference(low.astype(np.float64), y, W, b))
    assert out["data"]["input_dtype"] == np.dtype(dtype).name
    assert out["data"]["dtype"] == "float64"
    assert any("converted to float64" in note for note in out["notes"])


def test_nonfinite_rows_are_rejected_by_index_or_dropped():
    H, y, W, b = _random(12)
    bad = H.T.copy()  # rows (N, d)
    bad[17, 2], bad[20, 0] = np.nan, np.inf
    with pytest.raises(ValueError, match="row 17 of the features is not finite"):
        metrics.report(bad, y, W, b, layout="rows", batch_size=5)
    out = metrics.report(bad, y, W, b, layout="rows", drop_nonfinite=True, batch_size=5)
    keep = np.ones(y.size, dtype=bool)
    keep[[17, 20]] = False
    _assert_metrics(out["metrics"], reference(H[:, keep], y[keep], W, b))
    assert out["data"]["rows_dropped_nonfinite"] == 2 and out["data"]["N"] == keep.sum()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda H, y, W: metrics.report(H[0], y), "2-D array"),
        (lambda H, y, W: metrics.report(H, y[:-1]), "do not match"),
        (lambda H, y, W: metrics.report(H, y, W[:, :3]), r"shape \(K, d\)"),
        (lambda H, y, W: metrics.report(H, y, np.full_like(W, np.nan)), "nan or inf"),
        (lambda H, y, W: metrics.report(H, y, W[:3]), "labels must lie in 0..2"),
        (lambda H, y, W: metrics.report(H, y, b=np.ones(5)), "without a classifier"),
        (lambda H, y, W: metrics.report(H, np.zeros_like(y)), "at least 2 classes"),
        (lambda H, y, W: metrics.report(H, y + 0.5, num_classes=9), "must be integers"),
        (lambda H, y, W: metrics.report(H, y, layout="sideways"), "layout"),
    ],
)
def test_bad_input_names_the_problem(call, message):
    H, y, W, _ = _random(13)
    with pytest.raises(ValueError, match=message):
        call(H, y, W)


def test_accumulator_streams_batches_and_checks_the_second_pass():
    H, y, W, b = _random(14)
    rows = H.T
    batches = [(rows[i : i + 6], y[i : i + 6]) for i in range(0, y.size, 6)]
    acc = metrics.Accumulator(5, 6)
    for X, labels in batches:
        acc.update(X.astype(np.float32), labels)
    out = acc.report(W, b, samples=lambda: batches, pair_block=2)
    _assert_metrics(out["metrics"], reference(rows.astype(np.float32).T.astype(float), y, W, b))
    with pytest.raises(ValueError, match="samples"):
        acc.report(W, b, samples=lambda: batches[:-1])
    assert "nc4" not in acc.report(W, b)["metrics"]
    with pytest.raises(ValueError, match="row 31: label 5 outside 0..4"):
        acc.update(rows[:4], np.array([0, 1, 2, 5]))  # rows are counted from the start: 28 + 3


def test_memory_mapped_rows_stream_from_disk(tmp_path):
    H, y, W, b = _random(15)
    np.save(tmp_path / "f.npy", H.T)
    mapped = np.load(tmp_path / "f.npy", mmap_mode="r")
    out = metrics.report(mapped, y, W, b, layout="rows", batch_size=4)
    _assert_metrics(out["metrics"], reference(H, y, W, b))
