"""The figure scripts run end to end in --quick mode and draw what the theory predicts."""

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "figures" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
