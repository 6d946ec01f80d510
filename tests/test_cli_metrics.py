"""`ufm metrics FILE` as a user runs it: the files it reads, its JSON and table, exit codes."""

import json

import numpy as np
import pytest
from nc_reference import random_features, reference

from ufm import cli, metrics


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("UFM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax-cache"))


def run(argv, capsys):
    code = cli.main(["metrics", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data():
    return random_features(20)  # H (6, 28), labels, W (5, 6), b


def test_npz_of_a_solve_gives_the_solves_metrics_and_every_variant(capsys, tmp_path):
    solve = ["solve", "plain", "--loss", "ce", "--K", "4", "--n", "3", "--d", "5"]
    solve += ["--lambda-W", "5e-3", "--lambda-H", "5e-3", "--json", "--params"]
    assert cli.main([*solve, str(tmp_path / "p.npz")]) == 0
    solved = json.loads(capsys.readouterr()[0])["metrics"]
    code, out, err = run([tmp_path / "p.npz", "--json"], capsys)
    assert code == 0, err
    found = json.loads(out)
    # the same key names as `ufm solve`, and the same numbers (computed the same way)
    assert set(solved) <= set(found["metrics"])
    for name, value in solved.items():
        assert found["metrics"][name] == pytest.approx(value, rel=1e-8, abs=1e-12), name
    assert set(found["metrics"]) == set(found["definitions"])
    assert {"N", "K", "d", "empty_classes", "singleton_classes"} <= set(found["data"])
    assert found["geometry"]["nearest"] == "simplex_etf"


def test_npy_rows_labels_and_classifier_files(capsys, tmp_path, data):
    H, y, W, b = data
    np.save(tmp_path / "rows.npy", H.T.astype(np.float32))
    np.save(tmp_path / "cols.npy", H.astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "clf.npz", W=W, b=b)
    base = [tmp_path / "rows.npy", "--labels", tmp_path / "y.npy", "--classifier"]
    code, out, err = run([*base, tmp_path / "clf.npz", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    expected = reference(H.astype(np.float32).astype(float), y, W, b)
    for name, value in expected.items():
        assert rows["metrics"][name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert rows["data"]["input_dtype"] == "float32"
    cols = [tmp_path / "cols.npy", "--dxn", "--labels", tmp_path / "y.npy"]
    code, out, _ = run([*cols, "--classifier", tmp_path / "clf.npz", "--json"], capsys)
    assert code == 0 and json.loads(out)["metrics"] == rows["metrics"]


def test_table_output_names_every_metric_and_the_notes(capsys, tmp_path, data):
    H, y, _, _ = data
    np.savez(tmp_path / "f.npz", features=H.T, labels=np.array(list("abcde"))[y])
    code, out, _ = run([tmp_path / "f.npz"], capsys)
    assert code == 0
    for name in metrics.report(H, y)["metrics"]:
        assert f" {name} " in out
    assert "imbalanced classes" in out and "geometry: nearest orthogonal_frame" in out


def test_nonfinite_row_exits_2_naming_it_unless_dropped(capsys, tmp_path, data):
    H, y, _, _ = data
    rows = H.T.copy()
    rows[11, 3] = np.nan
    np.savez(tmp_path / "f.npz", features=rows, labels=y)
    code, out, err = run([tmp_path / "f.npz"], capsys)
    assert code == 2 and out == ""
    assert "row 11 of the features is not finite" in err and "Traceback" not in err
    code, out, _ = run([tmp_path / "f.npz", "--drop-nonfinite", "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["data"]["rows_dropped_nonfinite"] == 1
    assert report["data"]["N"] == y.size - 1


def test_undefined_values_are_null_in_json(capsys, tmp_path, data):
    H, y, _, _ = data
    y = y.copy()
    y[0] = 9  # a class with a single sample: cdnv_ddof1 is undefined
    np.savez(tmp_path / "f.npz", features=H.T, labels=y)
    code, out, _ = run([tmp_path / "f.npz", "--json", "--out", tmp_path / "r.json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["metrics"]["cdnv_ddof1"] is None
    assert json.loads((tmp_path / "r.json").read_text()) == report
    assert report["data"]["labels"]["encoding"] == "relabelled"


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda p: [p / "missing.npz"], "FEATURES: no such file"),
        (lambda p: [p / "f.txt"], "must be an .npy or .npz"),
        (lambda p: [p / "nolabels.npz"], "holds no labels"),
        (lambda p: [p / "empty.npz"], "none of 'features' or 'H'"),
        (lambda p: [p / "f.npz", "--classifier", p / "bad_W.npy"], "W must have shape (K, d)"),
        (lambda p: [p / "f.npz", "--bias", p / "b.npy"], "needs a classifier"),
        (lambda p: [p / "f.npz", "--num-classes", "1"], "--num-classes must be >= 2"),
        (lambda p: [p / "f.npz", "--num-classes", "3"], "labels must lie in 0..2"),
        (lambda p: [p / "f.npz", "--batch-size", "0"], "--batch-size must be >= 1"),
    ],
)
def test_bad_input_exits_2_with_the_parameter_named(capsys, tmp_path, data, make_args, message):
    H, y, W, _ = data
    np.savez(tmp_path / "f.npz", features=H.T, labels=y)
    np.savez(tmp_path / "nolabels.npz", features=H.T)
    np.savez(tmp_path / "empty.npz", other=y)
    np.save(tmp_path / "bad_W.npy", W[:, :2])
    np.save(tmp_path / "b.npy", np.ones(5))
    (tmp_path / "f.txt").write_text("1 2 3")
    code, out, err = run(make_args(tmp_path), capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert message in err
