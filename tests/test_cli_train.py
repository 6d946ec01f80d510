"""`ufm train`, `ufm experiment` and `ufm metrics STORE` the way a user runs them: bad input
is exit 2 naming the flag before anything is trained; a store is read back layer by layer,
and its metrics agree with NC1 computed here by hand."""

import json

import numpy as np
import pytest
import xarray as xr

from ufm import cli

TINY = ["train", "--widths", "8,8", "--epochs", "3", "--record", "0,3", "--no-progress"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("UFM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax-cache"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "runs.zarr"
    assert cli.main([*TINY, "--grid", "weight-decay=1e-4,1e-3", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--data", "cifar"], "unknown dataset"),
        (["--train-per-class", "0"], "train_per_class"),
        (["--test-fraction", "0.999"], "each needs at least one"),
        (["--classes", "3"], "only with --data gaussian"),
        (["--loss", "hinge"], "loss"),
        (["--grid", "widths=4,8"], "not a grid setting"),
        (["--grid", "depth=1,1"], "repeat"),
        (["--record", "0,99"], "record"),
        (["--batch-size", "99999"], "batch_size"),
    ],
)
def test_train_refuses_bad_input_before_training(tmp_path, capsys, args, needle):
    out = tmp_path / "x.zarr"
    assert cli.main([*TINY, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not out.exists()


def test_train_summary_and_resume_refusals(store, capsys, tmp_path):
    assert cli.main([*TINY, "--grid", "weight-decay=1e-4,1e-3", "--out", str(store)]) == 2
    assert "--resume" in capsys.readouterr().err
    again = [*TINY, "--grid", "weight-decay=1e-4,1e-2", "--out", str(store), "--resume"]
    assert cli.main(again) == 2
    assert "weight_decay" in capsys.readouterr().err
    done = [*TINY, "--grid", "weight-decay=1e-4,1e-3", "--out", str(store), "--resume", "--json"]
    assert cli.main(done) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["runs"] == 2 and {r["weight_decay"] for r in summary["each"]} == {1e-4, 1e-3}


def test_metrics_of_a_store_layer_match_nc1_by_hand(store, capsys):
    args = ["metrics", str(store), "--sel", "weight_decay=0.001", "--layer", "hidden1"]
    assert cli.main([*args, "--epoch", "3", "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["selection"] == {
        "weight_decay": 1e-3,
        "seed": 0,
        "epoch": 3,
        "layer": "hidden1",
        "split": "train",
    }
    ds = xr.open_zarr(store, consolidated=False)
    H = ds["features_train"].sel(weight_decay=1e-3, seed=0, epoch=3, layer="hidden1").values
    y = ds["train_label"].values
    means = np.stack([H[y == k].mean(axis=0) for k in range(10)])
    within = sum(((H[y == k] - means[k]) ** 2).sum() for k in range(10)) / len(y)
    between = ((means - H.mean(axis=0)) ** 2).sum() / 10
    assert report["metrics"]["nc1_trace"] == pytest.approx(within / between, rel=1e-9)
    assert "nc3" not in report["metrics"]  # not the last layer: no classifier


def test_metrics_of_a_store_needs_one_run(store, capsys):
    assert cli.main(["metrics", str(store), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--sel" in err and "weight_decay=0.0001" in err
    assert cli.main(["metrics", str(store), "--sel", "depth=2", "--no-progress"]) == 2
    assert "not a grid dimension" in capsys.readouterr().err
    bad = ["metrics", str(store), "--sel", "weight_decay=0.001", "--layer", "linear1"]
    assert cli.main([*bad, "--no-progress"]) == 2
    assert "layer" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["nope"], "invalid choice"),
        (["terminal", "--figure", "x.txt"], "--figure"),
        (["terminal", "--report", "x.csv"], "--report"),
    ],
)
def test_experiment_refuses_bad_input(tmp_path, capsys, args, needle):
    with pytest.raises(SystemExit) if args == ["nope"] else _nothing():
        code = cli.main(["experiment", *args])
        assert code == 2
    assert needle in capsys.readouterr().err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
