"""benchmarks/bench_startup.py, cheaply: its `import ufm` row in fresh processes, and the
table's goals and environment."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_startup.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_startup", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_import_row_times_a_fresh_interpreter(bench, capsys):
    (row,) = bench.main(["--only", "import"])
    printed = capsys.readouterr().out
    assert "CPU cores" in printed and 'python -c "import ufm"' in printed
    assert row["goal"] == "-" and row["met"] == "-"
    for kind in ("cold", "warm"):
        # importing jax alone takes a tenth of a second of CPU or more: a child was measured
        assert 0.1 < row[f"{kind}_cpu"] and 0.1 < row[f"{kind}_wall"] < 60


def test_goal_is_on_the_cold_wall_time_and_a_failure_misses_it(bench):
    fast, slow = bench.Timing(1.5, 1.0, 0), bench.Timing(2.5, 2.0, 0)
    assert bench.row("solve", "ufm solve", fast, slow)["met"] == "yes"
    assert bench.row("solve", "ufm solve", slow, fast)["met"] == "no"
    failed = bench.row("quick", "ufm verify --quick", fast, bench.Timing(1.0, 1.0, 1))
    assert failed["met"] == "no (exit 1)"
    text = bench.table([failed])
    assert "ufm verify --quick" in text and "< 20 s" in text and "1.50" in text


def test_children_use_their_own_cache(bench, monkeypatch):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/elsewhere")
    env = bench.child_env("/tmp/cache")
    assert env["UFM_CACHE_DIR"] == "/tmp/cache" and "JAX_COMPILATION_CACHE_DIR" not in env


def test_unknown_row_is_refused(bench):
    with pytest.raises(SystemExit):
        bench.main(["--only", "import,nothing"])
