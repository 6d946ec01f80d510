"""`ufm metrics FILE` as a user runs it: the files it reads, its JSON and table, exit codes."""

import json

import numpy as np
import pytest
from nc_reference import random_features, reference

from ufm import _budget, cli, metrics


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


# --- `ufm features`: an example file that ufm metrics and ufm solve vicinity read as is ----


def write_features(tmp_path, capsys, *flags):
    """Run `ufm features` and load what it wrote (OUT without .npz gets it appended)."""
    code = cli.main(["features", str(tmp_path / "example"), *map(str, flags)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(str(tmp_path / "example.npz"))
    with np.load(tmp_path / "example.npz") as z:
        return {k: z[k] for k in z.files}


def by_class(features, labels):
    """Class codes 0..K-1 in the order of the sorted label values, and the class means."""
    values, codes = np.unique(labels, return_inverse=True)
    means = np.stack([features[codes == k].mean(axis=0) for k in range(values.size)])
    return values, codes, means


def test_features_file_holds_a_shuffled_near_collapsed_etf(tmp_path, capsys):
    z = write_features(tmp_path, capsys)
    features, labels, W = z["features"], z["labels"], z["W"]
    assert set(z) == {"features", "labels", "W"}
    assert features.shape == (20, 6) and features.dtype == np.float64
    assert labels.shape == (20,) and np.issubdtype(labels.dtype, np.integer)
    assert W.shape == (4, 6) and W.dtype == np.float64
    values, codes, means = by_class(features, labels)
    assert values.size == 4 and values.min() > 0  # not the codes 0..K-1
    assert np.all(np.bincount(codes) == 5)
    assert np.any(np.diff(labels) < 0)  # rows not grouped by class
    # W is a unit simplex ETF: Gram = (K I - 1 1^T) / (K - 1)
    np.testing.assert_allclose(W @ W.T, (4 * np.eye(4) - 1) / 3, atol=1e-14)
    # row k of W is the class of the k-th smallest label: its mean lies nearest that row
    distance = np.linalg.norm(means[:, None, :] - W[None, :, :], axis=-1)
    np.testing.assert_array_equal(np.argmin(distance, axis=1), np.arange(4))


def test_features_noise_has_the_stated_size_and_the_seed_decides(tmp_path, capsys):
    """noise = root-mean-square distance of a sample to its class mean (per coordinate
    noise / sqrt(d)); the sample mean of a class is its ETF row up to noise / sqrt(n)."""
    flags = ["--K", "3", "--n", "4000", "--d", "5", "--noise", "0.3", "--seed", "7"]
    z = write_features(tmp_path, capsys, *flags)
    _, codes, means = by_class(z["features"], z["labels"])
    spread = np.mean(np.sum((z["features"] - means[codes]) ** 2, axis=1))
    # E spread = noise^2 (1 - 1/n); its relative standard deviation is sqrt(2 / (N d)) < 1%
    assert spread == pytest.approx(0.09 * (1 - 1 / 4000), rel=0.04)
    assert np.max(np.linalg.norm(means - z["W"], axis=1)) < 5 * 0.3 / np.sqrt(4000)
    again = write_features(tmp_path, capsys, *flags)
    assert all(np.array_equal(z[k], again[k]) for k in z)
    other = write_features(tmp_path, capsys, *flags[:-1], "8")
    assert not np.array_equal(z["features"], other["features"])


def test_features_file_is_read_as_is_by_metrics_and_vicinity(tmp_path, capsys):
    z = write_features(tmp_path, capsys)
    values, codes, _ = by_class(z["features"], z["labels"])
    expected = reference(z["features"].T, codes, z["W"])  # W's row k: k-th smallest label
    code, out, err = run([tmp_path / "example.npz", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert (report["data"]["N"], report["data"]["K"], report["data"]["d"]) == (20, 4, 6)
    for name, value in expected.items():
        assert report["metrics"][name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert report["metrics"]["nc2_W"] < 1e-12  # W is an exact simplex ETF
    assert any("W's row k is the k-th smallest label" in note for note in report["notes"])

    argv = ["solve", "vicinity", "--H0", str(tmp_path / "example.npz"), "--json"]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    solved = json.loads(out)
    assert solved["parameters"]["K"] == 4 and solved["parameters"]["d"] == 6
    assert solved["parameters"]["n"] == 5 or solved["parameters"]["n"] == [5] * 4
    assert solved["vicinity"]["H0_labels"] == values.tolist()
    assert solved["vicinity"]["nc1_trace_H0"] == pytest.approx(expected["nc1_trace"], rel=1e-10)
    assert solved["converged"]


def test_classifier_rows_follow_the_sorted_labels(data):
    """Labels taking K values other than 0..K-1 with a K-row W: the same metrics as the codes
    0..K-1 of their sorted order; with num_classes given, such labels stay an error."""
    H, y, W, b = data
    values = np.array([3, 7, 9, 12, 40])
    coded = metrics.report(H, y, W, b)
    relabelled = metrics.report(H, values[y], W, b)
    assert relabelled["metrics"] == pytest.approx(coded["metrics"], rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match="labels must lie in 0..4"):
        metrics.report(H, values[y], W, b, num_classes=5)
    with pytest.raises(ValueError, match="labels must lie in 0..3"):
        metrics.report(H, values[y], W[:4])  # 5 label values, 4 rows


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--K", "1"], ["--K must be an integer >= 2", "got 1"]),
        (["--n", "0"], ["--n must be an integer >= 1"]),
        (["--K", "5", "--d", "3"], ["--d must be an integer >= K-1 = 4", "got 3"]),
        (["--noise", "-0.1"], ["--noise must be a finite number >= 0"]),
        (["--noise", "nan"], ["--noise must be a finite number >= 0"]),
        (["--seed", "-1"], ["--seed must be an integer >= 0"]),
        (["--K", "1000", "--n", "1000000", "--d", "1000"], ["ufm features --K 1000", "memory"]),
    ],
)
def test_features_bad_values_exit_2_naming_the_flag(tmp_path, capsys, monkeypatch, flags, words):
    monkeypatch.setattr(_budget, "available", lambda: (16 * 10**9, "test machine"))
    code = cli.main(["features", str(tmp_path / "f.npz"), *flags])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("ufm: error:") and err.strip().count("\n") == 0, err
    for word in words:
        assert word in err, (word, err)
    assert list(tmp_path.iterdir()) == []
