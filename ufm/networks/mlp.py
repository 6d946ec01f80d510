"""The network: an MLP backbone (ReLU, optional batch norm), M bias-free linear layers
(Dang et al.'s appended stack) and a linear classifier, in equinox.

    x -> [Linear -> (BatchNorm) -> ReLU] x L -> [bias-free Linear] x M -> W h + b

`features` returns every layer's output: ``hidden1 .. hiddenL`` (post-ReLU), then
``linear1 .. linearM``; the last is the last-layer features h that the classifier reads.
An optional second head W2 h + b2 (`head2`, dual-head distillation) reads the same h; the
logits `features` returns are always the first head's.
The backbone's output ``hiddenL`` is the UFM's free features H_1 (feature decay acts on it).
Batch norm normalizes with the statistics of a reference batch: the batch itself while
training, the whole training set when features are recorded (for test data too).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

EPS = 1e-5  # batch norm's variance floor


@jax.custom_vjp
def _linear(h, weight):
    """h @ weight.T, with the weight gradient computed as g.T @ h on a transposed copy:
    XLA's CPU backend contracts the batch axis of (N, out) x (N, in) about 3x slower than
    this (benchmarks/bench_train.py)."""
    return h @ weight.T


def _linear_forward(h, weight):
    return h @ weight.T, (h, weight)


def _linear_backward(saved, g):
    h, weight = saved
    return g @ weight, jax.lax.optimization_barrier(g.T) @ h


_linear.defvjp(_linear_forward, _linear_backward)


class Dense(eqx.Module):
    weight: Float[Array, "out inp"]
    bias: Float[Array, " out"] | None

    def __call__(self, h):
        out = _linear(h, self.weight)
        return out if self.bias is None else out + self.bias[None, :]


class BatchNorm(eqx.Module):
    scale: Float[Array, " units"]
    shift: Float[Array, " units"]

    def __call__(self, a, reference):
        mean, var = reference.mean(axis=0)[None, :], reference.var(axis=0)[None, :]
        return self.scale[None, :] * (a - mean) / jnp.sqrt(var + EPS) + self.shift[None, :]


class MLP(eqx.Module):
    hidden: tuple[Dense, ...]
    norms: tuple[BatchNorm, ...] | None
    linear: tuple[Float[Array, "d d"], ...]
    classifier: Dense
    head2: Dense | None = None

    def features(self, x, reference=None) -> tuple[list[Array], Array]:
        """Per-layer features (each (B, width)) and logits (B, K) of inputs x (B, p)."""
        out, h, r = [], x, x if reference is None else reference
        for i, layer in enumerate(self.hidden):
            a = layer(h)
            if self.norms is not None:
                ar = a if reference is None else layer(r)
                a, ar = self.norms[i](a, ar), self.norms[i](ar, ar)
                r = jax.nn.relu(ar)
            h = jax.nn.relu(a)
            out.append(h)
        for weight in self.linear:
            h = _linear(h, weight)
            out.append(h)
        return out, self.classifier(h)

    def weights(self) -> list[Array]:
        """The matrices weight decay acts on (not biases, not batch-norm parameters)."""
        heads = [self.classifier] if self.head2 is None else [self.classifier, self.head2]
        return (
            [layer.weight for layer in self.hidden] + list(self.linear) + [h.weight for h in heads]
        )

    def parameters(self) -> list[Array]:
        """Every trainable array: weights, biases and batch-norm scales and shifts."""
        return jax.tree_util.tree_leaves(eqx.filter(self, eqx.is_inexact_array))


def layer_names(hidden: int, depth: int) -> list[str]:
    return [f"hidden{i}" for i in range(1, hidden + 1)] + [
        f"linear{m}" for m in range(1, depth + 1)
    ]


def init(
    key: PRNGKeyArray,
    inputs: int,
    widths,
    depth: int,
    K: int,
    batch_norm: bool,
    bias: bool,
    heads: int = 1,
) -> MLP:
    """He-normal ReLU layers, 1/fan-in variance for the linear stack and the classifier;
    zero biases, unit batch-norm scales. heads=2 adds a second head like the classifier,
    drawn from a key folded out of the classifier's (the other layers' draws are those of a
    one-head network)."""
    keys = jax.random.split(key, len(widths) + depth + 1)
    dims = [inputs, *widths]
    normal = lambda k, shape, gain: jax.random.normal(k, shape) * jnp.sqrt(gain / shape[1])
    hidden = tuple(
        Dense(normal(keys[i], (dims[i + 1], dims[i]), 2.0), jnp.zeros(dims[i + 1]))
        for i in range(len(widths))
    )
    norms = tuple(BatchNorm(jnp.ones(w), jnp.zeros(w)) for w in widths) if batch_norm else None
    d = widths[-1]
    linear = tuple(normal(keys[len(widths) + m], (d, d), 1.0) for m in range(depth))
    classifier = Dense(normal(keys[-1], (K, d), 1.0), jnp.zeros(K) if bias else None)
    head2 = None
    if heads == 2:
        head2 = Dense(
            normal(jax.random.fold_in(keys[-1], 2), (K, d), 1.0), jnp.zeros(K) if bias else None
        )
    return MLP(hidden, norms, linear, classifier, head2)
