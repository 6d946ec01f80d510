"""Do the two losses' gradients conflict, and where? Cosines on the head and on the features.

The abstract of Yang et al. says that CE and the logit loss conflict in the linear classifier
and not in the backbone. In the UFM the backbone's output is H. At a point `params` the
gradients of gamma CE and alpha l (data terms only, without the decays) are compared:

- ``W``: the cosine of the two gradients on the CE head W, full batch (single head: the
  logit loss acts on W too; dual head: it does not, so the cosine is 0 there by construction);
- ``W_rows``: the same per row of W (one class's classifier);
- ``H``: the cosine of the two gradients on H, full batch;
- ``H_samples``: per sample (column of H), their fraction with a negative cosine.

A negative cosine is a conflict (descent on one loss ascends the other).
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def _cos(a, b, axis=None):
    num = jnp.sum(a * b, axis=axis)
    den = jnp.linalg.norm(a, axis=axis) * jnp.linalg.norm(b, axis=axis)
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def term_gradients(problem, params) -> tuple[dict, dict]:
    """Gradients of gamma * CE term and alpha * logit term with respect to every parameter."""
    g_ce = jax.grad(lambda p: problem.gamma * problem.ce_term(p))(params)
    g_kd = jax.grad(lambda p: problem.alpha * problem.logit_term(p))(params)
    return g_ce, g_kd


def cosine_values(problem, params) -> dict[str, Any]:
    """The cosines (module doc) as jax arrays (jittable)."""
    g_ce, g_kd = term_gradients(problem, params)
    return {
        "W": _cos(g_ce["W"], g_kd["W"]),
        "W_rows": _cos(g_ce["W"], g_kd["W"], axis=1),
        "H": _cos(g_ce["H"], g_kd["H"]),
        "H_samples": _cos(g_ce["H"], g_kd["H"], axis=0),
    }


_compiled = eqx.filter_jit(cosine_values)


def cosines(problem, params) -> dict[str, Any]:
    """The cosines as plain numbers: W and H full batch, the rows of W, and the fraction of
    samples whose feature gradients conflict."""
    params = {k: jnp.asarray(v) for k, v in params.items()}
    values = {k: np.asarray(v) for k, v in _compiled(problem, params).items()}
    return {
        "W": float(values["W"]),
        "W_rows": values["W_rows"].tolist(),
        "H": float(values["H"]),
        "H_conflicting_samples": float(np.mean(values["H_samples"] < 0)),
    }
