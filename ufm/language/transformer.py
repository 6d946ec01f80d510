"""A small decoder-only causal transformer in equinox (issue 19, part 3).

    tokens[T] -> token embedding + learned position embedding
              -> [x + attention(LN(x)); x + MLP(LN(x))] x depth   (pre-LayerNorm blocks)
              -> final LayerNorm = hidden[T, width]
              -> logits = hidden @ W.T                              (unembedding W, V x width)

`hidden` (after the final LayerNorm, before W) are the last-layer features h that the
neural-collapse metrics read; the untied, bias-free unembedding W plays the classifier. The
attention is causal: position t attends to positions <= t only, and masked scores are set to
the dtype's most negative number, whose softmax weight is exactly 0, so a later token changes
no earlier hidden state or logit, bit for bit. The MLP is width -> 4 width -> width with GELU.

Initialization follows GPT-2: every weight N(0, 0.02^2), the two residual projections of each
block scaled by 1/sqrt(2 depth), biases 0, LayerNorm scale 1 and shift 0.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

INIT_STD = 0.02
LAYERNORM_EPS = 1e-5


def _normal(key, shape, std, dtype):
    return std * jax.random.normal(key, shape, dtype=dtype)


class Dense(eqx.Module):
    """x @ weight.T (+ bias), weight of shape (out, in)."""

    weight: Float[Array, "out inp"]
    bias: Float[Array, " out"] | None

    def __call__(self, x):
        out = x @ self.weight.T
        return out if self.bias is None else out + self.bias[None, :]


def _dense(key, inp, out, dtype, std=INIT_STD, bias=True):
    weight = _normal(key, (out, inp), std, dtype)
    return Dense(weight, jnp.zeros((out,), dtype) if bias else None)


class LayerNorm(eqx.Module):
    """Normalize each row over its last axis, then scale and shift (per feature)."""

    scale: Float[Array, " width"]
    shift: Float[Array, " width"]

    def __call__(self, x):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        normalized = (x - mean) / jnp.sqrt(var + LAYERNORM_EPS)
        return self.scale[None, :] * normalized + self.shift[None, :]


def _layernorm(width, dtype):
    return LayerNorm(jnp.ones((width,), dtype), jnp.zeros((width,), dtype))


class Block(eqx.Module):
    """One pre-LayerNorm block: causal multi-head self-attention, then a GELU MLP."""

    attention_norm: LayerNorm
    qkv: Dense
    attention_out: Dense
    mlp_norm: LayerNorm
    mlp_in: Dense
    mlp_out: Dense
    heads: int = eqx.field(static=True)

    def attention(self, x: Float[Array, "T width"]) -> Float[Array, "T width"]:
        T, width = x.shape
        d = width // self.heads
        q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
        q, k, v = (a.reshape(T, self.heads, d).transpose(1, 0, 2) for a in (q, k, v))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)  # (heads, T, T)
        causal = jnp.tril(jnp.ones((T, T), dtype=bool))
        scores = jnp.where(causal, scores, jnp.finfo(x.dtype).min)
        mixed = jax.nn.softmax(scores, axis=-1) @ v  # (heads, T, d)
        return self.attention_out(mixed.transpose(1, 0, 2).reshape(T, width))

    def __call__(self, x: Float[Array, "T width"]) -> Float[Array, "T width"]:
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.mlp_norm(x))))


def _block(key, width, heads, depth, dtype):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    residual_std = INIT_STD / math.sqrt(2 * depth)
    return Block(
        attention_norm=_layernorm(width, dtype),
        qkv=_dense(k1, width, 3 * width, dtype),
        attention_out=_dense(k2, width, width, dtype, std=residual_std),
        mlp_norm=_layernorm(width, dtype),
        mlp_in=_dense(k3, width, 4 * width, dtype),
        mlp_out=_dense(k4, 4 * width, width, dtype, std=residual_std),
        heads=heads,
    )


class Transformer(eqx.Module):
    """Decoder-only causal transformer; `__call__(tokens[T])` -> (hidden[T, width],
    logits[T, V]) for T <= context. Map over a batch with `jax.vmap`."""

    token_embedding: Float[Array, "V width"]
    position_embedding: Float[Array, "context width"]
    blocks: tuple[Block, ...]
    final_norm: LayerNorm
    unembedding: Dense  # the classifier W (V x width), no bias

    def __init__(
        self,
        vocab_size: int,
        width: int,
        depth: int,
        heads: int,
        context: int,
        *,
        key: PRNGKeyArray,
        dtype=jnp.float32,
    ):
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        keys = jax.random.split(key, depth + 3)
        self.token_embedding = _normal(keys[0], (vocab_size, width), INIT_STD, dtype)
        self.position_embedding = _normal(keys[1], (context, width), INIT_STD, dtype)
        self.blocks = tuple(_block(k, width, heads, depth, dtype) for k in keys[3:])
        self.final_norm = _layernorm(width, dtype)
        self.unembedding = _dense(keys[2], width, vocab_size, dtype, bias=False)

    @property
    def vocab_size(self) -> int:
        return self.token_embedding.shape[0]

    @property
    def context(self) -> int:
        return self.position_embedding.shape[0]

    def __call__(self, tokens: Int[Array, " T"]) -> tuple[Float[Array, "T width"], Array]:
        x = self.token_embedding[tokens] + self.position_embedding[: tokens.shape[0]]
        for block in self.blocks:
            x = block(x)
        hidden = self.final_norm(x)
        return hidden, self.unembedding(hidden)


def decay_mask(model: Transformer):
    """The pytree of bools (the structure of `model`'s arrays) saying which parameters weight
    decay acts on: the matrices of the Dense layers (attention, MLP and the unembedding W);
    not biases, LayerNorm scales and shifts, or the token and position embeddings. It reads
    only the structure, so it also works on the traced parameters optax passes it."""

    def mark(node):
        if isinstance(node, Dense):
            return Dense(True, None if node.bias is None else False)
        return False

    params = eqx.filter(model, eqx.is_inexact_array)
    return jax.tree_util.tree_map(mark, params, is_leaf=lambda node: isinstance(node, Dense))
