"""Nothing wrong goes unnoticed, and every error comes before the work: unwritable outputs
and sizes that cannot fit are refused up front (exit 2, nothing solved, no file left), a
write that fails at the end loses nothing (exit 1, the report on stdout), a failure of ufm
is not reported as bad input (exit 1, traceback), and negative numbers reach ufm's checks."""

import errno
import importlib
import json
import os
import sys
import time

import numpy as np
import pytest
from nc_reference import random_features

import ufm
from ufm import _argv, _budget, _output, cli
from ufm.errors import InputError

SOLVE = ["solve", "plain", "--loss", "mse", "--K", "4", "--n", "5", "--d", "8"]
HUGE_GRID = ["--grid", "lambda_W=1e-4:1:10000:log", "--grid", "lambda_H=1e-4:1:10000:log"]
GB = 10**9


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("UFM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax-cache"))


@pytest.fixture
def sixteen_gb(monkeypatch):
    """A machine with 16 GB free, whatever this one has."""
    monkeypatch.setattr(_budget, "available", lambda: (16 * GB, "test machine"))


@pytest.fixture
def no_work(monkeypatch):
    """Building any problem fails the test: the error must come first."""

    def make(*args, **kwargs):
        raise AssertionError("a problem was built")

    monkeypatch.setattr(sys.modules["ufm.registry"], "make", make)
    monkeypatch.setattr(sys.modules["ufm.sweeps"], "make", make)


def run(argv, capsys):
    start = time.perf_counter()
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:  # argparse
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err, time.perf_counter() - start


def one_line_error(code, out, err, *words):
    assert code == 2 and out == "" and "Traceback" not in err, (code, out, err)
    assert err.startswith("ufm: error:") and err.strip().count("\n") == 0, err
    for word in words:
        assert word in err, (word, err)


# --- unwritable outputs: refused before any work, nothing left behind ----------------------


@pytest.mark.parametrize(
    "argv, words",
    [
        (lambda p: [*SOLVE, "--out", p / "dir"], ["--out", "is a directory"]),
        (lambda p: [*SOLVE, "--json", "--params", p / "dir.npz"], ["--params", "directory"]),
        (lambda p: [*SOLVE, "--out", p / "missing" / "r.json"], ["--out", "does not exist"]),
        (lambda p: [*SOLVE, "--out", "/proc/ufm-test.json"], ["--out", "cannot create"]),
        (lambda p: ["verify", "mse-orthogonal-frame", "--json", p / "dir"], ["--json"]),
        (lambda p: ["plot", p / "r.zarr", "--x", "K", "--out", p / "dir.png"], ["--out"]),
        (lambda p: ["metrics", p / "f.npz", "--out", p / "dir"], ["--out", "is a directory"]),
        (lambda p: ["sweep", *SOLVE[1:], "--grid", "d=8,9", "--out", p / "f.npz"], ["--out"]),
        (lambda p: ["sweep", *SOLVE[1:], "--grid", "d=8", "--out", p / "no" / "x.zarr"], []),
        (lambda p: ["features", p / "dir"], ["OUT", "dir.npz", "is a directory"]),
    ],
    ids=[
        "dir",
        "params-dir",
        "no-parent",
        "proc",
        "verify",
        "plot",
        "metrics",
        "sweep-file",
        "sweep-no-parent",
        "features",
    ],  # fmt: skip
)
def test_unwritable_output_is_refused_before_any_work(capsys, tmp_path, no_work, argv, words):
    for name in ("dir", "dir.npz", "dir.png"):
        (tmp_path / name).mkdir()
    np.savez(tmp_path / "f.npz", features=np.eye(4), labels=np.arange(4) % 2)
    before = sorted(os.listdir(tmp_path))
    code, out, err, _ = run(argv(tmp_path), capsys)
    one_line_error(code, out, err, *words)
    assert sorted(os.listdir(tmp_path)) == before  # no probe, temp or partial file
    assert all(not os.listdir(tmp_path / d) for d in ("dir", "dir.npz", "dir.png"))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_at_the_end_prints_the_report_and_exits_1(capsys, tmp_path):
    code, out, err, _ = run([*SOLVE, "--out", "/dev/full"], capsys)
    assert code == 1 and "Traceback" not in err
    assert "--out: could not write '/dev/full' (No space left on device)" in err
    assert json.loads(out)["check"]["verdict"] == "agrees"  # nothing computed is lost


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_for_metrics_and_verify_prints_the_report_and_exits_1(
    capsys, tmp_path, monkeypatch
):
    H, y, _, _ = random_features(20)  # test_cli_metrics's shapes: compiled once per session
    np.savez(tmp_path / "f.npz", features=H.T, labels=y)
    code, out, err, _ = run(["metrics", tmp_path / "f.npz", "--out", "/dev/full"], capsys)
    assert code == 1 and "--out: could not write '/dev/full'" in err
    assert json.loads(out)["data"]["N"] == y.size
    verify = importlib.import_module("ufm.verify")
    result = {"claim": "c", "parameters": {}, "predicted": {"text": "t"}, "found": {"text": "t"},
              "loss_gap": None, "verdict": "agrees", "expected": "agrees", "passed": True,
              "reason": "", "seconds": 0.0}  # fmt: skip
    monkeypatch.setattr(verify, "select", lambda names, quick: ["c"])
    monkeypatch.setattr(verify, "run_all", lambda claims, record: record(result))
    code, out, err, _ = run(["verify", "c", "--json", "/dev/full"], capsys)
    assert code == 1 and "--json: could not write '/dev/full'" in err
    assert json.loads(out[out.index("\n{") :]) == {"claims": [result], "complete": True}


def test_failed_write_removes_its_temp_file(capsys, tmp_path, monkeypatch):
    def replace(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_output, "_commit", replace)
    code, out, err, _ = run([*SOLVE, "--out", tmp_path / "r.json", "--params", tmp_path / "p"],
                            capsys)  # fmt: skip
    assert code == 1 and os.listdir(tmp_path) == []
    assert "--params: could not write" in err and "--out: could not write" in err
    assert json.loads(out)["loss"] > 0


def test_written_json_equals_stdout_and_params_get_npz(capsys, tmp_path):
    code, out, _, _ = run([*SOLVE, "--json", "--out", tmp_path / "r", "--params", tmp_path / "p"],
                          capsys)  # fmt: skip
    assert code == 0 and sorted(os.listdir(tmp_path)) == ["p.npz", "r"]
    assert json.loads((tmp_path / "r").read_text()) == json.loads(out)
    assert np.load(tmp_path / "p.npz")["H"].shape == (8, 20)


# --- sizes that cannot fit: refused before anything big is allocated ----------------------


@pytest.mark.parametrize(
    "argv, words",
    [
        (["solve", "plain", "--K", "1e6", "--d", "64"], ["K=1000000", "d=64", "PB"]),
        ([*SOLVE, "--restarts", "100000000"], ["restarts=100000000", "TB"]),
        (["solve", "mixup", "--K", "3000", "--d", "3000"], ["K=3000", "mix=beta:1:8"]),
        (
            ["solve", "deep-linear", "--K", "4", "--n", "5", "--d", "200000", "--depth", "4"],
            ["d=200000", "depth=4"],
        ),
        (
            ["sweep", *SOLVE[1:], *HUGE_GRID, "--out", "{tmp}/big.zarr"],
            ["100000000 grid points", "lambda_W: 10000 values", "lambda_H: 10000 values"],
        ),
        (["metrics", "{tmp}/f.npz", "--num-classes", "1e9"], ["--num-classes 1000000000"]),
    ],
    ids=["K", "restarts", "mixup-columns", "deep-width", "sweep-grid", "metrics-classes"],
)
def test_sizes_that_cannot_fit_are_refused_up_front(capsys, tmp_path, sixteen_gb, no_work,
                                                    argv, words):  # fmt: skip
    np.savez(tmp_path / "f.npz", features=np.eye(4), labels=np.arange(4) % 2)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err, seconds = run(argv, capsys)
    one_line_error(code, out, err, "would need about", "16 GB (test machine)", *words)
    assert seconds < 10 and not (tmp_path / "big.zarr").exists()


def test_library_refuses_too_many_restarts_and_too_big_a_grid(sixteen_gb, monkeypatch):
    problem = ufm.make("plain", loss="mse", K=4, n=5, d=8)
    with pytest.raises(InputError, match="restarts=100000000"):
        ufm.solve(problem, restarts=10**8)
    monkeypatch.setattr(sys.modules["ufm.sweeps"], "make", None)  # the refusal comes first
    grid = {"lambda_W": np.geomspace(1e-4, 1, 10**4), "lambda_H": np.geomspace(1e-4, 1, 10**4)}
    with pytest.raises(InputError, match="100000000 grid points"):
        ufm.sweep("plain", {"loss": "mse", "K": 4, "n": 5, "d": 8}, grid)


def test_normal_sizes_pass_and_estimates_are_sane(monkeypatch):
    monkeypatch.setattr(_budget, "available", lambda: (GB, "test machine"))
    _budget.check_hypers("plain", {"K": 10, "n": 100, "d": 64}, {"restarts": 8})
    _budget.check_hypers("deep-linear", {"K": 10, "n": 100, "d": 64, "depth": 6}, {})
    _budget.check_hypers("mixup", {"K": 10, "n": 100, "d": 16, "classifier": "learned"}, {})
    _budget.check_problem(ufm.make("vicinity"), {"restarts": 32, "method": "lbfgs",
                                                  "memory_size": 10})  # fmt: skip
    _budget.check_metrics(N=10**7, d=768, K=1000, batch_size=4096, has_W=True)
    sizes = _budget.hyper_sizes("plain", {"K": 10, "n": 100, "d": 64})
    assert sizes == _budget.problem_sizes(ufm.make("plain", K=10, n=100, d=64))
    assert 5e6 < _budget.solve_bytes(sizes, 1, "lbfgs", 3, False) < 5e7
    have, source = _budget._meminfo()
    assert have is None or (have > 0 and "MemAvailable" in source)


# --- a failure of ufm is not bad input ------------------------------------------------------


@pytest.mark.parametrize(
    "error, kind",
    [
        (np.linalg.LinAlgError("Singular matrix"), "a numerical failure"),
        (ValueError("an unexpected value"), "a failure of ufm"),
        (RuntimeError("an unexpected state"), "a failure of ufm"),
    ],
)
def test_internal_failure_exits_1_with_traceback_not_as_bad_input(capsys, monkeypatch, error,
                                                                   kind):  # fmt: skip
    def make(*args, **kwargs):
        raise error

    monkeypatch.setattr(sys.modules["ufm.registry"], "make", make)
    code, out, err, _ = run(SOLVE, capsys)
    assert code == 1 and out == ""
    assert "Traceback" in err and "ufm: error:" not in err
    assert f"ufm: internal error ({kind}, not a problem with the input)" in err
    assert str(error) in err


def test_bad_input_raised_inside_the_library_still_exits_2(capsys, monkeypatch):
    def make(*args, **kwargs):
        raise InputError("K must be an integer >= 2; got 1")

    monkeypatch.setattr(sys.modules["ufm.registry"], "make", make)
    one_line_error(*run(SOLVE, capsys)[:3], "K must be")


def test_pickled_or_corrupt_metrics_files_are_bad_input(capsys, tmp_path):
    np.savez(tmp_path / "obj.npz", features=np.array([{"a": 1}], dtype=object), labels=[0])
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip file")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name, word in (("obj.npz", "cannot read 'features'"), ("bad.npz", "cannot read"),
                       ("obj.npy", "cannot read")):  # fmt: skip
        code, out, err, _ = run(["metrics", tmp_path / name, "--labels", tmp_path / "obj.npy"],
                                capsys)  # fmt: skip
        one_line_error(code, out, err, word)


def test_a_pickled_member_of_an_H0_file_is_bad_input(capsys, tmp_path):
    np.savez(tmp_path / "h0.npz", H0=np.ones((4, 6)), labels=np.array([{}] * 6, dtype=object))
    code, out, err, _ = run(["solve", "vicinity", "--H0", tmp_path / "h0.npz"], capsys)
    one_line_error(code, out, err, "H0: cannot read a member of")


def test_mixup_at_tiny_lambda_has_a_theory_not_a_singular_matrix():
    """The reported case: Newton on the logits met a singular Hessian (its curvature along
    1 is 1/kappa ~ 1e-17, lost to round-off). It is solved in 1-perp now, and fast."""
    from ufm.models import mixup

    problem = ufm.make("mixup", loss="ce", K=3, n=4, d=4, classifier="learned",
                       lambda_W=1e-12, lambda_H=1e-12)  # fmt: skip
    start = time.perf_counter()
    theory = problem.theory()
    assert time.perf_counter() - start < 5
    assert theory.regime == "collapsed" and 0 < theory.loss < np.log(3)
    Y = np.asarray(problem.targets)
    for kappa in (1e17, 1e20, 1e30):
        Z = mixup.ce_logits(Y, kappa)
        P = np.exp(Z - Z.max(0)) / np.exp(Z - Z.max(0)).sum(0)
        assert np.all(np.isfinite(Z)) and np.max(np.abs(P - Y + Z / kappa)) < 1e-13


@pytest.mark.slow
def test_mixup_at_tiny_lambda_solves_from_the_cli(capsys):
    argv = ["solve", "mixup", "--loss", "ce", "--K", "3", "--n", "4", "--d", "4", "--classifier",
            "learned", "--lambda-W", "1e-12", "--lambda-H", "1e-12", "--json"]  # fmt: skip
    code, out, err, _ = run(argv, capsys)
    assert code == 0, err
    assert json.loads(out)["theory"]["loss"] == pytest.approx(0.33339851668, rel=1e-9)


# --- negative numbers reach ufm's own range checks -----------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        ([*SOLVE, "--lambda-H", "-1e-3"], "lambda_H must be a finite number > 0; got -0.001"),
        ([*SOLVE, "--lambda-W", "-1E+2"], "lambda_W must be a finite number > 0; got -100.0"),
        (
            [
                "solve",
                "deep-linear",
                "--K",
                "4",
                "--n",
                "5",
                "--d",
                "8",
                "--depth",
                "2",
                "--lambda-W",
                "-1e-3,1e-3",
            ],
            "lambda_W[0] must be a finite number > 0; got -0.001",
        ),
        ([*SOLVE, "--gtol", "-1e-12"], "gtol must be a finite number > 0"),
        ([*SOLVE, "--restarts", "-2"], "restarts must be an integer >= 1"),
        (
            [
                "sweep",
                *SOLVE[1:],
                "--lambda-H",
                "-1e-3",
                "--grid",
                "lambda_W=1e-3,1e-2",
                "--out",
                "{tmp}/s.zarr",
            ],
            "lambda_H must be a finite number > 0; got -0.001",
        ),
        (
            ["sweep", *SOLVE[1:], "--grid", "lambda_W=-1e-3,1e-3", "--out", "{tmp}/s.zarr"],
            "lambda_W must be a finite number > 0; got -0.001",
        ),
    ],
    ids=["solve", "capital-exponent", "deep-list", "gtol", "restarts", "sweep", "sweep-grid"],
)
def test_negative_numbers_reach_ufms_range_checks(capsys, tmp_path, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    one_line_error(*run(argv, capsys)[:3], message)
    assert not (tmp_path / "s.zarr").exists()


def test_argument_helpers():
    assert _argv.join_negative_values(["--a", "-1e-3", "--b", "-x", "--c=-1", "-1e-3"]) == [
        "--a=-1e-3", "--b", "-x", "--c=-1", "-1e-3"]  # fmt: skip
    assert _argv.join_negative_values(["--grid", "lambda_W=-1:2:3", "--", "--a", "-1"]) == [
        "--grid", "lambda_W=-1:2:3", "--", "--a", "-1"]  # fmt: skip
    assert [_argv.to_int(t) for t in ("12", "-3", "1e6", "2.0E3")] == [12, -3, 10**6, 2000]
    for text in ("2.5", "1e-3", "ten", "inf"):
        with pytest.raises(ValueError):
            _argv.to_int(text)


def test_integer_flags_take_scientific_notation_and_reject_fractions(capsys):
    code, _, err, _ = run([*SOLVE, "--K", "2.5"], capsys)
    assert code == 2 and "--K: expected an integer; got '2.5'" in err
