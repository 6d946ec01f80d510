"""The next-token UFM's side of the language study: its minimizer's geometry, measured the
way the trained models' is.

In the UFM every context m (here: the previous token, the corpus' bigram statistics) has one
feature h_m; a token of the stream is a sample whose feature is its context's and whose
class is the token that follows. Over next-token classes, with pi_m the contexts'
frequencies, p_m(k) their next-token distributions, q_k = sum_m pi_m p_m(k) and T tokens:

    n_k = T q_k,   mu_k = sum_m pi_m p_m(k) h_m / q_k,
    N Sigma_W = T (H diag(pi) H^T - M diag(q) M^T),   n_k sigma_k^2 = T (sum_m pi_m p_m(k)
    ||h_m||^2 - q_k ||mu_k||^2)

(`class_stats`): exactly the statistics `ufm.metrics.Accumulator` would gather from the T
tokens, so `ufm.metrics.from_stats` gives every metric (NC4 aside) and `measure.token_geometry`
the norms and interference, comparable number for number with the trained models'.
"""

from typing import Any

import jax.numpy as jnp
import numpy as np

from ufm.language.measure import token_geometry
from ufm.metrics import ClassStats, from_stats


def class_stats(H, weights, targets, tokens: float = 1.0) -> ClassStats:
    """Next-token class statistics of context features H (d, M) with frequencies `weights`
    (M,) and next-token distributions `targets` (K, M), for a stream of `tokens` tokens
    (module docstring). Classes no context predicts get count 0 and mean 0."""
    H = np.asarray(H, dtype=np.float64)
    pi = np.asarray(weights, dtype=np.float64)
    pi = pi / pi.sum()
    joint = np.asarray(targets, dtype=np.float64) * pi[None, :]  # (K, M): pi_m p_m(k)
    q = joint.sum(axis=1)
    safe = np.where(q > 0, q, 1.0)
    means = (H @ joint.T) / safe[None, :]
    means[:, q == 0] = 0.0
    within = tokens * (H * pi[None, :]) @ H.T - tokens * (means * q[None, :]) @ means.T
    sq_dev = tokens * (joint @ np.sum(H * H, axis=0) - q * np.sum(means * means, axis=0))
    return ClassStats(
        jnp.asarray(tokens * q), jnp.asarray(means), jnp.asarray(within),
        jnp.asarray(np.maximum(sq_dev, 0.0)),
    )  # fmt: skip


def geometry(H, W, weights, targets, tokens: float = 1.0) -> dict[str, Any]:
    """Every metric but NC4 (``metrics``) and the token-mean geometry (``geometry``) of the
    UFM point (W, H) over next-token classes with samples."""
    stats = class_stats(H, weights, targets, tokens)
    alive = np.flatnonzero(np.asarray(stats.counts) > 0)
    kept = ClassStats(stats.counts[alive], stats.means[:, alive], stats.within, stats.sq_dev[alive])
    W = np.asarray(W, dtype=np.float64)
    values = from_stats(kept, jnp.asarray(W[alive]))
    metrics = {k: float(v) for k, v in values.items() if k != "nc1_dropped"}
    counts = np.asarray(stats.counts)
    return {"metrics": metrics, "geometry": token_geometry(np.asarray(stats.means), counts, W)}
