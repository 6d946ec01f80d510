"""benchmarks/bench_train.py in a reduced run: its PyTorch loop is the same training as ufm's
(same start, same per-epoch curves to rounding), and it still reports ufm without PyTorch."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py"
REDUCED = ["--epochs", "3", "--no-minibatch", "--repeats", "0"]


def _bench():
    sys.path.insert(0, str(BENCH.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_train", BENCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH.parent))
    return module


def test_torch_loop_is_the_same_training(capsys):
    pytest.importorskip("torch")
    out = _bench().main(REDUCED)["full"]
    check = out["check"]
    assert check["initial_features"] == 0.0  # PyTorch starts from ufm's exact weights
    assert check["curves"] < 1e-12  # every epoch's losses and errors, float64 rounding
    assert check["final_parameters"] < 1e-12
    ours = out["columns"]["ufm (JAX)"]
    theirs = next(c for name, c in out["columns"].items() if name.startswith("PyTorch"))
    assert ours[1]["train_loss"] == pytest.approx(theirs[1]["train_loss"], rel=1e-12)
    assert math.isfinite(ours[0].first) and math.isnan(ours[0].later)  # no later calls asked
    printed = capsys.readouterr().out
    assert "ratio to ufm, first call wall" in printed and "same training" in printed


def test_reports_ufm_without_torch(monkeypatch, capsys):
    bench = _bench()
    monkeypatch.setattr(bench, "load_torch", lambda: print("PyTorch is not installed") or None)
    out = bench.main(REDUCED)["full"]
    assert list(out["columns"]) == ["ufm (JAX)"] and out["check"] is None
    assert "PyTorch is not installed" in capsys.readouterr().out
