"""The plain UFM over its K class means: what `ufm.solve` optimizes on its collapsed route.

Every global minimizer of the plain UFM has collapsed features (any counts, CE or MSE, any
bias setting): with W and b fixed, the objective is a sum over columns of strictly convex
functions of h_i (lambda_H > 0) that depend on the column only through its class, so each
class has one optimal column. The objective of a collapsed point (h_i = m_k for i in class
k) is

    L_c(W, S, b) = (1/N) sum_k n_k loss(W m_k + b, k) + lambda_W/2 ||W||^2
                   + lambda_H/2 ||S||^2 + lambda_b/2 ||b||^2,      m_k = s_k / sqrt(n_k),

in the coordinates S = Hbar diag(sqrt(n)) (d x K). In them ||S||_F = ||H||_F and
||grad_S L_c||_F = ||grad_H L||_F at the expanded point (each column's gradient is the same
within a class: grad_{s_k} = sqrt(n_k) grad_{h_i}), so the solver's tolerance means the same
on both problems and the penalty keeps its curvature lambda_H. Minimizing W -> min_S L_c(W,
S, b) is minimizing W -> min_H L(W, H, b): the same function of (W, b), with the same minima.

`ufm.solve` solves this problem, expands it (`expand`) and judges convergence on the full
objective's gradient; `PlainProblem.certificate` proves the expanded point global.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray


class CollapsedPlain(eqx.Module):
    """A `PlainProblem` (``full``) restricted to collapsed features, in the coordinates S
    (``params["H"]``, d x K; module docstring). It offers what `ufm.solve` asks of a problem
    (loss, init, weight_decay, optimal_features, classifier, nonnegative); `expand` maps its
    parameters to the full problem's."""

    full: eqx.Module

    __getattribute__ = object.__getattribute__  # see AbstractProblem

    @property
    def root(self) -> np.ndarray:
        """sqrt(n_k), the scale between s_k and the class mean m_k."""
        return np.sqrt(np.asarray(self.full.counts, dtype=float))

    def loss(self, params: dict[str, Array]) -> Float[Array, ""]:
        full = self.full
        W, S = params["W"], params["H"]
        root = jnp.asarray(self.root, S.dtype)
        Z = W @ S / root[None, :]  # logits of the class means, K x K
        if full.bias:
            Z = Z + params["b"][:, None]
        weights = jnp.asarray(full.counts, S.dtype) / full.N
        eye = jnp.eye(full.K, dtype=S.dtype)
        if full.loss_name == "ce":
            per_class = jax.nn.logsumexp(Z, axis=0) - jnp.diagonal(Z)
        else:
            per_class = jnp.sum((Z - eye) ** 2, axis=0) / 2
        value = per_class @ weights
        value = value + full.lambda_W / 2 * jnp.sum(W**2) + full.lambda_H / 2 * jnp.sum(S**2)
        if full.bias:
            value = value + full.lambda_b / 2 * jnp.sum(params["b"] ** 2)
        return value

    def init(self, key: PRNGKeyArray, scale: Float[Array, ""]) -> dict[str, Array]:
        """W and S with i.i.d. N(0, scale^2/d) entries (the full problem's W, and S with the
        norm per column that a class mean times sqrt(n_k) of such columns would have if they
        were equal); b = 0."""
        return self.full.gaussian_start(key, scale, self.full.K)

    def weight_decay(self) -> Float[Array, ""]:
        return self.full.weight_decay()

    def nonnegative(self) -> tuple[str, ...]:
        return ()

    def classifier(self, params: dict[str, Array]) -> Array:
        return params["W"]

    def optimal_features(self, params: dict[str, Array]) -> Array | None:
        """MSE: the ridge solution of every class in these coordinates, S* = Hbar*
        diag(sqrt(n)) (`AbstractClassProblem.optimal_class_means`); None for CE."""
        Hbar = self.full.optimal_class_means(params)
        return None if Hbar is None else Hbar * jnp.asarray(self.root, Hbar.dtype)[None, :]

    def expand(self, params: dict[str, Array]) -> dict[str, Array]:
        """The full problem's parameters: every column of class k is s_k / sqrt(n_k)."""
        S = params["H"]
        Hbar = S / jnp.asarray(self.root, S.dtype)[None, :]
        full = self.full
        if full.balanced:  # a broadcast: one pass writing H
            H = jnp.broadcast_to(Hbar[:, :, None], (full.d, full.K, full.counts[0]))
            return params | {"H": H.reshape(full.d, full.N)}
        counts = np.asarray(full.counts)
        return params | {"H": jnp.repeat(Hbar, counts, axis=1, total_repeat_length=full.N)}
