"""Full-batch SGD with momentum on the distillation UFM, as the official code trains.

The official code of Yang et al. (github.com/penghui-yang/DHKD @ 7976c69, train_student.py)
uses torch SGD, lr 0.05, momentum 0.9, weight decay 5e-4 on every parameter. Here the decay
is the model's own penalty (lambda_W on the heads [and decayed biases], lambda_H on H), so a
step descends `problem.loss`; the caller picks the lambdas. torch's SGD (dampening 0, no
Nesterov) and optax.sgd(lr, momentum) are the same recursion: v <- momentum v + g,
p <- p - lr v.

With ``project=True`` the step is the code's ``--ga`` (helper/optimizer.py, a PCGrad
variant; helper/loops.py): the gradients g_ce of gamma CE and g_kd of alpha l are flattened
over ALL parameters (heads, biases, H); if g_kd . g_ce < 0, g_kd <- g_kd - (g_kd . g_ce /
|g_ce|^2) g_ce; the step uses g_ce + g_kd. torch adds the weight decay inside
``optimizer.step()``, after the projection, so the projection acts on the data gradients
only and the decay's gradient is added unprojected (here: + grad of `problem.penalty`).

Nonnegative features (``features="nonnegative"``) are kept feasible by clipping H at 0 after
every step (projected SGD).

`train` runs `steps` steps as one jitted ``lax.scan`` in float64 and records, every
`record_every` steps (and at step 0), the CE head's geometry, the losses and the gradient
cosines of `gradients` (see `Trajectory`).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ... import metrics
from ...errors import InputError
from . import gradients
from .theory import common_mode_fraction

LEARNING_RATE = 0.05  # train_student.py defaults
MOMENTUM = 0.9
STEPS = 20_000  # enough for the default problem (lambdas 5e-3): see tests/test_dhkd_dynamics.py
RECORD_EVERY = 100


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """What `train` recorded, one entry per record (step 0, record_every, ..., steps).

    CE head (W, its logits Z = W H [+ b]):
    ``common_mode_fraction`` |mean_k w_k| / max_k |w_k|; ``etf_error_centred`` /
    ``etf_error_uncentred`` `ufm.metrics.nc2_etf_error` of the Gram of W's rows with / without
    their mean removed; ``nc3`` Papyan's self-duality of W against the centred class means;
    ``min_margin`` min over samples of the target logit minus the largest other;
    ``accuracy`` the fraction of samples whose largest logit is the target's.
    Losses: ``ce_term``, ``logit_term`` (unweighted means) and ``loss`` (the objective).
    Gradients (data terms, `gradients`): ``cos_W``, ``cos_H`` full batch; ``cos_all`` the
    cosine over all parameters (what the projection tests); ``W_rows_conflicting`` and
    ``H_samples_conflicting`` the fractions of rows of W / columns of H with a negative
    cosine; ``conflict_steps`` the fraction of the steps since the previous record at which
    g_kd . g_ce < 0 over all parameters (where ``--ga`` projects).
    """

    step: np.ndarray
    common_mode_fraction: np.ndarray
    etf_error_centred: np.ndarray
    etf_error_uncentred: np.ndarray
    nc3: np.ndarray
    min_margin: np.ndarray
    accuracy: np.ndarray
    ce_term: np.ndarray
    logit_term: np.ndarray
    loss: np.ndarray
    cos_W: np.ndarray
    cos_H: np.ndarray
    cos_all: np.ndarray
    W_rows_conflicting: np.ndarray
    H_samples_conflicting: np.ndarray
    conflict_steps: np.ndarray
    params: dict  # the parameters after the last step (numpy)
    settings: dict  # heads, project, lr, momentum, steps, record_every, seed, scale

    def last(self) -> dict[str, float]:
        """Every recorded quantity at the last record, as floats."""
        names = [f.name for f in dataclasses.fields(self) if f.name not in ("params", "settings")]
        return {k: float(getattr(self, k)[-1]) for k in names}


def _vdot(a: dict, b: dict):
    return sum(jnp.vdot(a[k], b[k]) for k in a)


def project_conflicting(g_ce: dict, g_kd: dict, active=True) -> dict:
    """The code's projection: g_kd - (g_kd . g_ce / |g_ce|^2) g_ce if g_kd . g_ce < 0 (the
    inner products over all parameters), else g_kd; g_kd unchanged where `active` is False
    (a traced flag: projected and plain runs share one compilation)."""
    dot, norm2 = _vdot(g_kd, g_ce), _vdot(g_ce, g_ce)
    coef = jnp.where(active & (dot < 0), dot / jnp.where(norm2 > 0, norm2, 1.0), 0.0)
    return {k: g_kd[k] - coef * g_ce[k] for k in g_kd}


def direction(problem, params: dict, project=False) -> tuple[dict, jax.Array]:
    """The gradient a step uses, g_ce + g_kd (projected if `project`, a bool or a traced
    flag) + the decay's gradient, and whether g_kd . g_ce < 0 (over all parameters) at
    `params`."""
    g_ce, g_kd = gradients.term_gradients(problem, params)
    conflict = _vdot(g_kd, g_ce) < 0
    g_kd = project_conflicting(g_ce, g_kd, project)
    g_decay = jax.grad(problem.penalty)(params)
    return {k: g_ce[k] + g_kd[k] + g_decay[k] for k in params}, conflict


def measure(problem, params: dict) -> dict[str, jax.Array]:
    """The recorded quantities of `Trajectory` at `params` (jittable), but conflict_steps."""
    K, labels = problem.K, jnp.asarray(problem.labels)
    Z, _ = problem.head_logits(params)
    W, H = params["W"], params["H"]
    Wc = W - W.mean(axis=0, keepdims=True)
    target = Z[labels, jnp.arange(labels.size)]
    others = jnp.where(jax.nn.one_hot(labels, K, dtype=bool).T, -jnp.inf, Z)
    cos = gradients.cosine_values(problem, params)
    g_ce, g_kd = gradients.term_gradients(problem, params)
    num, den = _vdot(g_ce, g_kd), jnp.sqrt(_vdot(g_ce, g_ce) * _vdot(g_kd, g_kd))
    return {
        "common_mode_fraction": common_mode_fraction(W, jnp),
        "etf_error_centred": metrics.nc2_etf_error(Wc @ Wc.T),
        "etf_error_uncentred": metrics.nc2_etf_error(W @ W.T),
        "nc3": metrics.nc3_self_duality(W, metrics.centred_means(H, labels, K)),
        "min_margin": jnp.min(target - jnp.max(others, axis=0)),
        "accuracy": jnp.mean((jnp.argmax(Z, axis=0) == labels).astype(Z.dtype)),
        "ce_term": problem.ce_term(params),
        "logit_term": problem.logit_term(params),
        "loss": problem.loss(params),
        "cos_W": cos["W"],
        "cos_H": cos["H"],
        "cos_all": jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0),
        "W_rows_conflicting": jnp.mean((cos["W_rows"] < 0).astype(Z.dtype)),
        "H_samples_conflicting": jnp.mean((cos["H_samples"] < 0).astype(Z.dtype)),
    }


def _run(problem, params, records: int, every: int, lr, momentum, project):
    """Measure at `params`, then `records` blocks of `every` SGD steps, measuring after each:
    one lax.scan over records + 1 blocks whose first skips its steps (so `measure` is traced
    once). lr, momentum and project are traced: one compilation serves them all."""
    optimizer = optax.sgd(lr, momentum=momentum)
    nonnegative = bool(problem.nonnegative())

    def step(carry, _):
        params, state = carry
        g, conflict = direction(problem, params, project)
        updates, state = optimizer.update(g, state, params)
        params = optax.apply_updates(params, updates)
        if nonnegative:
            params = params | {"H": jnp.maximum(params["H"], 0.0)}
        return (params, state), conflict

    def steps(carry):
        return jax.lax.scan(step, carry, None, length=every)

    def skip(carry):
        return carry, jnp.zeros(every, bool)

    def block(carry, index):
        carry, conflicts = jax.lax.cond(index > 0, steps, skip, carry)
        fraction = jnp.mean(conflicts.astype(lr.dtype))
        recorded = measure(problem, carry[0])
        return carry, recorded | {"conflict_steps": jnp.where(index > 0, fraction, jnp.nan)}

    carry = (params, optimizer.init(params))
    (params, _), series = jax.lax.scan(block, carry, jnp.arange(records + 1))
    return params, series


_compiled = eqx.filter_jit(_run)


def _check(steps, record_every, lr, momentum) -> None:
    for name, value in (("steps", steps), ("record_every", record_every)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise InputError(f"{name} must be an integer >= 1; got {value!r}")
    if steps % record_every:
        raise InputError(f"steps ({steps}) must be a multiple of record_every ({record_every})")
    if not (np.isfinite(lr) and lr > 0):
        raise InputError(f"lr must be a finite number > 0; got {lr!r}")
    if not (0 <= momentum < 1):
        raise InputError(f"momentum must be in [0, 1); got {momentum!r}")


def train(
    problem,
    *,
    steps: int = STEPS,
    record_every: int = RECORD_EVERY,
    seed: int = 0,
    scale: float = 1.0,
    lr: float = LEARNING_RATE,
    momentum: float = MOMENTUM,
    project: bool = False,
    params: dict | None = None,
) -> Trajectory:
    """Full-batch SGD with momentum on `problem.loss` from `problem.init(PRNGKey(seed),
    scale)` (or from `params`), with the code's gradient projection if `project`.
    Compiles once per problem structure (its static fields, the teacher's keywords
    included), steps and record_every; seed, lr, momentum, project and the problem's arrays
    (teacher logits, lambdas) are traced."""
    _check(steps, record_every, lr, momentum)
    dtype = problem.lambda_W.dtype
    if params is None:
        params = problem.init(jax.random.PRNGKey(seed), jnp.asarray(scale, dtype))
    params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    final, series = _compiled(
        problem,
        params,
        steps // record_every,
        record_every,
        jnp.asarray(lr, dtype),
        jnp.asarray(momentum, dtype),
        jnp.asarray(bool(project)),
    )
    settings = {
        "heads": problem.heads,
        "project": bool(project),
        "lr": float(lr),
        "momentum": float(momentum),
        "steps": int(steps),
        "record_every": int(record_every),
        "seed": int(seed),
        "scale": float(scale),
    }
    return Trajectory(
        step=np.arange(steps // record_every + 1) * record_every,
        params={k: np.asarray(v) for k, v in final.items()},
        settings=settings,
        **{k: np.asarray(v, dtype=float) for k, v in series.items()},
    )
