"""The figure scripts run end to end in --quick mode and draw what the theory predicts.

Each takes 10-20 s, mostly compilation, so all run with -m slow."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "figures" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # 10-20 s, mostly compilation; the default suite keeps phase_plain
def test_deep_linear_figure(tmp_path):
    fig = _load("deep_linear")
    data = fig.compute(quick=True)
    for case in data["balanced"] + data["imbalanced"]:
        assert case["verdict"] == "agrees"
        # the solver's per-layer values sit on the closed-form reference lines
        for key in ("nc1", "nc2"):
            np.testing.assert_allclose(case["solver"][key], case["theory"][key], atol=1e-7)
        assert max(case["solver"]["gram"]) < 1e-7
    # balanced bias-free: an orthogonal frame at every layer; imbalanced: a GOF, not an OF
    assert max(max(c["theory"]["nc2"]) for c in data["balanced"]) < 1e-12
    assert min(data["imbalanced"][0]["theory"]["nc2"]) > 0.05
    out = tmp_path / "deep_linear.png"
    fig.plot(data, out)
    assert out.stat().st_size > 10_000


@pytest.mark.slow  # 10-20 s, mostly compilation; the default suite keeps phase_plain
def test_vicinity_figure(tmp_path):
    fig = _load("vicinity")
    data = fig.compute(quick=True)
    # Thm 3.1 on every gradient flow: NC1 and e^{2 lH tau} Tr Sigma_W decrease,
    # e^{2 lH tau} Tr Sigma_B increases (to the integrator's 1e-8 relative tolerance)
    for flow in data["flows"]:
        assert all(m["holds"] for m in flow["monotonicity"].values()), flow["monotonicity"]
        assert flow["nc1"][-1] < 1e-3 * flow["nc1"][0]
    # noise 0.05: the first-order error is O(noise^2) = 2.5e-3 relative; measured <= 3e-4
    for curve in [data["beta"], *data["lambdas"]]:
        assert curve["converged"]
        assert curve["max_rel_error_linear_response"] < 2e-3, curve["parameter"]
    # lambda_H lowers NC1 of the minimizer, lambda_W raises it (beta fixed)
    lambda_H, lambda_W = data["lambdas"]
    assert np.all(np.diff(lambda_H["solved"]) < 0) and np.all(np.diff(lambda_W["solved"]) > 0)
    # Thm 4.2 and the full Eq. 5 spectrum of F_kk; F_kk' rank 1
    for spectrum in data["spectra"]:
        assert spectrum["max_error"] < 1e-9 and spectrum["off_rank"] == 1
    out = tmp_path / "vicinity.png"
    fig.plot(data, out)
    assert out.stat().st_size > 10_000


@pytest.mark.slow  # 10-20 s, mostly compilation; the default suite keeps phase_plain
def test_mixup_figure(tmp_path):
    fig = _load("mixup")
    data = fig.compute(quick=True)
    # the solver's features are the closed form: fixed W to gtol = 1e-10 gives <= 6e-8 at
    # kappa = 500 (CE), 3e-10 (MSE); the learned panel compares plane coordinates (1e-9)
    for key in ("ce", "mse", "learned"):
        panel = data[key]
        assert panel["converged"] and panel["verdict"] == "agrees", (key, panel["reason"])
        assert panel["max_abs_H_error"] < 1e-6, key
        # the dense theory curves (Newton on the logits / the MSE formula) at the solved
        # coefficients are `ufm.theory`'s H: two routes, round-off apart
        assert panel["max_abs_curve_vs_theory"] < 1e-11, key
        # everything lies in the classifier plane, W a simplex ETF (learned: to 1e-8)
        assert panel["plane_residual"] < 1e-6 and panel["etf_error"] < 1e-6, key
        found = panel["found"]
        assert found["span_residual"] < 1e-6 and found["same_class_spread"] < 1e-6, key
        assert found["boundary_gap"] < 1e-6, key  # 0 at lam = 1/2 (learned: no such node)
    # calibration: the solver matches the closed form and improves as lambda_H decreases
    cal = data["calibration"]
    assert all(c["verdict"] == "agrees" for c in cal)
    assert [c["lambda_H"] for c in cal] == sorted((c["lambda_H"] for c in cal), reverse=True)
    errors = np.array([c["calibration_error"] for c in cal])
    np.testing.assert_allclose(errors, [c["calibration_error_theory"] for c in cal], atol=1e-6)
    assert np.all(np.diff(errors) < 0) and errors[-1] < 5e-3, errors
    assert max(c["boundary_gap"] for c in cal) < 1e-6
    # the closed-form sweep (lambda_H from 3e-2 down to 3e-7) decreases throughout
    assert np.all(np.diff(data["sweep"]["calibration_error"]) < 0)
    out = tmp_path / "mixup.png"
    fig.plot(data, out)
    assert 10_000 < out.stat().st_size < 150_000


@pytest.mark.slow  # 20 s, four compilations; tests/test_sweep.py covers sweeps and plots
def test_phase_plain_figure(tmp_path):
    fig = _load("phase_plain")
    data = fig.compute(quick=True)
    panels = data["panels"]
    for key, panel in panels.items():
        s = panel["summary"]
        # CE at lambda_W / lambda_H >= ~1e3: the scalar tolerance (smallest lambda) is finer
        # than the rounding of the other block's gradient, and 4 of those 100 points stall
        # at the minimum (loss gap ~2e-16) as inconclusive; never as a wrong verdict
        assert s["points"] == 100 and s["converged"] >= (96 if "ce" in key else 100), (key, s)
        # every point the theory speaks about: the verdict agrees and the regime matches
        assert s["agrees"] == s["applicable"] == s["regime_matches"], (key, s)
        assert not s["disagreements"] and s["max_abs_loss_gap"] < 1e-10, key
        # both thresholds' sides are sampled: collapsed below, zero above
        assert s["regimes"]["zero"] >= 10 and s["regimes"]["collapsed"] >= 50, (key, s)
    for key in ("mse", "mse_imbalanced"):  # the theory covers the whole plane
        assert panels[key]["summary"]["applicable"] == 100, key
    assert panels["ce"]["summary"]["applicable"] == panels["ce"]["summary"]["converged"]
    # (c): all three regimes predicted, and the solver finds them, cell for cell
    mse = panels["mse_imbalanced"]["summary"]
    assert set(mse["theory_regimes"]) == {"zero", "minority_collapse", "collapsed"}
    assert mse["regimes"] == mse["theory_regimes"] and mse["regimes"]["minority_collapse"] >= 5
    # (d): theory only beyond the zero threshold (the same 15 cells as (c): the threshold
    # sqrt(n_max)/N is shared); inside it the solver finds collapse and, nearer the
    # threshold, the two minority classes merged (rank K-2: minority collapse)
    ce = panels["ce_imbalanced"]["summary"]
    assert ce["theory_regimes"] == {"not_applicable": 85, "zero": 15}
    assert ce["regimes_not_applicable"]["collapsed"] >= 50
    assert ce["regimes_not_applicable"]["minority_collapse"] >= 5
    out = tmp_path / "phase_plain.png"
    fig.plot(data, out)
    assert out.stat().st_size > 10_000


@pytest.mark.slow  # 10-20 s, mostly compilation; the default suite keeps phase_plain
def test_phase_deep_linear_figure(tmp_path):
    fig = _load("phase_deep_linear")
    data = fig.compute(quick=True)
    s = data["summary"]
    assert s["points"] == s["converged"] == s["applicable"] == 24, s
    assert s["agrees"] == s["regime_matches"] == 24 and not s["disagreements"], s
    assert s["max_abs_loss_gap"] < 1e-10
    previous = {"minority": np.inf, "zero": np.inf}
    for row in s["depths"]:
        # all three regimes at every depth, in order along lambda_W
        assert {"collapsed", "minority_collapse", "zero"} <= set(row["regimes"]), row
        for key in ("minority", "zero"):
            switch = row[key]
            # one switch per threshold, and the closed form lies in the grid cell where the
            # solver's regime changes
            assert switch["monotone"], row
            assert switch["last_on"] < switch["exact"] <= switch["first_off"], (key, row)
            # deeper networks switch classes off at smaller lambda_W
            assert switch["exact"] < previous[key]
            previous[key] = switch["exact"]
    # all restarts at one scale: the random directions do not help. Some points near a
    # first-order threshold (depth >= 2) stop in the neighbouring branch (one class size
    # switched on or off too many), above the minimum
    same = data["same_scale"]["summary"]
    assert same["converged"] == 24 and 1 <= len(same["disagreements"]) <= 6, same
    for bad in same["disagreements"]:
        assert bad["depth"] >= 2 and bad["loss_gap"] > 1e-3, bad
        step = fig.ACTIVE[bad["regime"]] - fig.ACTIVE[bad["theory_regime"]]
        assert abs(step) == 2, bad
    out = tmp_path / "phase_deep_linear.png"
    fig.plot(data, out)
    assert out.stat().st_size > 10_000
