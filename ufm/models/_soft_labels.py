"""The weighted soft-label objective shared by the mixup and next-token UFMs.

Both models have one free feature per distinct column (a mixed example, a context) that
stands for many samples: column m carries a data weight w_m (its share of the samples, the
w_m sum to 1), a soft target y_m (a probability vector over K classes or tokens) and a
feature-penalty weight c_m. Their objectives are

    sum_m w_m loss(z_m, y_m) + lambda_H/2 sum_m c_m ||h_m||^2 (+ the classifier's penalty)

with z_m = W h_m and loss = CE(z, y) = logsumexp(z) - y.z, or 1/2 ||z - y||^2.
Mixup: w = counts/N, c = counts (its lambda_H is per mixed example); next-token: w = c = pi,
the contexts' frequencies (its lambda_H is mixup's N lambda_H, the per-token decay).
"""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special
from jaxtyping import Array, Float


def soft_label_terms(
    Z: Float[Array, "K M"],
    H: Float[Array, "d M"],
    targets: Float[Array, "K M"],
    weights: Float[Array, " M"],
    feature_weights: Float[Array, " M"],
    lambda_H: Float[Array, ""],
    loss: str = "ce",
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """(data term sum_m w_m loss(z_m, y_m), feature penalty lambda_H/2 sum_m c_m ||h_m||^2),
    jax, jit- and vmap-safe; `loss` is ``"ce"`` or ``"mse"`` (static)."""
    if loss == "ce":
        data = jnp.sum(weights * (jax.nn.logsumexp(Z, axis=0) - jnp.sum(targets * Z, 0)))
    else:
        data = jnp.sum(weights * jnp.sum((Z - targets) ** 2, axis=0)) / 2
    penalty = lambda_H / 2 * jnp.sum(feature_weights * jnp.sum(H**2, axis=0))
    return data, penalty


def soft_cross_entropy(Z: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """numpy, per column: logsumexp(z_m) - y_m.z_m (the columns of Z and targets)."""
    Z = np.asarray(Z, dtype=float)
    return scipy.special.logsumexp(Z, axis=0) - np.sum(np.asarray(targets) * Z, axis=0)
