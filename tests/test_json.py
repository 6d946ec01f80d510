"""Every JSON document ufm writes is strict JSON: nan and inf are written as null, never as
the bare NaN or Infinity that Python's json module emits by default and strict parsers
(JavaScript, jq, Go, Rust) reject."""

import importlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from nc_reference import random_features

from ufm import _output, cli

SOLVE = ["solve", "plain", "--loss", "mse", "--K", "4", "--n", "5", "--d", "8"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("UFM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax-cache"))


def strict(text: str):
    """json.loads that rejects NaN, Infinity and -Infinity."""

    def reject(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=reject)


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_dumps_writes_null_for_every_non_finite_number():
    data = {
        "nan": float("nan"),
        "inf": math.inf,
        "f32": np.float32("-inf"),
        "f64": np.float64(1.5),
        "array": np.array([1.0, np.nan]),
        "tuple": (np.int64(3), -math.inf),
        "nested": [{"x": np.bool_(True), "path": Path("a/b")}],
    }
    assert strict(_output.dumps(data)) == {
        "nan": None,
        "inf": None,
        "f32": None,
        "f64": 1.5,
        "array": [1.0, None],
        "tuple": [3, None],
        "nested": [{"x": True, "path": "a/b"}],
    }
    with pytest.raises(TypeError, match="cannot write a object as JSON"):
        _output.dumps({"x": object()})


def test_solve_json_is_strict_and_the_file_equals_stdout(capsys, tmp_path, monkeypatch):
    """At lambda = 1e3 the solution is zero and NC metrics are 0/0 (bare NaN before); which
    ones come out nan depends on round-off, so one nan and one inf are also put in."""
    real = cli._solve_report

    def solve_report(args):
        report, arrays = real(args)
        report["metrics"] |= {"nc1": float("nan"), "nc2": np.float32("inf")}
        return report, arrays

    monkeypatch.setattr(cli, "_solve_report", solve_report)
    argv = [*SOLVE, "--lambda-W", "1e3", "--lambda-H", "1e3", "--json", "--out", tmp_path / "r"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    report = strict(out)
    assert report["theory"]["regime"] == "zero"
    assert report["metrics"]["nc1"] is None and report["metrics"]["nc2"] is None
    assert strict((tmp_path / "r").read_text()) == report


def test_metrics_json_is_strict(capsys, tmp_path):
    H, y, _, _ = random_features(20)  # as in test_cli_metrics: compiled once per session
    y = y.copy()
    y[0] = 9  # a class with a single sample: cdnv_ddof1 is nan
    np.savez(tmp_path / "f.npz", features=H.T, labels=y)
    code, out, _ = run(["metrics", tmp_path / "f.npz", "--json", "--out", tmp_path / "r"], capsys)
    assert code == 0 and strict(out)["metrics"]["cdnv_ddof1"] is None
    assert strict((tmp_path / "r").read_text()) == strict(out)


def test_verify_json_is_strict(capsys, tmp_path, monkeypatch):
    verify = importlib.import_module("ufm.verify")
    nan = float("nan")
    result = {
        "claim": "nan-claim",
        "parameters": {"loss": "mse", "lambda_W": 0.1},
        "predicted": {"loss": nan, "regime": "zero", "geometry": "zero"},
        "found": {"loss": nan},
        "loss_gap": nan,
        "verdict": "agrees",
        "expected": "agrees",
        "passed": True,
        "reason": "",
        "seconds": 0.0,
        "errors": {"W_gram": math.inf},
    }
    monkeypatch.setattr(verify, "select", lambda names, quick: ["nan-claim"])
    monkeypatch.setattr(verify, "run_all", lambda claims, record: record(result))
    code, _, _ = run(["verify", "nan-claim", "--json", tmp_path / "v.json"], capsys)
    claim = strict((tmp_path / "v.json").read_text())["claims"][0]
    assert code == 0 and claim["loss_gap"] is None and claim["errors"]["W_gram"] is None


def test_sweep_json_and_zarr_metadata_are_strict(capsys, tmp_path):
    """A tiny sweep with a zero-regime point (nan metrics) and zarr's NaN fill values."""
    out = tmp_path / "x.zarr"
    argv = ["sweep", "plain", "--loss", "mse", "--K", "3", "--n", "2", "--d", "4"]  # test_sweep's
    argv += ["--grid", "lambda_W=0.01,1e3", "--no-progress", "--json", "--out", out]
    code, stdout, _ = run(argv, capsys)
    assert code == 0 and strict(stdout)["points"] == 2
    metadata = sorted(out.rglob("zarr.json"))
    assert len(metadata) > 10
    for path in metadata:
        strict(path.read_text())


SMALL = {
    "plain": ["--loss", "mse", "--K", "3", "--n", "2", "--d", "4"],
    "deep-linear": ["--loss", "mse", "--K", "3", "--n", "2", "--d", "4", "--depth", "2"],
    "vicinity": ["--K", "3", "--n", "2", "--d", "4"],
    "mixup": ["--loss", "mse", "--K", "3", "--n", "2", "--d", "4"],
}


def test_every_model_report_has_the_same_keys_outside_its_own_section(capsys, tmp_path):
    """`ufm solve --json`: the keys every report has mean one thing; what only one model
    reports sits under a key named after it (or under `layers`, for layered models), and
    `--params` always saves the classifier applied to H as `W`."""
    reports = {}
    for model, flags in SMALL.items():
        params = tmp_path / f"{model}.npz"
        code, out, _ = run(["solve", model, *flags, "--json", "--params", params], capsys)
        assert code == 0, model
        reports[model] = strict(out)
        with np.load(params) as saved:
            K, d = 3, 4
            assert saved["W"].shape == (K, d), model  # mixup's fixed ETF included
            Z = saved["W"] @ saved["H"]
            assert Z.shape[0] == K
    common = set.intersection(*(set(r) for r in reports.values()))
    for model, r in reports.items():
        own = set(r) - common
        assert own <= {model, "layers"}, (model, own)
        assert set(r["metrics"]) == set(reports["plain"]["metrics"]), model
        assert set(r["theory"]) == set(reports["plain"]["theory"]), model
    assert "vicinity" in reports["vicinity"] and "mixup" in reports["mixup"]
    # metrics.nc1_trace is the same number as the vicinity section's own nc1_trace
    v = reports["vicinity"]
    assert v["metrics"]["nc1_trace"] == pytest.approx(v["vicinity"]["nc1_trace"], rel=1e-9)
