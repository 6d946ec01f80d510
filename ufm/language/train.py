"""Training a small causal transformer on a token stream (issue 19, part 3).

`train(stream, config, steps, seed)` draws `config.batch` windows of `config.context + 1`
consecutive tokens at uniformly random starts in the 1-D stream at every step (inside the
jitted step, from a key split off `seed`), and minimizes the mean next-token cross-entropy
(nats per predicted token: every window predicts its tokens 1 .. context from the ones
before) with optax AdamW: learning rate rising linearly from 0 to `lr` over `warmup` steps,
then cosine decay that would reach `lr / 10` at step `steps` (one past the last); decoupled
weight decay `weight_decay` on the Dense matrices only (`transformer.decay_mask`: not biases,
LayerNorm or the embeddings).

`evaluate(model, stream, context)`: the same loss over non-overlapping windows (window i
predicts tokens i context + 1 .. (i + 1) context from i context onwards, so every token
after the first is predicted once, up to a tail shorter than a window).
"""

import functools
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ufm.errors import InputError
from ufm.language.transformer import Transformer, decay_mask

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
FINAL_LR_FRACTION = 0.1
EVAL_CHUNK = 64  # windows per evaluation batch


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture and optimizer: `vocab_size` V tokens, `width` features (divisible by
    `heads`), `depth` blocks, `context` tokens per window, `batch` windows per step, peak
    learning rate `lr` after `warmup` steps, AdamW `weight_decay`, `dtype` of the weights."""

    vocab_size: int
    width: int = 64
    depth: int = 2
    heads: int = 4
    context: int = 64
    batch: int = 32
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.0
    dtype: str = "float32"

    def __post_init__(self):
        _check_int("vocab_size", self.vocab_size, 2)
        for name in ("width", "depth", "heads", "batch"):
            _check_int(name, getattr(self, name), 1)
        _check_int("context", self.context, 2)
        _check_int("warmup", self.warmup, 0)
        if self.width % self.heads:
            raise InputError(
                f"width must be divisible by heads (heads={self.heads}), got width={self.width}"
            )
        if not _is_real(self.lr) or not 0 < self.lr < np.inf:
            raise InputError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not _is_real(self.weight_decay) or not 0 <= self.weight_decay < np.inf:
            raise InputError(
                f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}"
            )
        if self.dtype not in DTYPES:
            raise InputError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")


def _is_real(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_int(name, value, lowest):
    if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
        raise InputError(f"{name} must be an integer >= {lowest}, got {value!r}")


def check_stream(stream, vocab_size: int, context: int, name: str = "stream") -> np.ndarray:
    """The stream as a 1-D int32 array, or an InputError: it must hold at least one window of
    `context` + 1 tokens, all ids in [0, vocab_size)."""
    array = np.asarray(stream)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name} must be a 1-D integer array, got {array.dtype} {array.shape}")
    if len(array) < context + 1:
        raise InputError(
            f"{name} must hold at least context + 1 = {context + 1} tokens, got {len(array)}"
        )
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= vocab_size:
        raise InputError(
            f"{name} token ids must be in [0, {vocab_size - 1}] (vocab_size={vocab_size}), "
            f"got ids from {low} to {high}"
        )
    return array.astype(np.int32)


def next_token_loss(model: Transformer, windows):
    """Mean cross-entropy of tokens 1 .. L-1 of each window given the ones before (nats)."""
    _, logits = jax.vmap(model)(windows[:, :-1])
    targets = windows[:, 1:]
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - picked)


def optimizer(config: TransformerConfig, steps: int):
    """AdamW with linear warm-up and cosine decay, decay on the Dense matrices only."""
    schedule = optimizer_schedule(config, steps)
    adamw = optax.adamw(schedule, weight_decay=config.weight_decay, mask=decay_mask)
    return _with_standard_promotion(adamw)


def _with_standard_promotion(inner):
    """`inner` run under JAX's standard dtype promotion: optax's Adam bias correction raises
    a float to an int32 count, which strict promotion (the tests' setting) refuses."""

    def init(params):
        with jax.numpy_dtype_promotion("standard"):
            return inner.init(params)

    def update(updates, state, params=None):
        with jax.numpy_dtype_promotion("standard"):
            return inner.update(updates, state, params)

    return optax.GradientTransformation(init, update)


def _draw_windows(key, stream, batch: int, length: int):
    starts = jax.random.randint(key, (batch,), 0, stream.shape[0] - length + 1)
    return jax.vmap(lambda s: jax.lax.dynamic_slice(stream, (s,), (length,)))(starts)


def make_step(optim, batch: int, context: int):
    """The jitted update: (model, opt_state, key, stream) -> (model, opt_state, loss)."""

    @eqx.filter_jit
    def step(model, opt_state, key, stream):
        windows = _draw_windows(key, stream, batch, context + 1)
        loss, grads = eqx.filter_value_and_grad(next_token_loss)(model, windows)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optim.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state, loss

    return step


@functools.lru_cache(maxsize=8)
def _compiled(config: TransformerConfig, steps: int):
    """The optimizer and its jitted step, kept so that training again with the same config
    and step count reuses the compiled step."""
    optim = optimizer(config, steps)
    return optim, make_step(optim, config.batch, config.context)


def train(stream, config: TransformerConfig, steps: int, seed: int = 0, progress=None):
    """Train a fresh `Transformer` for `steps` AdamW steps on random windows of `stream`.

    Returns (model, history): history["loss"][s] is the training loss of the batch of step s
    (before its update), history["lr"][s] its learning rate. `progress(step, loss)`, if
    given, is called after every step (it synchronizes, so it slows training a little)."""
    _check_int("steps", steps, 1)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        raise InputError(
            "dtype='float64' needs jax.config.update('jax_enable_x64', True) first; "
            "without it use dtype='float32'"
        )
    tokens = jnp.asarray(check_stream(stream, config.vocab_size, config.context))
    init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
    model = Transformer(
        config.vocab_size, config.width, config.depth, config.heads, config.context,
        key=init_key, dtype=DTYPES[config.dtype],
    )  # fmt: skip
    optim, step = _compiled(config, steps)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
    losses = []
    for s, key in enumerate(jax.random.split(data_key, steps)):
        model, opt_state, loss = step(model, opt_state, key, tokens)
        losses.append(loss)
        if progress is not None:
            progress(s, float(loss))
    schedule = optimizer_schedule(config, steps)
    history = {
        "loss": np.asarray(jnp.stack(losses), dtype=np.float64),
        "lr": np.asarray(schedule(jnp.arange(steps)), dtype=np.float64),
    }
    return model, history


def optimizer_schedule(config: TransformerConfig, steps: int):
    """The learning rate of step s (0-based) that `optimizer` uses, in `config.dtype`:
    lr s / warmup while s < warmup, then lr (f + (1 - f) (1 + cos(pi p)) / 2) with p the
    fraction of the remaining steps done (0 .. 1) and f = FINAL_LR_FRACTION."""
    dtype = DTYPES[config.dtype]
    peak, warmup, final = config.lr, min(config.warmup, steps), FINAL_LR_FRACTION

    def schedule(count):
        count = jnp.asarray(count).astype(dtype)
        rising = peak * count / max(warmup, 1)
        done = jnp.clip((count - warmup) / max(steps - warmup, 1), 0.0, 1.0)
        falling = peak * (final + (1 - final) * 0.5 * (1 + jnp.cos(jnp.pi * done)))
        return jnp.where(count < warmup, rising, falling)

    return schedule


@eqx.filter_jit
def _summed_loss(model, windows):
    return next_token_loss(model, windows) * windows[:, 1:].size


def windows(stream: np.ndarray, context: int, max_tokens: int | None = None) -> np.ndarray:
    """The non-overlapping windows of context + 1 tokens of `stream` (window i starts at
    i context, so every token after the first is predicted once, up to a shorter tail); with
    `max_tokens`, at most max_tokens / context of them, evenly spread over the stream."""
    count = (len(stream) - 1) // context
    chosen = np.arange(count)
    if max_tokens is not None and count * context > max_tokens:
        keep = max(1, max_tokens // context)
        chosen = np.unique(np.linspace(0, count - 1, keep).round().astype(int))
    index = chosen[:, None] * context + np.arange(context + 1)[None, :]
    return stream[index]


def evaluate(model: Transformer, stream, context: int) -> float:
    """Mean next-token loss (nats) over the non-overlapping windows of `stream` (module
    docstring), evaluated EVAL_CHUNK windows at a time."""
    _check_int("context", context, 1)
    if context > model.context:
        raise InputError(f"context must be <= the model's context {model.context}, got {context}")
    picked = windows(check_stream(stream, model.vocab_size, context), context)
    total = 0.0
    for start in range(0, len(picked), EVAL_CHUNK):
        total += float(_summed_loss(model, jnp.asarray(picked[start : start + EVAL_CHUNK])))
    return total / (len(picked) * context)
