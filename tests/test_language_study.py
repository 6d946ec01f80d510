"""The language study (issue 19, part 4): held-out NC4, measurement of a transformer's last
hidden states over next-token classes against direct computations, the resumable store, the
rank-correlation analysis, classical collapse on a deterministic language, and the CLI's
errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import xarray as xr

from ufm import cli
from ufm.errors import InputError
from ufm.language import analysis, experiment
from ufm.language.data import language_data
from ufm.language.measure import measure, token_geometry
from ufm.language.study import Study, open_study, run, trained_model
from ufm.language.train import TransformerConfig, evaluate, train, windows
from ufm.metrics import report

SYNTHETIC = (("train_tokens", 20_000), ("validation_tokens", 5_000))
TINY = Study(
    source="synthetic", vocab_size=24, synthetic=SYNTHETIC, widths=(16,), depths=(1,),
    steps=(10, 20), seeded=(16, 1, 10, 0.1), extra_seeds=(1,), context=16, batch=8,
    warmup=5, measure_tokens=1000,
)  # fmt: skip


def test_held_out_nc4_against_numpy():
    """NC4 on a second set with the first set's class means, by hand."""
    rng = np.random.default_rng(0)
    K, d = 5, 6
    mu = 3 * rng.normal(size=(K, d))
    y, y2 = rng.integers(0, K, 300), rng.integers(0, K, 200)
    H, H2 = mu[y] + rng.normal(size=(300, d)), mu[y2] + 2 * rng.normal(size=(200, d))
    W = mu + rng.normal(size=(K, d))
    out = report(H, y, W, held_out=(H2, y2))
    means = np.stack([H[y == k].mean(0) for k in range(K)])
    nearest = np.argmin(((H2[:, None] - means[None]) ** 2).sum(-1), 1)
    agree = nearest == np.argmax(H2 @ W.T, 1)
    assert 0.3 < agree.mean() < 1  # a case where the test can tell
    assert out["metrics"]["nc4"] == pytest.approx(agree.mean(), abs=1e-12)
    per_class = np.mean([agree[y2 == k].mean() for k in range(K)])
    assert out["metrics"]["nc4_per_class"] == pytest.approx(per_class, abs=1e-12)
    assert out["data"]["nc4_held_out_rows"] == 200
    assert out["metrics"]["nc1"] == report(H, y, W)["metrics"]["nc1"]
    with pytest.raises(InputError, match="held_out"):
        report(H, y, W, held_out=(H2, y2 + K))


@pytest.fixture(scope="module")
def tiny_model():
    data = language_data("synthetic", 12, train_tokens=3000, validation_tokens=2000, seed=1)
    config = TransformerConfig(vocab_size=12, width=8, depth=1, heads=2, context=8, batch=4,
                               dtype="float64")  # fmt: skip
    model, _ = train(data.train, config, 20, seed=0)
    return model, data


def test_measure_against_direct_forward(tiny_model):
    """Class means, losses and NC4 of `measure` from a direct forward pass in numpy."""
    model, data = tiny_model
    found = measure(model, data.train, data.validation, 8)
    picked = windows(data.train, 8, None)
    H = np.asarray(jax.vmap(model)(jnp.asarray(picked[:, :-1]))[0]).reshape(-1, 8)
    y = picked[:, 1:].reshape(-1)
    W = np.asarray(model.unembedding.weight)
    logits = H @ W.T
    ce = scipy.special.logsumexp(logits, axis=1) - logits[np.arange(len(y)), y]
    assert found["train_loss"] == pytest.approx(ce.mean(), rel=1e-10)
    assert found["validation_loss"] == pytest.approx(evaluate(model, data.validation, 8), rel=1e-10)
    assert found["train_tokens"] == len(y)
    expected = report(H, y, W, num_classes=12)["metrics"]
    for name in ("nc1", "cdnv_lc", "nc2_equinorm", "gnc2", "unc3", "nc3"):
        assert found["metrics"][name] == pytest.approx(expected[name], rel=1e-8), name
    counts = np.bincount(y, minlength=12)
    means = np.stack([H[y == k].mean(0) if counts[k] else np.zeros(8) for k in range(12)]).T
    geometry = token_geometry(means, counts, W)
    assert found["geometry"] == pytest.approx(geometry, rel=1e-8)


def test_measure_refuses_a_context_longer_than_the_model(tiny_model):
    model, data = tiny_model
    with pytest.raises(InputError, match=r"context must be an integer in \[1, 8\]"):
        measure(model, data.train, data.validation, 9)


def test_token_geometry_by_hand():
    """Interference of an ETF is -1/(K-1); norms that rise with frequency correlate 1."""
    K = 5
    etf = np.eye(K) - 1 / K
    counts = np.array([5, 4, 3, 2, 1])
    means = etf * np.array([5, 4, 3, 2, 1.0])[None, :]
    out = token_geometry(means, counts, etf)
    assert out["classifier_interference"] == pytest.approx(-1 / (K - 1), abs=1e-12)
    assert out["classifier_norm_cv"] == pytest.approx(0, abs=1e-12)
    assert out["classifier_norm_frequency_spearman"] is None  # equal norms: undefined
    assert out["mean_norm_frequency_spearman"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "study.zarr"
    return run(TINY, out, progress=False), out


def test_store_layout_and_rebuilt_model(tiny_store):
    ds, out = tiny_store
    assert ds.sizes["model"] == 3 and bool(ds["done"].all())
    assert list(ds["steps"].values) == [10, 20, 10] and list(ds["seed"].values) == [0, 0, 1]
    assert ds["epochs"].values[1] == pytest.approx(20 * 8 * 16 / 20_000)
    plain = xr.open_zarr(out, consolidated=False)  # plain xarray reads it
    assert np.isnan(plain["history_loss"].values[0, 10:]).all()
    model = trained_model(ds, 1)
    data = TINY.data()
    again = measure(model, data.train, data.validation, 16, 1000)
    assert again["validation_loss"] == pytest.approx(float(ds["validation_loss"][1]), rel=1e-6)
    assert ds.attrs["bayes_loss"] == pytest.approx(data.bayes_loss)
    assert (ds["validation_loss"].values > ds.attrs["bayes_loss"]).all()


def test_resume_skips_done_and_refuses_other_settings(tiny_store, tmp_path):
    ds, out = tiny_store
    before = ds["parameters"].values.copy()
    again = run(TINY, out, resume=True, progress=False)
    np.testing.assert_array_equal(again["parameters"].values, before)
    import dataclasses

    other = dataclasses.replace(TINY, lr=1e-3)
    with pytest.raises(InputError, match="lr=0.003"):
        run(other, out, resume=True, progress=False)
    with pytest.raises(InputError, match="exists"):
        run(TINY, out, progress=False)
    np.testing.assert_array_equal(open_study(out)["parameters"].values, before)


def test_correlations_against_scipy(tiny_store):
    """The analysis on a store whose metrics are set by hand: readings follow the signs."""
    ds = tiny_store[0].copy(deep=True)
    n = 8
    ds = ds.isel(model=[0, 1, 2, 0, 1, 2, 0, 1]).assign_coords(model=np.arange(n))
    loss = np.linspace(2, 3, n)
    ds["validation_loss"] = ("model", loss)
    metrics = ds["metrics"].values.copy()
    names = list(ds["metric"].values)
    metrics[:, names.index("nc1")] = loss**2  # more collapse with lower loss: rho = +1
    metrics[:, names.index("nc4")] = loss  # NC4 rising with loss: collapse with higher loss
    metrics[:, names.index("gnc2")] = np.sin(7 * loss)  # unrelated
    ds["metrics"] = (("model", "metric"), metrics)
    found = analysis.correlations(ds)
    assert found["nc1"]["all"]["rho"] == pytest.approx(1.0)
    assert found["nc1"]["all"]["reading"] == "collapse goes with lower loss"
    assert found["nc4"]["all"]["reading"] == "collapse goes with higher loss"
    expected = scipy.stats.spearmanr(np.sin(7 * loss), loss)
    assert found["gnc2"]["all"]["rho"] == pytest.approx(expected.statistic)
    assert found["gnc2"]["all"]["p"] == pytest.approx(expected.pvalue)
    seeds = analysis.seeded_models(ds)
    assert list(seeds) == [0, 2, 3, 5, 6]
    json.dumps(experiment.compare(ds), allow_nan=False)


def test_classical_collapse_on_a_deterministic_language():
    """Balanced deterministic next tokens, V <= width: the classical setting, where the last
    hidden states collapse onto their next token's mean and NC4 holds on validation."""
    data = language_data(
        "synthetic", 16, deterministic=True, zipf_exponent=0.0, train_tokens=20_000,
        validation_tokens=4_000,
    )  # fmt: skip
    config = TransformerConfig(vocab_size=16, width=32, depth=1, heads=4, context=16, batch=16,
                               lr=1e-2, warmup=20, weight_decay=0.1)  # fmt: skip
    model, _ = train(data.train, config, 300, seed=0)
    found = measure(model, data.train, data.validation, 16, 4000)
    assert found["validation_loss"] < 0.05  # the Bayes loss is 0
    assert found["metrics"]["nc1"] < 0.05
    assert found["metrics"]["nc4"] == 1.0
    assert found["metrics"]["nc2_equinorm"] < 0.1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--source", "synthetic", "--vocab-size", "1"], "vocab_size"),
        (["--context", "9999"], "--context"),
        (["--widths", "30"], "width"),
        (["--zipf-exponent", "1"], "--source synthetic"),
        (["--seeded", "1,2"], "--seeded"),
        (["--source", "synthetic", "--order", "3"], "order"),
    ],
)
def test_cli_bad_input(tmp_path, capsys, args, message):
    code = cli.main(["language", "--quick", "--out", str(tmp_path / "s.zarr"), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "s.zarr").exists()


def test_cli_resume_with_other_settings_keeps_the_store(tmp_path, capsys):
    out = tmp_path / "s.zarr"
    base = ["language", "--source", "synthetic", "--vocab-size", "24", "--train-tokens", "20000",
            "--validation-tokens", "5000", "--widths", "16", "--depths", "1", "--steps", "20",
            "--seeded", "none", "--context", "16", "--batch", "8", "--measure-tokens", "2000",
            "--out", str(out), "--no-progress", "--json"]  # fmt: skip
    assert cli.main(base) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["models"][0]["done"] and result["data"]["source"] == "synthetic"
    saved = open_study(out)["parameters"].values.copy()
    assert cli.main([*base, "--resume", "--widths", "8"]) == 2
    assert "widths" in capsys.readouterr().err
    np.testing.assert_array_equal(open_study(out)["parameters"].values, saved)


@pytest.mark.slow
def test_quick_experiment_end_to_end(tmp_path):
    """`ufm experiment linguistic --quick`: four models on the docstring corpus."""
    out, figure, report_path = tmp_path / "q.zarr", tmp_path / "q.png", tmp_path / "q.json"
    args = ["experiment", "linguistic", "--quick", "--out", str(out), "--figure", str(figure),
            "--report", str(report_path), "--no-progress"]  # fmt: skip
    assert cli.main(args) == 0
    result = json.loads(report_path.read_text())
    assert len(result["models"]) == 4 and all(r["done"] for r in result["models"])
    assert result["data"]["source"] == "docstrings" and len(result["data"]["content_hash"]) > 12
    longer = [r["validation_loss"] for r in result["models"] if r["steps"] == 250]
    shorter = [r["validation_loss"] for r in result["models"] if r["steps"] == 100]
    assert max(longer) < min(shorter)  # training longer lowers validation loss here
    assert figure.stat().st_size > 10_000


def test_x64_is_on():
    assert jax.config.jax_enable_x64  # the tests' precision: metrics in float64


def test_ufm_class_stats_equal_the_expanded_samples():
    """The UFM's next-token class statistics from contexts equal those of the token stream
    they stand for, expanded sample by sample (every metric but NC4)."""
    from ufm.language.model_side import geometry

    rng = np.random.default_rng(0)
    K, M, d = 6, 5, 4
    counts = rng.integers(0, 6, (K, M))
    counts[:, 0] += 1
    counts[5] = 0  # a token that follows no context: left out, as an empty class is
    H, W = rng.normal(size=(d, M)), rng.normal(size=(K, d))
    y = np.concatenate([np.full(counts[k, m], k) for m in range(M) for k in range(K)])
    X = np.concatenate([np.tile(H[:, m], (counts[k, m], 1)) for m in range(M) for k in range(K)])
    expected = report(X, y, W, num_classes=K)["metrics"]
    found = geometry(H, W, counts.sum(0), counts / counts.sum(0), tokens=counts.sum())
    for name in ("nc1", "nc1_trace", "cdnv_lc", "nc2_equinorm", "gnc2", "nc3", "unc3"):
        assert found["metrics"][name] == pytest.approx(expected[name], rel=1e-9), name


def test_small_sample_p_values_are_exact():
    """n <= 8: the p-value enumerates every ordering, as scipy's exact permutation test does;
    a perfect rank correlation of 6 models has p = 2/720, not the t approximation's 0."""
    x = np.array([3, 1, 4, 1.5, 5, 9])
    y = np.array([2, 7, 1, 8, 2.5, 8.1])
    found = analysis.spearman(x, y)
    exact = scipy.stats.permutation_test(
        (x,), lambda a: scipy.stats.spearmanr(a, y).statistic, permutation_type="pairings",
        n_resamples=np.inf,
    )  # fmt: skip
    assert found["p"] == pytest.approx(exact.pvalue, rel=1e-9)
    assert analysis.spearman(np.arange(6.0), np.arange(6.0) ** 3)["p"] == pytest.approx(2 / 720)


@pytest.mark.slow
def test_quick_ufm_comparison_end_to_end(tmp_path):
    """`ufm experiment linguistic-ufm --quick`: two transformers on the synthetic language and
    the next-token UFM solved at their widths, both measured over next-token classes."""
    report_path = tmp_path / "u.json"
    args = ["experiment", "linguistic-ufm", "--quick", "--out", str(tmp_path / "u.zarr"),
            "--report", str(report_path), "--no-progress"]  # fmt: skip
    assert cli.main(args) == 0
    result = json.loads(report_path.read_text())
    assert [r["width"] for r in result["widths"]] == [16, 32]
    for row in result["widths"]:
        assert row["ufm"]["converged"], row["ufm"]
        assert row["validation_loss"] > result["bayes_loss"]  # never below the entropy rate
        assert row["ufm"]["loss"] > result["bayes_loss"]  # the UFM's data term is >= it too
        assert 0 < row["ufm"]["metrics"]["gnc2"] < 0.1 and 0 < row["trained"]["gnc2"] < 0.1
