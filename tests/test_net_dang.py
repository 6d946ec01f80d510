"""Dang et al.'s appended linear layers (`ufm.networks.dang`): the shape statistics read
known geometries right, the prediction's layers are the theory's, a run outside the terminal
phase is not judged, and the experiment runs end to end (quick: slow-marked)."""

import json

import numpy as np
import pytest

import ufm
from ufm.geometry import simplex_etf
from ufm.networks import Training, dang, dataset, read, train


def _collapsed(means: np.ndarray, counts) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, d) with every sample at its class mean (means (d, K))."""
    y = np.repeat(np.arange(len(counts)), counts)
    return means.T[y], y


def test_orthogonal_frame_is_at_distance_zero_and_full_rank():
    K, d, counts = 4, 6, [5, 5, 5, 5]
    means = 2.0 * np.eye(d)[:, :K]  # orthogonal, equal norms
    H, y = _collapsed(means, counts)
    G = dang.mean_gram(dang.class_means(H.T, y, K), counts, centred=False)
    np.testing.assert_allclose(G, 4.0 * np.eye(K), atol=1e-14)
    assert dang.effective_rank(G) == pytest.approx(K, rel=1e-14)
    got = dang.layer_numbers(H, y, counts, centred=False, predicted_means=0.5 * means)
    assert got["gram_distance"] < 1e-14 and got["spectrum_distance"] < 1e-14
    assert got["nc1_trace"] < 1e-20 and got["off"] == [] and got["norm_ratio"] is None


def test_simplex_etf_centred_has_rank_k_minus_one_and_zero_etf_distance():
    K, d, counts = 5, 7, [3] * 5
    means = np.asarray(simplex_etf(K, d)).T + 1.5  # shifted: the centred means are an ETF
    H, y = _collapsed(means, counts)
    got = dang.layer_numbers(H, y, counts, centred=True)
    assert got["effective_rank"] == pytest.approx(K - 1, rel=1e-12)
    assert got["etf_distance"] < 1e-12
    # uncentred, the shift is a rank-one term: not an ETF
    G = dang.mean_gram(means, counts, centred=False)
    assert dang.effective_rank(G) < K - 1.5


def test_orthoplex_spectrum_ignores_the_pairing_and_the_gram_does_not():
    K = 6
    half = np.eye(K // 2)
    pairs = np.hstack([half, -half])  # classes k and k + 3 antipodal: rank 3
    other = pairs[:, [0, 1, 2, 3, 5, 4]]  # classes 1 and 2 swap partners (4 <-> 5)
    counts = [4] * K
    G, P = (dang.mean_gram(m, counts, centred=True) for m in (pairs, other))
    assert dang.effective_rank(G) == pytest.approx(K / 2, rel=1e-12)
    assert dang.spectrum_distance(G, P) < 1e-12
    # the two Grams differ in 8 entries of magnitude 1 (||.||_F = sqrt 12 each)
    expected = np.sqrt(8.0 / 12.0)
    assert float(ufm.geometry.gram_distance(G, P)) == pytest.approx(expected, rel=1e-12)


def test_minority_switched_off_and_collapsed():
    counts = np.array([10, 10, 2, 2])
    minority = counts < counts.max()
    off = np.diag([1.0, 1.0, 0.0, 0.0])
    got = dang.minority_shape(off, minority)
    assert got["off"] == [2, 3] and got["norm_ratio"] == 0.0 and got["minority_cosine"] is None
    # minority means at half the norm, along one shared direction: cosine 1
    means = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]])
    got = dang.minority_shape(means.T @ means, minority)
    assert got["off"] == [] and got["norm_ratio"] == pytest.approx(0.5)
    assert got["minority_cosine"] == pytest.approx(1.0)


def test_predicted_train_error_counts_the_switched_off_classes():
    counts = [30, 30, 5, 5]
    logits = np.diag([0.9, 0.9, 0.0, 0.0])  # classes 2, 3 off: all their logits are 0
    assert dang.predicted_train_error(logits, counts) == pytest.approx(10 / 70)
    assert dang.predicted_train_error(np.eye(4) - 0.25, counts) == 0.0


def test_prediction_layers_are_the_theorys_and_switch_the_minority_off():
    """The means read from the minimizer reproduce `theory.layers[m]["Hbar_gram"]`; with
    the full setup's decays, M = 6 switches the 9-sample classes off and M = 3 does not."""
    counts = list(dang.IMBALANCED)
    for M, off in ((3, False), (6, True)):
        t = Training(depth=M - 1, loss="mse", bias=False, weight_decay=5e-3, feature_decay=2e-5)
        got = dang.prediction(t, counts, 64)
        theory = got["problem"].theory()
        for means, layer in zip(got["means"], theory.layers, strict=True):
            G = dang.mean_gram(means, counts, centred=False)
            np.testing.assert_allclose(G, layer["Hbar_gram"], atol=1e-12)
        N, minority = sum(counts), 5 * dang.MINORITY
        assert got["train_error"] == pytest.approx(minority / N if off else 0.0)
        assert (theory.regime == "minority_collapse") == off


def test_feature_decay_zero_is_refused():
    with pytest.raises(ufm.errors.InputError, match="feature_decay"):
        dang.prediction(Training(depth=1, feature_decay=0.0), [5, 5], 8)


def test_a_run_outside_the_terminal_phase_is_not_judged():
    status = {"terminal_phase": False, "train_error": 0.1}
    judged, note = dang._judged(status, {"means": [0], "train_error": 0.0})
    assert not judged and "not in the terminal phase" in note
    judged, note = dang._judged(status, {"means": [0], "train_error": 0.05})
    assert judged and "switches off" in note
    judged, note = dang._judged(status | {"terminal_phase": True}, {"means": None})
    assert not judged and "no closed form" in note


def test_compare_on_a_tiny_store():
    """One short run (M = 2, bias-free MSE): every layer is read, it is not judged (no zero
    training error after 3 epochs), the dict is strict JSON, the UFM objective at the
    network's point is the hand-computed one and not below the proven minimum."""
    data = dataset("digits", train_per_class=[12] * 5 + [3] * 5)
    t = Training(widths=(16,), loss="mse", bias=False, epochs=3, lr=0.01, feature_decay=1e-3)
    ds = train(data, t, {"depth": [1]}, record=(3,), progress=False)
    out = dang.compare(ds)
    json.dumps(out, allow_nan=False)
    assert out["counts"] == [12] * 5 + [3] * 5 and not out["balanced"]
    assert [r["M"] for r in out["runs"]] == [2]
    for run in out["runs"]:
        assert len(run["layers"]) == run["M"] and run["agreement"] is None
        assert not run["judged"] and "terminal phase" in run["note"]
        assert run["ufm_objective"] >= run["predicted_objective"]
        assert run["ufm_objective"] == pytest.approx(_objective_by_hand(ds, run), rel=1e-10)


def _objective_by_hand(ds, run) -> float:
    point = run["point"]
    t = read.training(ds, point)
    net = read.trained_network(ds, point)
    H, y = read.features(ds, point, t.epochs, "hidden1")
    Z = H
    for W in [*net.linear, net.classifier.weight]:
        Z = Z @ np.asarray(W).T
    mse = 0.5 * np.mean(np.sum((Z - np.eye(10)[y]) ** 2, axis=1))
    weights = sum(np.sum(np.asarray(W) ** 2) for W in [*net.linear, net.classifier.weight])
    return mse + t.weight_decay / 2 * weights + t.feature_decay / 2 * np.sum(H**2)


@pytest.mark.slow
def test_quick_experiment_and_figure(tmp_path):
    from test_figures import _load, check_layout

    fig_module = _load("dang")
    data = fig_module.compute(quick=True, store=tmp_path / "d.zarr")
    for key, balanced in (("imbalanced", False), ("balanced", True)):
        comparison = data[key]
        json.dumps(comparison, allow_nan=False)
        assert comparison["balanced"] is balanced and comparison["summary"]["runs"] == 4
        for run in comparison["runs"]:
            assert run["judged"] == (run["agreement"] is not None)
            if run["predicted_objective"] is not None:  # no point beats the minimum
                assert run["objective_gap"] >= -1e-9
    fig = fig_module.plot(data, tmp_path / "d.png")
    check_layout(fig_module, fig, tmp_path / "d.png")
