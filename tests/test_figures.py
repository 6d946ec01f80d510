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
