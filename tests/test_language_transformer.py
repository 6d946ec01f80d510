"""The small causal transformer and its training loop (issue 19, part 3): causality, shapes,
the loss against an independent numpy cross-entropy, the weight-decay mask, input errors,
and training that reaches the synthetic language's exact entropy rate (never below it)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ufm.errors import InputError
from ufm.language.synthetic import synthetic_language
from ufm.language.train import (
    TransformerConfig,
    evaluate,
    next_token_loss,
    optimizer,
    optimizer_schedule,
    train,
)
from ufm.language.transformer import Transformer, decay_mask

V, WIDTH, DEPTH, HEADS, CONTEXT = 11, 16, 2, 4, 9
call = eqx.filter_jit(lambda model, tokens: model(tokens))


@pytest.fixture(scope="module")
def model64():
    return Transformer(
        V, WIDTH, DEPTH, HEADS, CONTEXT, key=jax.random.PRNGKey(3), dtype=jnp.float64
    )


def _log_softmax_numpy(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_shapes_and_dtypes(model64):
    tokens = jnp.arange(CONTEXT, dtype=jnp.int32) % V
    model32 = Transformer(V, WIDTH, DEPTH, HEADS, CONTEXT, key=jax.random.PRNGKey(0))
    for model, dtype in ((model32, jnp.float32), (model64, jnp.float64)):
        hidden, logits = call(model, tokens)
        assert hidden.shape == (CONTEXT, WIDTH) and logits.shape == (CONTEXT, V)
        assert hidden.dtype == logits.dtype == dtype
        assert model.vocab_size == V and model.context == CONTEXT
        # hidden is the final LayerNorm's output (zero mean over features at initialization,
        # where its shift is 0) and the logits are W hidden, with no bias
        np.testing.assert_allclose(np.asarray(hidden).mean(axis=1), 0.0, atol=1e-5)
        W = np.asarray(model.unembedding.weight)
        assert W.shape == (V, WIDTH) and model.unembedding.bias is None
        np.testing.assert_allclose(logits, np.asarray(hidden) @ W.T, rtol=1e-5, atol=1e-6)


def test_a_later_token_changes_nothing_before_it_exactly(model64):
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, V, CONTEXT), dtype=jnp.int32)
    hidden, logits = call(model64, tokens)
    for t in (0, 4, CONTEXT - 1):
        changed = tokens.at[t].set((tokens[t] + 1) % V)
        hidden2, logits2 = call(model64, changed)
        np.testing.assert_array_equal(hidden2[:t], hidden[:t])
        np.testing.assert_array_equal(logits2[:t], logits[:t])
        assert not np.allclose(logits2[t], logits[t])  # and position t itself does change


def test_loss_is_an_independent_numpy_cross_entropy(model64):
    windows = np.random.default_rng(1).integers(0, V, (5, CONTEXT + 1)).astype(np.int32)
    loss = float(eqx.filter_jit(next_token_loss)(model64, jnp.asarray(windows)))
    logits = np.stack([np.asarray(call(model64, jnp.asarray(w[:-1]))[1]) for w in windows])
    logp = _log_softmax_numpy(logits)
    targets = windows[:, 1:]
    expected = -np.mean(np.take_along_axis(logp, targets[..., None], axis=-1))
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    # evaluate over non-overlapping windows of a stream: the same cross-entropy, by hand
    stream = np.random.default_rng(2).integers(0, V, 4 * CONTEXT + 3).astype(np.int32)
    by_hand = []
    for i in range((len(stream) - 1) // CONTEXT):
        window = stream[i * CONTEXT : (i + 1) * CONTEXT + 1]
        logp = _log_softmax_numpy(np.asarray(call(model64, jnp.asarray(window[:-1]))[1]))
        by_hand += list(-logp[np.arange(CONTEXT), window[1:]])
    assert len(by_hand) == 4 * CONTEXT
    np.testing.assert_allclose(evaluate(model64, stream, CONTEXT), np.mean(by_hand), rtol=1e-12)


def test_weight_decay_acts_on_dense_matrices_only():
    model = Transformer(V, WIDTH, DEPTH, HEADS, CONTEXT, key=jax.random.PRNGKey(0))
    mask = decay_mask(model)
    assert mask.token_embedding is False and mask.position_embedding is False
    assert mask.final_norm.scale is False and mask.final_norm.shift is False
    assert mask.unembedding.weight is True
    for block in mask.blocks:
        for dense in (block.qkv, block.attention_out, block.mlp_in, block.mlp_out):
            assert dense.weight is True and dense.bias is False
        assert block.attention_norm.scale is False and block.mlp_norm.shift is False
    # one AdamW update with zero gradients moves exactly the decayed leaves, by lr * wd * w
    config = TransformerConfig(V, WIDTH, DEPTH, HEADS, CONTEXT, lr=0.1, warmup=0, weight_decay=0.5)
    optim = optimizer(config, steps=10)
    params = eqx.filter(model, eqx.is_inexact_array)
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = eqx.filter_jit(optim.update)(zero, optim.init(params), params)
    lr0 = float(optimizer_schedule(config, 10)(0))
    np.testing.assert_allclose(lr0, 0.1)
    flat_updates = jax.tree_util.tree_leaves(updates)
    flat_params = jax.tree_util.tree_leaves(params)
    flat_mask = jax.tree_util.tree_leaves(mask)
    assert len(flat_updates) == len(flat_params) == len(flat_mask)
    for u, p, decayed in zip(flat_updates, flat_params, flat_mask, strict=True):
        expected = -lr0 * 0.5 * np.asarray(p) if decayed else np.zeros(p.shape)
        np.testing.assert_allclose(u, expected, rtol=1e-5, atol=1e-12)


def test_schedule_warms_up_linearly_then_decays_to_a_tenth():
    config = TransformerConfig(V, lr=2.0, warmup=10)
    schedule = optimizer_schedule(config, 110)
    np.testing.assert_allclose([float(schedule(s)) for s in (0, 5, 10)], [0.0, 1.0, 2.0])
    np.testing.assert_allclose(float(schedule(60)), 0.2 + 1.8 * 0.5, rtol=1e-6)  # halfway
    np.testing.assert_allclose(float(schedule(110)), 0.2, rtol=1e-6)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"width": 30, "heads": 4}, "width must be divisible by heads"),
        ({"context": 1}, "context must be an integer >= 2"),
        ({"vocab_size": 1}, "vocab_size must be an integer >= 2"),
        ({"depth": 0}, "depth must be an integer >= 1"),
        ({"batch": 2.0}, "batch must be an integer >= 1"),
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"weight_decay": -1.0}, "weight_decay must be a finite number >= 0"),
        ({"warmup": -1}, "warmup must be an integer >= 0"),
        ({"dtype": "float16"}, "dtype must be one of"),
    ],
)
def test_bad_configs_raise_input_errors_naming_the_parameter(changes, named):
    with pytest.raises(InputError, match=named):
        TransformerConfig(**({"vocab_size": V} | changes))


def test_bad_streams_raise_input_errors(model64):
    config = TransformerConfig(V, width=8, depth=1, heads=2, context=4, batch=2)
    with pytest.raises(InputError, match=r"token ids must be in \[0, 10\]"):
        train(np.array([0, 1, 2, V, 3, 4], np.int32), config, steps=1)
    with pytest.raises(InputError, match="at least context \\+ 1 = 5 tokens"):
        train(np.array([0, 1, 2], np.int32), config, steps=1)
    with pytest.raises(InputError, match="1-D integer array"):
        train(np.zeros((2, 8), np.int32), config, steps=1)
    with pytest.raises(InputError, match="steps must be an integer >= 1"):
        train(np.arange(8, dtype=np.int32), config, steps=0)
    with pytest.raises(InputError, match="context must be <= the model's context"):
        evaluate(model64, np.arange(40, dtype=np.int32) % V, CONTEXT + 1)


@pytest.mark.slow
def test_training_runs_in_float64():
    float64 = TransformerConfig(V, width=8, depth=1, heads=2, context=4, batch=2, dtype="float64")
    model, history = train(np.arange(40, dtype=np.int32) % V, float64, steps=2)
    assert model.unembedding.weight.dtype == jnp.float64 and np.all(np.isfinite(history["loss"]))
    np.testing.assert_allclose(history["loss"][0], np.log(V), atol=0.05)  # ~uniform at init


def _fit(language, steps=200):
    """A width-32, depth-1 model trained on one long sample; its validation loss, and the
    Bayes-optimal loss of the same validation tokens (-log P of each transition)."""
    stream = language.sample(1, 20_000, seed=1).ravel()
    validation = language.sample(1, 10_000, seed=2).ravel()
    config = TransformerConfig(16, width=32, depth=1, heads=2, context=32, batch=32, warmup=20)
    model, history = train(stream, config, steps=steps, seed=0)
    assert history["loss"].shape == history["lr"].shape == (steps,)
    bayes = -np.mean(np.log(language.transition_matrix()[validation[:-1], validation[1:]]))
    return evaluate(model, validation, 32), bayes, history


def test_training_learns_the_deterministic_language_to_zero_loss():
    language = synthetic_language(16, zipf_exponent=0, deterministic=True)
    assert language.entropy_rate == 0.0
    loss, bayes, history = _fit(language)
    assert bayes == 0.0
    assert history["loss"][0] > 2.0  # starts near log 16 = 2.77
    assert loss < 0.1


def test_training_ends_just_above_the_entropy_rate_of_an_ambiguous_language():
    language = synthetic_language(16, zipf_exponent=1.0, seed=0)
    loss, bayes, _ = _fit(language)
    assert abs(bayes - language.entropy_rate) < 0.03  # the sample's own optimum vs. h
    # never below the Bayes loss of the very same tokens (beyond noise: that would be a bug),
    # and within a small margin above it
    assert bayes - 0.005 < loss < bayes + 0.05, (loss, bayes)
