"""Class statistics: everything NC1-NC3 need from the features, in O(K d + d^2) memory.

`ClassStats` holds, for K classes in d dimensions (float64 when x64 is on),

    counts  (K,)    n_k
    means   (d, K)  mu_k (columns; 0 for an empty class when accumulated, nan when direct)
    within  (d, d)  sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T   (N Sigma_W, not divided)
    sq_dev  (K,)    sum_{i: y_i = k} ||h_i - mu_k||^2          (n_k sigma_k^2, ddof 0)

`class_stats` computes them from all samples at once (two passes, one-hot sums: small K).
`update` merges one batch of rows into running statistics (Chan, Golub & LeVeque 1979,
pairwise update of means and centred second moments), touching only the classes present
in the batch, so N in the millions and K = 50,000 stream in fixed memory. Neither ever forms
raw second moments sum h h^T, whose difference with n mu mu^T cancels catastrophically
near collapse.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike


class ClassStats(NamedTuple):
    counts: Array  # (K,)
    means: Array  # (d, K)
    within: Array  # (d, d)
    sq_dev: Array  # (K,)

    @property
    def num_samples(self) -> Array:
        return jnp.sum(self.counts)

    def global_mean(self, weighted: bool = True) -> Array:
        """mu_G (d,): (1/N) sum_i h_i if `weighted` (Papyan), else (1/K) sum_k mu_k."""
        if weighted:
            return self.means @ self.counts / self.num_samples
        return jnp.mean(self.means, axis=1)

    def centred_means(self, weighted: bool = True) -> Array:
        """Mtilde = Hbar - mu_G 1^T, shape (d, K)."""
        return self.means - self.global_mean(weighted)[:, None]

    def variances(self, ddof: int = 0) -> Array:
        """sigma_k^2 = sq_dev_k / (n_k - ddof), shape (K,)."""
        return self.sq_dev / (self.counts - ddof)


def empty(K: int, d: int, dtype=None) -> ClassStats:
    """Statistics of no samples: the start of an accumulation."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    return ClassStats(
        jnp.zeros(K, dtype), jnp.zeros((d, K), dtype), jnp.zeros((d, d), dtype), jnp.zeros(K, dtype)
    )


@functools.partial(jax.jit, static_argnames=("K",))
def class_stats(H: ArrayLike, y: ArrayLike, K: int) -> ClassStats:
    """The statistics of features H (d, N), columns labelled y (N,) in 0..K-1, in one go."""
    H = jnp.asarray(H)
    Y = jax.nn.one_hot(y, K, dtype=H.dtype)  # (N, K): class sums are matmuls
    counts = jnp.sum(Y, axis=0)
    means = (H @ Y) / counts[None, :]
    D = H - means @ Y.T
    return ClassStats(counts, means, D @ D.T, jnp.sum(D**2, axis=0) @ Y)


@functools.partial(jax.jit, donate_argnums=0)
def update(stats: ClassStats, X: ArrayLike, y: ArrayLike) -> ClassStats:
    """`stats` plus a batch of rows X (B, d) labelled y (B,) in 0..K-1.

    A label equal to K marks a padding row: it is ignored (pad batches to one size so that
    this compiles once). X is cast to the dtype of `stats`. `stats` is donated: its
    buffers are updated in place, so do not reuse the argument.
    """
    dtype = stats.means.dtype
    X = jnp.asarray(X).astype(dtype)
    y = jnp.asarray(y)
    K, B = stats.counts.shape[0], X.shape[0]
    # compact ids 0..B-1 of the classes in this batch; the class ids themselves in `present`
    present, slot = jnp.unique(y, size=B, fill_value=K, return_inverse=True)
    slot = slot.reshape(-1)
    c = jax.ops.segment_sum(jnp.ones(B, dtype), slot, B)  # batch counts per slot
    m = jax.ops.segment_sum(X, slot, B) / jnp.maximum(c, 1.0)[:, None]  # batch means (B, d)
    pad = (present == K)[:, None]
    m = jnp.where(pad, 0.0, m)
    D = jnp.where((y == K)[:, None], 0.0, X - m[slot])  # deviations from the batch means
    n_old = stats.counts.at[present].get(mode="fill", fill_value=0)
    delta = m - stats.means.T.at[present].get(mode="fill", fill_value=0)  # (B, d)
    n_new = n_old + c
    frac = jnp.where(n_new > 0, c / jnp.where(n_new > 0, n_new, 1.0), 0.0)  # c / n_new
    weight = jnp.where(pad[:, 0], 0.0, n_old * frac)  # n_old c / n_new
    scaled = delta * jnp.sqrt(weight)[:, None]
    return ClassStats(
        counts=stats.counts.at[present].add(jnp.where(pad[:, 0], 0.0, c), mode="drop"),
        means=stats.means.at[:, present].add((delta * frac[:, None]).T, mode="drop"),
        within=stats.within + D.T @ D + scaled.T @ scaled,
        sq_dev=stats.sq_dev.at[present].add(
            jax.ops.segment_sum(jnp.sum(D**2, axis=1), slot, B) + weight * jnp.sum(delta**2, 1),
            mode="drop",
        ),
    )
