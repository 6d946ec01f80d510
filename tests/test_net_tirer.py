"""The Tirer et al. comparison (`ufm.networks.tirer`): its pieces against independent
computations (numpy trace ratios, hand-made geometries, the shrink factors' formulas, a
Newton solve of the model's stationarity condition, scipy's Spearman), a beta fit that
recovers a known beta, runs without a terminal phase never judged, and the quick experiment
end to end with its figure."""

import json

import numpy as np
import pytest
from scipy.stats import linregress, spearmanr

from ufm.errors import InputError
from ufm.models.vicinity import central_path
from ufm.networks import Training, dataset, tirer, train


def trace_ratio(H, y, K):
    """Tr Sigma_W / Tr Sigma_B of H (d, N), written out (the paper's Eq. 3)."""
    means = np.stack([H[:, y == k].mean(axis=1) for k in range(K)], axis=1)
    within = np.sum((H - means[:, y]) ** 2) / H.shape[1]
    between = np.sum((means - H.mean(axis=1, keepdims=True)) ** 2) / K
    return within / between


def orthogonal_noise_features(K=3, n=6, d=7, spread=0.3, seed=0):
    """Class means on the first K axes; within-class noise (zero mean per class) only on the
    other d - K axes, i.e. orthogonal to the span of the means."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(K), n)
    H = 2.0 * np.eye(d)[:, :K][:, y]
    noise = rng.standard_normal((d - K, K * n))
    for k in range(K):
        noise[:, y == k] -= noise[:, y == k].mean(axis=1, keepdims=True)
    H[K:] += spread * noise
    return H, y


def test_nc1_is_the_trace_ratio():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 10)
    H = rng.standard_normal((5, 40)) + 1.5 * rng.standard_normal((5, 4))[:, y]
    assert tirer.nc1(H, y, 4) == pytest.approx(trace_ratio(H, y, 4), rel=1e-12)
    assert tirer.nc1(np.zeros((5, 40)), y, 4) is None  # Tr Sigma_B = 0: undefined


def test_parallel_fraction_inside_outside_and_mixed():
    """The same zero-class-mean noise on an axis inside the means' span (fraction 1), on one
    outside it (0), and on both (1/2)."""
    K, d = 3, 7
    _, y = orthogonal_noise_features(K, d=d)
    v = np.random.default_rng(4).standard_normal(y.size)
    v -= np.stack([v[y == k].mean() for k in range(K)])[y]
    means = 2.0 * np.eye(d)[:, :K][:, y]
    inside, outside, both = means.copy(), means.copy(), means.copy()
    inside[0] += v
    outside[K] += v
    both[0] += v
    both[K] += v
    assert tirer.parallel_fraction(inside, y, K) == pytest.approx(1.0, rel=1e-12)
    assert tirer.parallel_fraction(outside, y, K) == pytest.approx(0.0, abs=1e-14)
    assert tirer.parallel_fraction(both, y, K) == pytest.approx(0.5, rel=1e-12)
    H, _ = orthogonal_noise_features(K, d=d)
    assert tirer.parallel_fraction(H, y, K) == pytest.approx(0.0, abs=1e-14)


def test_shrink_estimate_for_noise_orthogonal_to_the_means():
    """e_par = 0: NC1(H0) gamma_perp^2, gamma_perp = beta / (beta + lambda_H) by hand."""
    H, y = orthogonal_noise_features()
    lW, lH, beta = 0.02, 0.01, 0.05
    got = tirer.shrink_nc1(H, y, 3, lW, lH, beta)
    assert got["gamma_perp"] == pytest.approx(beta / (beta + lH), rel=1e-14)
    assert got["nc1"] == pytest.approx(trace_ratio(H, y, 3) * (beta / (beta + lH)) ** 2, rel=1e-10)
    n, N = 6, 18
    assert got["gamma_parallel"] == pytest.approx(beta / (beta + np.sqrt(n * lH / lW) / N))


def test_model_nc1_matches_a_newton_solve_of_the_stationarity_condition():
    """The minimizer's H solves H = H0 - grad L(H)/beta (one backward-Euler step, found by
    Newton's method without ufm.solve); its trace ratio is the model's NC1."""
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 4)
    H0 = np.abs(rng.standard_normal((5, 12)) + 1.2 * rng.standard_normal((5, 3))[:, y])
    lW, lH, beta = 0.01, 0.002, 0.05
    got = tirer.model_nc1(H0, y, 3, lW, lH, beta)
    assert got["converged"]
    H = np.asarray(central_path.backward_step(tirer.vicinity_problem(H0, y, 3, lW, lH, beta)))
    assert got["nc1"] == pytest.approx(trace_ratio(H, y, 3), rel=1e-6)
    assert got["nc1"] < trace_ratio(H0, y, 3)  # Cor 3.2's direction


def test_fit_beta_recovers_a_known_beta_and_says_when_none_matches():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 4)
    H0 = np.abs(rng.standard_normal((5, 12)) + 1.2 * rng.standard_normal((5, 3))[:, y])
    lW, lH, beta = 0.01, 0.002, 3e-3
    target = tirer.model_nc1(H0, y, 3, lW, lH, beta)["nc1"]
    fit = tirer.fit_beta(H0, y, 3, lW, lH, target)
    assert fit["matched"] and abs(np.log(fit["beta"] / beta)) < 5 * tirer.BETA_XTOL
    above = tirer.fit_beta(H0, y, 3, lW, lH, 2 * trace_ratio(H0, y, 3))  # out of reach
    assert not above["matched"] and above["beta"] == pytest.approx(tirer.BETA_SCAN[-1])


def test_spearman_against_scipy_and_its_edge_cases():
    a = [0.3, 0.1, 0.7, 0.2, 0.9, 0.4]
    b = [1.0, 2.0, 2.0, 0.5, 3.0, 1.0]  # ties
    assert tirer.spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, rel=1e-12)
    assert tirer.spearman(a, np.exp(a)) == pytest.approx(1.0)
    assert tirer.spearman(a, -np.asarray(a)) == pytest.approx(-1.0)
    assert tirer.spearman([1, 2], [2, 1]) is None and tirer.spearman(a, [1.0] * 6) is None


def test_log_slopes_recover_a_power_law():
    wd, fd = np.meshgrid([1e-4, 1e-3, 1e-2], [1e-6, 1e-5, 3e-5])
    values = 2.0 * wd**-0.5 * fd**1.2
    got = tirer.log_slopes(wd.ravel(), fd.ravel(), values.ravel())
    assert got["weight_decay"] == pytest.approx(-0.5) and got["feature_decay"] == pytest.approx(1.2)
    assert got["intercept"] == pytest.approx(np.log(2.0)) and got["rms_residual"] < 1e-12
    one = tirer.log_slopes([1e-3] * 3, [1e-6, 1e-5, 1e-4], [1.0, 0.1, 0.01])
    assert one["weight_decay"] is None and one["feature_decay"] == pytest.approx(-1.0)
    assert tirer.stronger(got) == "feature_decay" and tirer.stronger(one) is None
    noisy = np.log([1.0, 0.1, 0.01, 0.003]) + np.array([0.1, -0.2, 0.05, 0.3])
    x = [1e-6, 1e-5, 1e-4, 3e-4]
    fit, ref = tirer.log_slopes([1e-3] * 4, x, np.exp(noisy)), linregress(np.log(x), noisy)
    assert fit["feature_decay"] == pytest.approx(ref.slope, rel=1e-12)
    assert fit["stderr"]["feature_decay"] == pytest.approx(ref.stderr, rel=1e-10)


def test_last_layers_need_two_equal_widths_and_no_stack():
    assert tirer.last_layers(Training(widths=(8, 8), bias=False)) == ("hidden1", "hidden2")
    for bad in (dict(widths=(8, 4)), dict(widths=(8,)), dict(widths=(8, 8), depth=1)):
        with pytest.raises(InputError, match="tirer"):
            tirer.last_layers(Training(**({"bias": False} | bad)))


def _row(wd, fd, net, model, terminal=True):
    return {
        "point": {"weight_decay": wd, "feature_decay": fd, "seed": 0},
        "lambda_W": wd, "lambda_H": fd, "nc1_network": net, "nc1_H0": 2 * net,
        "nc1_model": model, "nc1_shrink": model, "terminal_phase": terminal,
    }  # fmt: skip


def test_reference_is_the_middle_terminal_run():
    rows = [_row(wd, fd, 1.0, 1.0) for wd in (1e-4, 1e-3, 1e-2) for fd in (1e-6, 1e-5, 1e-4)]
    assert tirer.reference_run(rows) == 4
    rows[4]["terminal_phase"] = False  # the middle is not terminal: a nearest neighbour
    assert tirer.reference_run(rows) in (1, 3, 5, 7)


def test_summary_agrees_only_on_terminal_runs():
    """A model that equals the network on every terminal run: correlation 1, no log error,
    the same slopes; a non-terminal run with a wild model value is left out."""
    rows = [
        _row(wd, fd, 0.5 * wd**-0.3 * fd**-0.1, 0.5 * wd**-0.3 * fd**-0.1)
        for wd in (1e-4, 1e-3)
        for fd in (1e-6, 1e-5)
    ] + [_row(1e-2, 1e-4, 0.4, 1e-6, terminal=False)]
    fit = {"beta": 1e-6, "reference": rows[0]["point"]}
    summary = tirer._summary(rows, fit, None)
    assert summary["compared_runs"] == 4 and summary["terminal_runs"] == 4
    assert summary["spearman"] == pytest.approx(1.0) and summary["median_abs_log_ratio"] < 1e-12
    assert summary["slopes"]["network"]["weight_decay"] == pytest.approx(-0.3)
    assert summary["stronger"]["network"] == summary["stronger"]["model"] == "weight_decay"
    assert "agrees" in summary["verdict"]
    few = tirer._summary(rows[:2] + rows[4:], fit, None)
    assert few["compared_runs"] == 2 and "no agreement called" in few["verdict"]


@pytest.mark.slow  # ~30 s on 2 cores: a training compile and the model's solves
def test_runs_without_a_terminal_phase_are_flagged_not_judged():
    """Three epochs of a tiny network: no run reaches zero training error; every run says so
    and no agreement is called, and the comparison is strict JSON."""
    data = dataset("digits", train_per_class=10)
    t = Training(widths=(16, 16), depth=0, bias=False, loss="mse", epochs=3, lr=0.01)
    ds = train(data, t, {"feature_decay": [1e-6, 1e-5]}, record=(0, 3), progress=False)
    got = tirer.compare(ds)
    json.dumps(got, allow_nan=False)
    assert all(not r["terminal_phase"] and r["note"] == tirer.NOT_TERMINAL for r in got["runs"])
    assert got["summary"]["compared_runs"] == 0
    assert "no agreement called" in got["summary"]["verdict"]


def test_figure_draws_both_sides_on_synthetic_numbers():
    rows = [
        _row(wd, fd, 0.3, 0.2, terminal=fd < 1e-4) for wd in (1e-4, 1e-3) for fd in (1e-6, 1e-4)
    ]
    comparison = {"runs": rows, "summary": {"spearman": 0.5, "beta": {"beta": 1e-6}}}
    fig = tirer.draw(comparison)
    assert fig.get_size_inches()[0] == pytest.approx(3.4)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
        styles = [line.get_linestyle() for line in ax.lines]
        assert styles.count("-") == styles.count("--") == 2  # network, model per level
        crosses = [line for line in ax.lines if line.get_marker() == "x"]
        assert sum(len(line.get_xdata()) for line in crosses) == 2  # the non-terminal runs


@pytest.mark.slow  # ~35 s on 2 cores: four trainings, the beta fit, the model solves
def test_quick_experiment_and_figure(tmp_path):
    from test_figures import _load, check_layout

    fig_module = _load("tirer")
    data = fig_module.compute(quick=True, store=tmp_path / "t.zarr")
    got = data["comparison"]
    json.dumps(got, allow_nan=False)
    summary = got["summary"]
    assert summary["terminal_runs"] == summary["compared_runs"] == 4
    assert summary["beta"]["matched"]
    from ufm.networks import open_training, read

    ds = open_training(tmp_path / "t.zarr")
    for row in got["runs"]:
        H, y = read.features(ds, row["point"], row["epoch"], "hidden2")
        assert row["nc1_network"] == pytest.approx(trace_ratio(H.T, y, 10), rel=1e-10)
        assert row["model_converged"] and row["train_error"] == 0.0
        if row["point"] == summary["beta"]["reference"]:  # fitted there: equal up to Brent's xtol
            assert row["nc1_model"] == pytest.approx(row["nc1_network"], rel=1e-2)
    fig = fig_module.plot(data, tmp_path / "t.png")
    check_layout(fig_module, fig, tmp_path / "t.png")
