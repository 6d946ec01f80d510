"""NC along training (`ufm.networks.terminal`): the per-layer metrics read a known geometry
right, a run that never reaches zero training error is not judged, and the quick experiment
runs end to end with a figure laid out for a paper."""

import numpy as np
import pytest

from ufm.geometry import simplex_etf
from ufm.networks import terminal


def test_layer_metrics_of_an_exact_etf_collapse():
    """Every sample at its class mean, the means a simplex ETF, W = the means: NC1, NC2 and
    NC3 vanish and the classifier agrees with the nearest class mean everywhere."""
    K, d, n = 5, 7, 4
    M = np.asarray(simplex_etf(K, d))  # (K, d) unit rows, cosines -1/(K-1)
    y = np.repeat(np.arange(K), n)
    H = 3.0 * M[y]
    got = terminal.layer_metrics(H, y, K, W=M, b=np.zeros(K), H_test=H, labels_test=y)
    for key in ("nc1_trace", "nc2", "nc2_equinorm", "nc2_equiangularity", "nc2_W", "nc3"):
        assert abs(got[key]) < 1e-12, (key, got[key])
    assert got["nc4"] == got["nc4_test"] == 1.0


def test_layer_metrics_of_noisy_features_match_a_hand_computation():
    rng = np.random.default_rng(0)
    K, n, d = 3, 50, 4
    y = np.repeat(np.arange(K), n)
    H = rng.standard_normal((K * n, d)) + 2.0 * np.eye(d)[y]
    got = terminal.layer_metrics(H, y, K)
    means = np.stack([H[y == k].mean(axis=0) for k in range(K)])
    within = ((H - means[y]) ** 2).sum() / len(y)
    between = ((means - H.mean(axis=0)) ** 2).sum() / K
    assert got["nc1_trace"] == pytest.approx(within / between, rel=1e-10)
    assert "nc3" not in got


def test_a_run_without_a_terminal_phase_is_not_judged():
    status = {"terminal_phase": False, "train_error": 0.1, "test_error": 0.2}
    summary = terminal._summary([{"point": {"feature_decay": 0.0, "seed": 0}, "status": status}])
    assert summary["in_terminal_phase"] == 0
    assert "not judged" in summary["feature_decay=0"]["note"]


@pytest.mark.slow
def test_quick_experiment_and_figure(tmp_path):
    from test_figures import _load, check_layout

    fig_module = _load("terminal")
    data = fig_module.compute(quick=True, store=tmp_path / "t.zarr")
    assert data["summary"]["in_terminal_phase"] == 2
    without, with_decay = data["summary"]["feature_decay=0"], data["summary"]["feature_decay=1e-05"]
    for summary in (without, with_decay):
        assert summary["train_error"] == [0.0]
        # in the terminal phase NC1 of the last layer keeps falling, below the first layer's
        assert summary["falling_in_terminal_phase"]["nc1"] == 1
        assert summary["nc1_last_layer"] < summary["nc1_first_layer"]
    # the UFM's lambda_H: feature decay collapses the last layer further
    assert with_decay["final_nc1"] < without["final_nc1"]
    fig = fig_module.plot(data, tmp_path / "t.png")
    check_layout(fig_module, fig, tmp_path / "t.png")
