"""Neural-collapse measurements of a causal language model, as Wu & Papyan make them.

The features are the last hidden states (after the final LayerNorm) at every position of
non-overlapping windows of a stream; a position's class is the token that follows it (the
vocabulary is the set of classes, imbalanced and ambiguous); the classifier is the
unembedding W (V x width, no bias). Class statistics stream through
`ufm.metrics.Accumulator` over the training tokens; NC4 is measured on the validation tokens
against the training class means (``held_out``); the losses are the mean next-token
cross-entropies of the same tokens.

`measure(model, train, validation, context, max_tokens)` returns the metrics and losses as
plain floats (strict-JSON-able: non-finite values become None), the token counts read, and
the token-mean geometry that the next-token UFM predicts (`token_geometry`).
"""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ufm.errors import InputError
from ufm.language.analysis import spearman
from ufm.language.train import check_stream, windows
from ufm.metrics import Accumulator

WINDOWS_PER_BATCH = 64


@eqx.filter_jit
def _forward(model, windows):
    """(hidden (B T, width) float64, next tokens (B T,), summed CE) of windows (B, T + 1)."""
    hidden, logits = jax.vmap(model)(windows[:, :-1])
    logits = logits.astype(jnp.float64)
    targets = windows[:, 1:]
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    loss = jnp.sum(jax.nn.logsumexp(logits, axis=-1) - picked)
    return hidden.reshape(-1, hidden.shape[-1]).astype(jnp.float64), targets.reshape(-1), loss


def batches(model, stream, context: int, max_tokens: int | None, totals: dict):
    """Yield (hidden rows, next tokens) of the windows; add the loss and token count to
    `totals` as they pass."""
    picked = windows(stream, context, max_tokens)
    for start in range(0, len(picked), WINDOWS_PER_BATCH):
        chunk = jnp.asarray(picked[start : start + WINDOWS_PER_BATCH])
        hidden, targets, loss = _forward(model, chunk)
        totals["loss"] = totals.get("loss", 0.0) + float(loss)
        totals["tokens"] = totals.get("tokens", 0) + int(targets.size)
        yield np.asarray(hidden), np.asarray(targets)


def measure(
    model, train, validation, context: int, max_tokens: int | None = None
) -> dict[str, Any]:
    """Every NC metric of `model`'s last hidden states over next-token classes (module
    docstring); at most `max_tokens` tokens of each stream (None: all)."""
    V = model.vocab_size
    if not isinstance(context, int) or not 1 <= context <= model.context:
        raise InputError(f"context must be an integer in [1, {model.context}] (the model's), "
                         f"got {context!r}")  # fmt: skip
    train = check_stream(train, V, context, "train")
    validation = check_stream(validation, V, context, "validation")
    width = model.token_embedding.shape[1]
    acc = Accumulator(V, width)
    seen: dict[str, Any] = {}
    for X, y in batches(model, train, context, max_tokens, seen):
        acc.update(X, y)
    held: dict[str, Any] = {}
    W = np.asarray(model.unembedding.weight, dtype=np.float64)

    def held_out():
        held.clear()
        return batches(model, validation, context, max_tokens, held)

    report = acc.report(W, samples=held_out, held_out=True)
    metrics = {k: finite_or_none(v) for k, v in report["metrics"].items()}
    counts = np.asarray(acc.stats.counts)
    means = np.asarray(acc.stats.means)
    return {
        "metrics": metrics,
        "train_loss": seen["loss"] / seen["tokens"],
        "validation_loss": held["loss"] / held["tokens"],
        "train_tokens": seen["tokens"],
        "validation_tokens": held["tokens"],
        "classes_seen": int(np.sum(counts > 0)),
        "geometry": token_geometry(means, counts, W),
        "notes": report["notes"],
    }


def finite_or_none(value) -> float | None:
    """The value as a float, None where it is nan or inf (strict JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


def token_geometry(means: np.ndarray, counts: np.ndarray, W: np.ndarray) -> dict[str, Any]:
    """The token-mean geometry the next-token UFM is compared on, over the classes with
    samples: means (width, V) and counts per class, classifier W (V, width).

    mean_norm_frequency_spearman: rank correlation of ||mu_k - mu_G|| with the class count;
    classifier_norm_frequency_spearman: the same for ||w_k||; interference: mean over pairs
    of cos(w_k, w_k'); mean_interference: the same for the centred means; and the
    coefficients of variation of both norms."""
    alive = counts > 0
    n = counts[alive]
    M = means[:, alive]
    centred = M - (M @ n / n.sum())[:, None]
    mean_norms = np.linalg.norm(centred, axis=0)
    Wa = W[alive]
    w_norms = np.linalg.norm(Wa, axis=1)
    return {
        "mean_norm_frequency_spearman": spearman(mean_norms, n)["rho"],
        "classifier_norm_frequency_spearman": spearman(w_norms, n)["rho"],
        "classifier_interference": _mean_cosine(Wa),
        "mean_interference": _mean_cosine(centred.T),
        "mean_norm_cv": finite_or_none(np.std(mean_norms) / np.mean(mean_norms)),
        "classifier_norm_cv": finite_or_none(np.std(w_norms) / np.mean(w_norms)),
    }


def _mean_cosine(rows: np.ndarray) -> float | None:
    """Mean over distinct pairs of the cosine of two rows (zero rows left out)."""
    norms = np.linalg.norm(rows, axis=1)
    unit = rows[norms > 0] / norms[norms > 0, None]
    k = unit.shape[0]
    if k < 2:
        return None
    total = np.sum(unit.sum(axis=0) ** 2) - k  # sum over ordered pairs i != j
    return finite_or_none(total / (k * (k - 1)))
