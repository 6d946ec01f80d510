"""`ufm solve` and `ufm verify` as a user runs them: JSON keys, numbers, files, exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ufm import cli
from ufm.models import plain as cf

SOLVE = [
    "solve",
    "plain",
    "--loss",
    "mse",
    "--K",
    "4",
    "--n",
    "5",
    "--d",
    "8",
    "--lambda-W",
    "0.05",
    "--lambda-H",
    "0.01",
]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("UFM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax-cache"))


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_solve_json_has_the_documented_keys_and_numbers(capsys, tmp_path):
    code, out, _ = run(
        [*SOLVE, "--json", "--out", str(tmp_path / "r.json"), "--params", str(tmp_path / "p.npz")],
        capsys,
    )
    assert code == 0
    r = json.loads(out)
    for key in ("loss", "grad_norm", "converged", "steps", "seconds", "theory", "check", "metrics"):
        assert key in r
    assert {"loss", "regime", "geometry"} <= set(r["theory"])
    assert {"loss_gap", "verdict"} <= set(r["check"])
    assert {"nc1", "nc2", "nc3"} <= set(r["metrics"])
    # canonical worked example: c = 0.2, f* = c - c^2/2 = 0.18, orthogonal frame
    assert r["theory"]["loss"] == pytest.approx(0.18, abs=1e-15)
    assert r["loss"] == pytest.approx(0.18, rel=1e-9)
    assert r["converged"] and r["grad_norm"] <= 1e-10
    assert (r["theory"]["regime"], r["theory"]["geometry"]) == ("collapsed", "orthogonal_frame")
    assert r["check"]["verdict"] == "agrees"
    # at an exact orthogonal frame Papyan's NC3 is 2 - 2 sqrt((K-1)/K), not 0 (derived by hand
    # in tests/test_metrics.py)
    assert r["metrics"]["nc3"] == pytest.approx(2 - 2 * np.sqrt(3 / 4), abs=1e-8)
    assert json.loads((tmp_path / "r.json").read_text())["loss"] == r["loss"]
    saved = np.load(tmp_path / "p.npz")
    assert saved["W"].shape == (4, 8) and saved["H"].shape == (8, 20)
    np.testing.assert_array_equal(saved["y"], np.repeat(np.arange(4), 5))


def test_solve_imbalanced_counts_and_bias(capsys):
    code, out, _ = run(
        [
            "solve",
            "plain",
            "--loss",
            "mse",
            "--K",
            "4",
            "--n",
            "100,100,10,10",
            "--d",
            "8",
            "--lambda-W",
            "0.016",
            "--lambda-H",
            "0.016",
            "--json",
        ],
        capsys,
    )
    r = json.loads(out)
    assert code == 0 and r["parameters"]["n"] == [100, 100, 10, 10]
    assert r["theory"]["regime"] == "minority_collapse"
    n = np.array([100, 100, 10, 10.0])
    assert r["theory"]["loss"] == pytest.approx(cf.gof_class_loss(n, 220, 0.016, 0.016).sum())
    assert r["check"]["verdict"] == "agrees"


def test_solve_human_report(capsys):
    code, out, _ = run(SOLVE, capsys)
    assert code == 0
    assert "orthogonal_frame" in out and "AGREES" in out and "0.18" in out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--K", "1"], "K must be an integer >= 2"),
        (["--n", "0"], "n must be an integer >= 1"),
        (["--n", "5,5"], "n must have K=4 entries"),
        (["--d", "0"], "d must be an integer >= 1"),
        (["--lambda-W", "-1"], "lambda_W must be a finite number > 0"),
        (["--lambda-H", "nan"], "lambda_H must be a finite number > 0"),
        (["--lambda-b", "0.1"], "needs bias=True"),
        (["--restarts", "0"], "restarts must be an integer >= 1"),
        (["--gtol", "0"], "gtol must be a finite number > 0"),
        (["--memory-size", "0"], "memory_size must be an integer >= 1"),
        (["--out", "/no/such/dir/r.json"], "--out: directory '/no/such/dir' does not exist"),
    ],
)
def test_bad_values_exit_2_with_one_line(capsys, flags, message):
    code, out, err = run([*SOLVE, *flags], capsys)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and message in err and err.startswith("ufm: error:")


@pytest.mark.parametrize(
    "argv",
    [
        ["solve", "resnet"],
        ["solve", "plain", "--loss", "hinge"],
        ["solve", "plain", "--n", "a,b"],
        ["verify", "no-such-claim"],
    ],
)
def test_unknown_names_exit_2(capsys, argv):
    try:
        code = cli.main(argv)  # our own validation returns 2 ...
    except SystemExit as stop:  # ... argparse's exits with 2
        code = stop.code
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_console_script_has_no_traceback_on_bad_input():
    proc = subprocess.run(
        [sys.executable, "-m", "ufm.cli", "solve", "plain", "--K", "1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "K must be an integer >= 2" in proc.stderr


def test_verify_one_claim_writes_json(capsys, tmp_path):
    report = tmp_path / "verify.json"
    code, out, _ = run(
        ["verify", "mse-orthogonal-frame", "ce-narrow-not-applicable", "--json", str(report)],
        capsys,
    )
    assert code == 0 and "2 passed, 0 failed" in out
    data = json.loads(report.read_text())
    verdicts = {c["claim"]: c["verdict"] for c in data["claims"]}
    assert data["complete"] and verdicts == {
        "mse-orthogonal-frame": "agrees",
        "ce-narrow-not-applicable": "inconclusive",
    }
    of = next(c for c in data["claims"] if c["claim"] == "mse-orthogonal-frame")
    assert of["predicted"]["loss"] == pytest.approx(0.18, abs=1e-15)


def test_verify_list(capsys):
    code, out, _ = run(["verify", "--list"], capsys)
    assert code == 0 and "ce-etf" in out and "(quick)" in out


def test_verify_exits_nonzero_when_a_verdict_is_unexpected(capsys, monkeypatch):
    from ufm import verify

    wrong = verify.Claim(
        "wrong-expectation",
        "test",
        "an agreeing point expected to disagree",
        "plain",
        {"loss": "mse", "K": 4, "n": 5, "d": 8, "lambda_W": 0.05, "lambda_H": 0.01},
        expect="disagrees",
        restarts=1,
    )
    everything = (*verify.catalog(), wrong)
    monkeypatch.setattr(verify, "catalog", lambda: everything)
    code, out, _ = run(["verify", "wrong-expectation"], capsys)
    assert code == 1 and "0 passed, 1 failed" in out and "expected disagrees" in out


# --- vicinity: H0 from a file, as a researcher hands in a network's features -------------------
def _features_file(tmp_path, K=4, n=5, d=6, noise=0.2):
    """Features in the layout a network saves (N x d) with shuffled labels 3, 7, 9, 12."""
    rng = np.random.default_rng(0)
    R, _ = np.linalg.qr(rng.standard_normal((d, K)))
    H0 = np.repeat(R, n, axis=1) + noise * rng.standard_normal((d, K * n))
    labels = np.repeat([3, 7, 9, 12], n)
    perm = rng.permutation(K * n)
    path = tmp_path / "feats.npz"
    np.savez(path, features=H0.T[perm], labels=labels[perm])
    return path, H0


def trace_nc1(H, K, n):
    means = H.reshape(H.shape[0], K, n).mean(axis=2)
    within = np.sum((H - np.repeat(means, n, axis=1)) ** 2) / H.shape[1]
    between = np.sum((means - means.mean(axis=1, keepdims=True)) ** 2) / K
    return within / between


def test_solve_vicinity_reads_H0_from_a_file(capsys, tmp_path):
    path, H0 = _features_file(tmp_path)
    out_npz = tmp_path / "sol.npz"
    code, out, _ = run(
        ["solve", "vicinity", "--beta", "2", "--H0", str(path), "--json", "--params", str(out_npz)],
        capsys,
    )
    assert code == 0
    r = json.loads(out)
    assert r["parameters"]["K"] == 4 and r["parameters"]["n"] == 5 and r["parameters"]["d"] == 6
    v = r["vicinity"]
    assert v["H0_labels"] == [3, 7, 9, 12]  # class index k holds the k-th smallest label
    assert r["converged"] and r["theory"]["regime"] == "not_applicable"
    assert r["check"]["verdict"] == "inconclusive"
    saved = np.load(out_npz)
    # the file's columns were sorted by class (stable, so in file order within a class)
    by_class = lambda H: [np.sort(H[:, k * 5 : (k + 1) * 5], axis=1) for k in range(4)]
    for got, want in zip(by_class(saved["H0"]), by_class(H0), strict=True):
        np.testing.assert_array_equal(got, want)
    assert v["nc1_trace_H0"] == pytest.approx(trace_nc1(H0, 4, 5), rel=1e-12)
    assert v["nc1_trace"] == pytest.approx(trace_nc1(saved["H"], 4, 5), rel=1e-12)
    assert v["nc1_trace"] < v["nc1_trace_H0"]  # closer to collapse than the layer below
    assert set(v["first_order"]) == {"explicit_step", "linear_response"}
    # the metrics block means the same in every model: nc1_trace there is the same number
    assert r["metrics"]["nc1_trace"] == pytest.approx(v["nc1_trace"], rel=1e-9)


@pytest.mark.parametrize(
    "make_file, extra, message",
    [
        (lambda H: H[:, :19], ["--K", "4"], "not a multiple of K=4"),
        (lambda H: np.where(np.arange(20) == 7, np.nan, H), ["--K", "4"], "column 7"),
        (lambda H: H, ["--K", "4", "--d", "5"], "expected d=5"),
        (lambda H: H[0], ["--K", "4"], "2-D"),
    ],
    ids=["wrong-count", "nan", "wrong-shape", "one-dimensional"],
)
def test_solve_vicinity_malformed_H0_exits_2(capsys, tmp_path, make_file, extra, message):
    H = np.random.default_rng(1).standard_normal((6, 20))
    path = tmp_path / "H0.npy"
    np.save(path, make_file(H))
    code, out, err = run(["solve", "vicinity", "--H0", str(path), *extra], capsys)
    assert code == 2 and out == ""
    assert "H0" in err and message in err and "Traceback" not in err


def test_solve_vicinity_wrong_class_count_exits_2(capsys, tmp_path):
    path, _ = _features_file(tmp_path)
    code, _, err = run(["solve", "vicinity", "--K", "3", "--H0", str(path)], capsys)
    assert code == 2 and "4 classes but K=3" in err
