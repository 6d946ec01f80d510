"""The logit losses of dual-head knowledge distillation, as the official code defines them.

Logits are (K, N): one column per sample, classes on axis 0 (ufm's Z = W H). Every function
returns one number per column (summed over the K classes, with the T^2 factor of the code);
the batch mean (1/N) sum_i is the caller's. Read in the official code of Yang et al.
(github.com/penghui-yang/DHKD @ 7976c69, distiller_zoo/):

- ``kd``: DistillKL(T), T^2 KL(softmax(z_t/T) || softmax(z_s/T));
- ``binary-kl``: BinaryKL(T), T^2 sum_k KL(Bernoulli(q_k) || Bernoulli(r_k)),
  r = sigmoid(z_s/T), q = sigmoid(z_t/T);
- ``binary-kl-norm``: BinaryKLNorm(T), T^2 sum_k KL(Bernoulli(1/2) || Bernoulli(d_k)),
  d = sigmoid((z_s - z_t)/T), which equals T^2 sum_k log cosh((z_s - z_t)/(2T)).

The code clamps every sigmoid to [1e-8, 1 - 1e-8] before its log (`code_form`): where
|z/T| (binary-kl) or |z_s - z_t|/T (binary-kl-norm) exceeds log(1e8 - 1) = 18.42 the clamped
loss is flat, so its gradient is 0 there. ufm's forms (the functions here) use log-sigmoid
and log cosh in float64: the same function where the clamp is inactive, smooth everywhere.
The logit gradients (derivations/dhkd.py): CE (p - e_y), kd T (softmax(z_s/T) -
softmax(z_t/T)), binary-kl T (r - q), binary-kl-norm T (d - 1/2). The first two sum to zero
over the classes (shift-invariant losses), the binary ones do not.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

LOGIT_LOSSES = ("binary-kl", "binary-kl-norm", "kd")
CLAMP = 1e-8  # the official code's eps
CLAMP_EDGE = 18.420680733952207  # log((1 - 1e-8) / 1e-8): |argument of the sigmoid| beyond it


def log_cosh(x: Float[Array, "..."]) -> Float[Array, "..."]:
    """log cosh x to rounding: (1/2) log1p(sinh^2 x) for |x| < 20 (no cancellation at small
    x, where it is x^2/2), else |x| - log 2 + log1p(e^{-2|x|}) (no overflow)."""
    a = jnp.abs(x)
    small = a < 20.0
    xs = jnp.where(small, x, 0.0)  # both branches finite, so both gradients are
    al = jnp.where(small, 20.0, a)
    return jnp.where(
        small, 0.5 * jnp.log1p(jnp.sinh(xs) ** 2), al - jnp.log(2.0) + jnp.log1p(jnp.exp(-2 * al))
    )


def kd(Z: Float[Array, "K N"], Zt: Float[Array, "K N"], T) -> Float[Array, " N"]:
    """T^2 KL(softmax(Zt/T) || softmax(Z/T)) per column."""
    log_pt = jax.nn.log_softmax(Zt / T, axis=0)
    log_ps = jax.nn.log_softmax(Z / T, axis=0)
    return T**2 * jnp.sum(jnp.exp(log_pt) * (log_pt - log_ps), axis=0)


def binary_kl(Z: Float[Array, "K N"], Zt: Float[Array, "K N"], T) -> Float[Array, " N"]:
    """T^2 sum_k [q log(q/r) + (1-q) log((1-q)/(1-r))] per column, r = sigmoid(Z/T),
    q = sigmoid(Zt/T), in log-sigmoid form."""
    s, t = Z / T, Zt / T
    q = jax.nn.sigmoid(t)
    entry = q * (jax.nn.log_sigmoid(t) - jax.nn.log_sigmoid(s)) + (1 - q) * (
        jax.nn.log_sigmoid(-t) - jax.nn.log_sigmoid(-s)
    )
    return T**2 * jnp.sum(entry, axis=0)


def binary_kl_norm(Z: Float[Array, "K N"], Zt: Float[Array, "K N"], T) -> Float[Array, " N"]:
    """T^2 sum_k log cosh((Z - Zt)/(2T)) per column: BinaryKLNorm, exactly (0 iff Z = Zt)."""
    return T**2 * jnp.sum(log_cosh((Z - Zt) / (2 * T)), axis=0)


def cross_entropy(Z: Float[Array, "K N"], Y: Float[Array, "K N"]) -> Float[Array, " N"]:
    """logsumexp(z) - y.z per column (Y one-hot or soft labels, columns summing to 1)."""
    return jax.nn.logsumexp(Z, axis=0) - jnp.sum(Y * Z, axis=0)


FUNCTIONS = {"kd": kd, "binary-kl": binary_kl, "binary-kl-norm": binary_kl_norm}


def logit_loss(name: str, Z, Zt, T) -> Float[Array, " N"]:
    """The logit loss `name` (one of LOGIT_LOSSES) per column."""
    return FUNCTIONS[name](Z, Zt, T)


def code_form(name: str, Z, Zt, T) -> Float[Array, " N"]:
    """The loss exactly as the official code computes it (sigmoids clamped to
    [1e-8, 1 - 1e-8], then logs; KD unclamped), per column, in the dtype of Z."""
    if name == "kd":
        return kd(Z, Zt, T)
    clamp = lambda p: jnp.clip(p, CLAMP, 1 - CLAMP)
    xlogy = jax.scipy.special.xlogy
    if name == "binary-kl":
        r, q = clamp(jax.nn.sigmoid(Z / T)), clamp(jax.nn.sigmoid(Zt / T))
        entry = xlogy(q, q) - q * jnp.log(r) + xlogy(1 - q, 1 - q) - (1 - q) * jnp.log(1 - r)
    else:
        d = clamp(jax.nn.sigmoid((Z - Zt) / T))
        half = jnp.full_like(d, 0.5)
        entry = xlogy(half, half) - half * jnp.log(d) + xlogy(half, half) - half * jnp.log(1 - d)
    return T**2 * jnp.sum(entry, axis=0)
