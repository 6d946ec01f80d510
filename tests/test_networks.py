"""ufm.networks' substrate: offline data, the training objective in the UFM's convention,
reproducible runs, and the store (padded layers, resume after an interruption, refusal of
another store, read back with plain xarray)."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from ufm.errors import InputError
from ufm.networks import dataset, read, train
from ufm.networks import training as tr
from ufm.networks.mlp import init

SMALL = dict(widths=(16, 16), epochs=6, lr=0.1)


@pytest.fixture(scope="module")
def digits():
    return dataset("digits")


def test_digits_split_is_a_partition_sorted_and_standardized(digits):
    from sklearn.datasets import load_digits

    source = load_digits()
    assert digits.x_train.shape == (1438, 64) and digits.x_test.shape == (359, 64)
    rows = np.concatenate([digits.train_index, digits.test_index])
    assert np.array_equal(np.sort(rows), np.arange(1797))
    assert np.array_equal(digits.y_train, source.target[digits.train_index])
    assert np.all(np.diff(digits.y_train) >= 0)  # sorted by class
    # standardized with the training statistics (constant pixels left at 0)
    raw = source.data[digits.train_index]
    std = raw.std(axis=0)
    expected = (raw - raw.mean(axis=0)) / np.where(std > 0, std, 1)
    np.testing.assert_allclose(digits.x_train, expected, atol=1e-12)
    assert dataset("digits").sha1 == digits.sha1 != dataset("digits", data_seed=1).sha1


def test_imbalanced_subsample_and_gaussian_geometry():
    imb = dataset("digits", train_per_class=[100] * 5 + [10] * 5, data_seed=3)
    assert imb.counts == (100,) * 5 + (10,) * 5
    g = dataset("gaussian", K=5, dim=8, separation=6.0, per_class=2000, test_fraction=0.1)
    # the class means are `separation` apart; inputs are standardized, so compare in raw
    # units through the pooled standard deviation of the training inputs
    means = np.stack([g.x_train[g.y_train == k].mean(axis=0) for k in range(5)])
    dist = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(5, 1)]
    assert dist.std() / dist.mean() < 0.1  # equidistant: a simplex


@pytest.mark.parametrize(
    "name, settings, needle",
    [
        ("cifar", {}, "unknown dataset"),
        ("digits", {"test_fraction": 1.5}, "test_fraction"),
        ("digits", {"test_fraction": 0.999}, "each needs at least one"),
        ("digits", {"train_per_class": [5] * 9}, "train_per_class"),
        ("digits", {"train_per_class": 500}, "has 14"),
        ("digits", {"K": 3}, "takes"),
        ("gaussian", {"K": 5, "dim": 3}, "dim"),
    ],
)
def test_bad_data_is_refused_naming_the_parameter(name, settings, needle):
    with pytest.raises(InputError, match=needle):
        dataset(name, **settings)


def test_objective_is_the_canonical_ufm_objective(digits):
    """The recorded objective equals mean CE + wd/2 sum ||W_l||^2 + fd/2 ||H_1||_F^2 with
    H_1 the backbone output, computed here independently in numpy."""
    t = tr.Training(widths=(8, 8), depth=2, weight_decay=3e-3, feature_decay=2e-4)
    net = init(jax.random.PRNGKey(1), 64, t.widths, t.depth, 10, False, True)
    static = tr.Static("ce", 1, digits.x_train.shape[0], False, "constant", 1)
    data = tuple(
        jnp.asarray(a) for a in (digits.x_train, digits.y_train, digits.x_test, digits.y_test)
    )
    hp = {"weight_decay": 3e-3, "feature_decay": 2e-4}
    got = float(tr._evaluate(net, data, static, hp)[0]["objective"])
    x = digits.x_train
    h1 = np.maximum(x @ np.asarray(net.hidden[0].weight).T + np.asarray(net.hidden[0].bias), 0)
    h2 = np.maximum(h1 @ np.asarray(net.hidden[1].weight).T + np.asarray(net.hidden[1].bias), 0)
    h = h2 @ np.asarray(net.linear[0]).T @ np.asarray(net.linear[1]).T
    z = h @ np.asarray(net.classifier.weight).T + np.asarray(net.classifier.bias)
    z = z - z.max(axis=1, keepdims=True)
    ce = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), digits.y_train])
    mats = [net.hidden[0].weight, net.hidden[1].weight, *net.linear, net.classifier.weight]
    decay = sum(float(np.sum(np.asarray(m) ** 2)) for m in mats)
    expected = ce + 3e-3 / 2 * decay + 2e-4 / 2 * np.sum(h2**2)
    assert got == pytest.approx(expected, rel=1e-12)


def test_batch_norm_test_features_use_training_statistics(digits):
    net = init(jax.random.PRNGKey(0), 64, (12,), 0, 10, True, True)
    x, xt = jnp.asarray(digits.x_train), jnp.asarray(digits.x_test)
    pre = lambda v: v @ net.hidden[0].weight.T + net.hidden[0].bias[None]
    (train_feats,), _ = net.features(x)
    (test_feats,), _ = net.features(xt, reference=x)
    a, at = pre(x), pre(xt)
    mean, var = a.mean(axis=0)[None], a.var(axis=0)[None]
    np.testing.assert_allclose(
        train_feats, jax.nn.relu((a - mean) / jnp.sqrt(var + 1e-5)), atol=1e-12
    )
    np.testing.assert_allclose(
        test_feats, jax.nn.relu((at - mean) / jnp.sqrt(var + 1e-5)), atol=1e-12
    )


def test_terminal_epoch():
    assert tr.terminal_epoch(np.array([0.5, 0.0, 0.1, 0.0, 0.0])) == 4
    assert tr.terminal_epoch(np.array([0.0, 0.0])) == 1
    assert tr.terminal_epoch(np.array([0.3, 0.0, 0.1])) == -1


def test_runs_are_reproducible_and_reach_zero_training_error(digits):
    t = tr.Training(widths=(64, 64), epochs=80, lr=0.2)
    a = tr.run(digits, t, (80,))
    b = tr.run(digits, t, (80,))
    np.testing.assert_array_equal(a["parameters"], b["parameters"])
    assert a["records"][-1]["train_error"] == 0 and 0 < a["terminal_epoch"] <= 80
    assert a["records"][-1]["test_error"] < 0.1
    c = tr.run(digits, tr.Training(widths=(64, 64), epochs=2, lr=0.2, seed=1), (2,))
    assert not np.array_equal(a["history"]["train_loss"][:2], c["history"]["train_loss"])


def test_store_pads_layers_and_reads_back_with_plain_xarray(tmp_path, digits):
    out = tmp_path / "runs.zarr"
    ds = train(digits, SMALL, {"depth": [0, 2]}, record=(0, 6), out=out, progress=False)
    assert list(ds["layer"].values) == ["hidden1", "hidden2", "linear1", "linear2"]
    shallow = {"depth": 0, "seed": 0}
    assert read.layer_names(ds, shallow) == ["hidden1", "hidden2"]
    assert np.isnan(ds["features_train"].sel(shallow | {"layer": "linear1"}).values).all()
    H, y = read.features(ds, {"depth": 2, "seed": 0}, 6, "linear2")
    assert H.shape == (1438, 16) and np.isfinite(H).all() and np.array_equal(y, digits.y_train)
    # the network rebuilt from the stored parameters gives the stored features
    net = read.trained_network(ds, {"depth": 2, "seed": 0}, digits)
    feats, _ = net.features(jnp.asarray(digits.x_train))
    np.testing.assert_allclose(np.asarray(feats[-1]), H, rtol=1e-10, atol=1e-12)
    code = (
        "import sys, xarray as xr; ds = xr.open_zarr(sys.argv[1], consolidated=False); "
        "assert 'ufm' not in sys.modules; print(ds['train_error'].sizes['epoch'], "
        "ds.attrs['data']['name'], int(ds['done'].sum()))"
    )
    text = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert text.stdout.split() == ["2", "digits", "2"], text.stderr


def test_interrupted_grid_resumes_to_the_same_store(tmp_path, digits):
    grid = {"weight_decay": [1e-4, 1e-3]}
    whole = train(digits, SMALL, grid, record=(6,), progress=False)
    out = tmp_path / "r.zarr"
    seen = []

    def stop_in_second_run(done, total):
        seen.append(done)
        if done > SMALL["epochs"]:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(digits, SMALL, grid, record=(6,), out=out, progress=stop_in_second_run)
    assert xr.open_zarr(out, consolidated=False)["done"].values.sum() == 1
    with pytest.raises(InputError, match="weight_decay"):
        train(digits, SMALL, {"weight_decay": [1e-4, 1e-2]}, record=(6,), out=out, resume=True)
    with pytest.raises(InputError, match="exists"):
        train(digits, SMALL, grid, record=(6,), out=out, progress=False)
    resumed = train(digits, SMALL, grid, record=(6,), out=out, resume=True, progress=False)
    for name in ("features_train", "classifier", "history_train_loss", "parameters"):
        np.testing.assert_array_equal(resumed[name].values, whole[name].values)


@pytest.mark.parametrize(
    "training, grid, needle",
    [
        ({"loss": "hinge"}, {}, "loss"),
        ({"widths": (0,)}, {}, "widths"),
        ({"momentum": 1.0}, {}, "momentum"),
        ({}, {"widths": [8, 16]}, "not a grid setting"),
        ({}, {"seed": [0, 1]}, "seeds"),
        ({}, {"weight_decay": [-1.0]}, "weight_decay"),
        ({"batch_size": 5000}, {}, "batch_size"),
        ({"tau": 1}, {}, "unknown setting"),
    ],
)
def test_bad_training_settings_are_refused_before_training(
    tmp_path, digits, training, grid, needle
):
    out = tmp_path / "x.zarr"
    with pytest.raises(InputError, match=needle):
        train(digits, training, grid, out=out, progress=False)
    assert not out.exists()


def test_a_grid_of_two_strings_is_two_values():
    from ufm.networks.grid import _axes

    (axis,) = _axes({"loss": ("mse", "ce")}, tr.Training())
    assert axis.values == ("mse", "ce")
    (axis,) = _axes({"batch-norm": ["true", "false"]}, tr.Training())
    assert axis.name == "batch_norm" and axis.values == (True, False)
