"""Training one network, in the UFM's convention, and recording it at chosen epochs.

The objective of a batch B of the N training samples is

    (1/|B|) sum_{i in B} loss(z_i, y_i) + sum_l weight_decay/2 ||W_l||_F^2
        + N feature_decay/2 (1/|B|) sum_{i in B} ||h_i||^2

with h = the backbone's output (the UFM's H_1), so that over the full batch it is exactly the
UFM's objective with lambda_W = weight_decay on every weight matrix and lambda_H =
feature_decay on the features. loss is -log softmax(z)_y ("ce", soft labels under mixup) or
1/2 ||z - y||^2 ("mse"). SGD with momentum (optax), learning rate schedule over the epochs,
minibatches drawn without replacement each epoch (the remainder of N / batch_size is left out
of that epoch), mixup with one lambda ~ Beta(alpha, alpha) per sample and a random partner.

Knowledge distillation (`distill`, off by default; the dataset then carries a teacher's
logits, `teach`): the data term becomes gamma loss(z_i, y_i) + alpha l(z'_i, zt_i) with l a
logit loss of `ufm.models.dhkd.losses` at `temperature`, z' = z (one head) or a second
linear head's logits W2 h + b2 on the same features (heads=2, dual-head distillation: the
first head gets no gradient from l). `decay_all` puts the weight decay on every parameter
(biases, batch-norm scales and shifts too), as PyTorch's SGD weight_decay does; `projection`
is the official DHKD code's ``--ga``: where the two terms' gradients over all parameters
conflict (g_l . g_ce < 0), g_l loses its component along g_ce; the decay's gradient is added
unprojected (the code's SGD adds it after the projection). `teacher_shift` m adds a constant
to every teacher logit the logit loss sees (zt_i + m 1: a teacher with mean logit shifted by
m; softmax KD is blind to it, the binary losses are not).
"""

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from ..errors import InputError
from ..models.dhkd import losses as logit_losses
from . import mlp
from .data import Dataset

LOSSES = ("ce", "mse")
SCHEDULES = ("cosine", "step", "constant", "step-late")
DISTILL = ("none", *logit_losses.LOGIT_LOSSES)
HISTORY = ("train_loss", "objective", "train_error", "test_loss", "test_error")
# SGD with momentum; the learning rate (scheduled) and the momentum are set every step
OPTIMIZER = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0, momentum=0.0)


@dataclasses.dataclass(frozen=True)
class Training:
    """Every setting of one training run (the grid's axes are these names)."""

    widths: tuple[int, ...] = (256, 256)
    depth: int = 0  # M bias-free linear layers between the backbone and the classifier
    batch_norm: bool = False
    bias: bool = True  # classifier bias (decayed only with decay_all)
    loss: str = "ce"
    weight_decay: float = 5e-4
    feature_decay: float = 0.0
    mixup_alpha: float = 0.0  # 0: no mixup
    lr: float = 0.05
    momentum: float = 0.9
    schedule: str = "cosine"
    epochs: int = 300
    batch_size: int = 0  # 0: full batch
    seed: int = 0
    # knowledge distillation (module docstring); the defaults leave all of it off
    decay_all: bool = False  # weight decay on biases and batch-norm parameters too
    distill: str = "none"  # the logit loss to the teacher's logits: none, or DISTILL's
    heads: int = 1  # 2: the logit loss goes to a second linear head on the same features
    gamma: float = 1.0  # weight of the data loss (head 1)
    alpha: float = 1.0  # weight of the logit loss
    temperature: float = 2.0  # of the logit loss (the DHKD code: 2 binary, 4 kd)
    projection: bool = False  # the DHKD code's --ga gradient projection
    teacher_shift: float = 0.0  # added to every teacher logit the logit loss sees

    def __post_init__(self):
        widths = self.widths
        if isinstance(widths, int | np.integer):
            widths = (widths,)
        if isinstance(widths, str):
            widths = tuple(int(w) for w in widths.replace(",", " ").split())
        object.__setattr__(self, "widths", tuple(int(w) for w in widths))
        if not self.widths or min(self.widths) < 1:
            raise InputError(f"widths: need one or more layer widths >= 1; got {self.widths}")
        for name, low in (("depth", 0), ("epochs", 1), ("batch_size", 0), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < low:
                raise InputError(f"{name}: must be an integer >= {low}; got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.loss not in LOSSES:
            raise InputError(f"loss: must be one of {', '.join(LOSSES)}; got {self.loss!r}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule: one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        for name in ("weight_decay", "feature_decay", "mixup_alpha"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value >= 0):
                raise InputError(f"{name}: must be a finite number >= 0; got {value}")
            object.__setattr__(self, name, value)
        if not 0 < float(self.lr) < np.inf:
            raise InputError(f"lr: must be > 0; got {self.lr}")
        if not 0 <= float(self.momentum) < 1:
            raise InputError(f"momentum: must lie in [0, 1); got {self.momentum}")
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "momentum", float(self.momentum))
        for name in ("batch_norm", "bias", "decay_all", "projection"):
            object.__setattr__(self, name, bool(getattr(self, name)))
        self._check_distill()

    def _check_distill(self) -> None:
        if self.distill not in DISTILL:
            raise InputError(f"distill: one of {', '.join(DISTILL)}; got {self.distill!r}")
        if isinstance(self.heads, bool) or self.heads not in (1, 2):
            raise InputError(f"heads: 1 or 2; got {self.heads!r}")
        object.__setattr__(self, "heads", int(self.heads))
        for name in ("gamma", "alpha", "temperature"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value >= 0) or (name == "temperature" and value == 0):
                low = "> 0" if name == "temperature" else ">= 0"
                raise InputError(f"{name}: must be a finite number {low}; got {value}")
            object.__setattr__(self, name, value)
        if not np.isfinite(float(self.teacher_shift)):
            raise InputError(f"teacher_shift: must be a finite number; got {self.teacher_shift}")
        object.__setattr__(self, "teacher_shift", float(self.teacher_shift))
        if self.distill == "none":
            changed = [n for n in DISTILL_DEFAULTS if n != "decay_all" and self._changed(n)]
            if changed:
                raise InputError(
                    f"{', '.join(changed)}: only with knowledge distillation (distill one of "
                    f"{', '.join(DISTILL[1:])}); got distill='none'"
                )
        elif self.mixup_alpha > 0:
            raise InputError(f"mixup_alpha: must be 0 with distill={self.distill!r}")

    def _changed(self, name: str) -> bool:
        return getattr(self, name) != DISTILL_DEFAULTS[name]

    def as_dict(self) -> dict[str, Any]:
        """Every setting; the distillation settings only where they differ from their defaults
        (so that stores made before they existed keep their recorded settings)."""
        out = dataclasses.asdict(self)
        out["widths"] = list(self.widths)
        return {k: v for k, v in out.items() if k not in DISTILL_DEFAULTS or self._changed(k)}


FIELDS = {f.name: f for f in dataclasses.fields(Training)}
DISTILL_DEFAULTS = {
    name: FIELDS[name].default
    for name in (
        "decay_all", "distill", "heads", "gamma", "alpha", "temperature", "projection",
        "teacher_shift",
    )
}  # fmt: skip


def default_record(epochs: int, count: int = 8) -> tuple[int, ...]:
    """`count` epochs, roughly log-spaced from 0 (the initialization) to the last."""
    points = np.unique(np.round(np.geomspace(1, epochs + 1, count) - 1).astype(int))
    return tuple(int(e) for e in np.union1d(points, [0, epochs]))


def check_record(record, epochs: int) -> tuple[int, ...]:
    record = default_record(epochs) if record is None else record
    values = sorted({int(e) for e in record})
    if not values or values[0] < 0 or values[-1] > epochs:
        raise InputError(f"record: epochs must lie in 0..{epochs} (the epochs run); got {record}")
    return tuple(values)


def check_batch(training: Training, N: int) -> int:
    """The samples per step (N for a full batch); a batch larger than N is refused."""
    if training.batch_size > N:
        raise InputError(
            f"batch_size: must be <= the {N} training samples (0: full batch); "
            f"got {training.batch_size}"
        )
    return training.batch_size or N


# ----------------------------------------------------------------------------------------
# The compiled pieces. `Static` holds what fixes shapes; the rest is data (no recompiles
# across a grid of decays, learning rates or seeds).


@dataclasses.dataclass(frozen=True)
class Static:
    loss: str
    batches: int  # per epoch
    batch: int  # samples per batch
    mixup: bool
    schedule: str
    epochs: int
    distill: str = "none"
    heads: int = 1
    projection: bool = False
    decay_all: bool = False


def _data_loss(loss: str, logits, targets):
    if loss == "ce":
        return -jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1).mean()
    return 0.5 * jnp.sum((logits - targets) ** 2, axis=-1).mean()


def _penalty(net, feats, hp, N: int, decay_all: bool = False):
    """weight_decay/2 sum ||W_l||^2 + N feature_decay/2 mean ||h||^2 over the batch's
    backbone features (over the full batch: feature_decay/2 ||H_1||_F^2). With `decay_all`
    the first sum runs over every parameter (biases, batch-norm scales and shifts too)."""
    backbone = feats[len(net.hidden) - 1]
    decay = sum(jnp.sum(w**2) for w in (net.parameters() if decay_all else net.weights()))
    features = N * jnp.mean(jnp.sum(backbone**2, axis=-1))
    return 0.5 * (hp["weight_decay"] * decay + hp["feature_decay"] * features)


def _distill_terms(net, feats, logits, targets, teacher, hp, static: Static):
    """(gamma mean loss(z_i, y_i), alpha mean l(z'_i, zt_i)): z the first head's logits,
    z' the same or (heads=2) the second head's, zt the teacher's plus `teacher_shift` (rows:
    samples)."""
    student = logits if static.heads == 1 else net.head2(feats[-1])
    target = teacher.T + hp["teacher_shift"]
    logit = logit_losses.logit_loss(static.distill, student.T, target, hp["temperature"])
    return hp["gamma"] * _data_loss(static.loss, logits, targets), hp["alpha"] * logit.mean()


def _objective(net, x, targets, hp, static: Static, N: int, teacher=None):
    feats, logits = net.features(x)
    if static.distill == "none":
        return _data_loss(static.loss, logits, targets) + _penalty(
            net, feats, hp, N, static.decay_all
        )
    terms = _distill_terms(net, feats, logits, targets, teacher, hp, static)
    return terms[0] + terms[1] + _penalty(net, feats, hp, N, static.decay_all)


def project(g, onto):
    """The DHKD code's --ga (helper/optimizer.py, PCGrad's rule) on flat gradients: g minus
    its component along `onto` where they conflict (g . onto < 0), else g unchanged."""
    dot = jnp.vdot(g, onto)
    norm2 = jnp.maximum(jnp.vdot(onto, onto), jnp.finfo(onto.dtype).tiny)
    return jnp.where(dot < 0, g - (dot / norm2) * onto, g)


def _gradient(params, rest, xb, tb, zb, hp, static: Static, N: int):
    """The objective's gradient on a batch; with `projection`, g_ce + project(g_l, g_ce) +
    the penalty's gradient, g_ce and g_l the gradients of the two weighted data terms over
    all parameters flattened together."""
    if not static.projection:
        return jax.grad(lambda p: _objective(eqx.combine(p, rest), xb, tb, hp, static, N, zb))(
            params
        )

    def parts(p):
        net = eqx.combine(p, rest)
        feats, logits = net.features(xb)
        data, logit = _distill_terms(net, feats, logits, tb, zb, hp, static)
        return jnp.stack([data, logit, _penalty(net, feats, hp, N, static.decay_all)])

    jacobian = jax.jacrev(parts)(params)
    row = lambda i: jax.flatten_util.ravel_pytree(jax.tree_util.tree_map(lambda a: a[i], jacobian))
    (g_ce, unravel), (g_l, _), (g_penalty, _) = row(0), row(1), row(2)
    return unravel(g_ce + project(g_l, g_ce) + g_penalty)


def _lr(hp, epoch, static: Static):
    t = epoch / static.epochs
    if static.schedule == "cosine":
        return hp["lr"] * 0.5 * (1 + jnp.cos(jnp.pi * t))
    if static.schedule == "step":  # x0.1 after 1/3 and after 2/3 of the epochs
        return hp["lr"] * 0.1 ** ((t >= 1 / 3).astype(float) + (t >= 2 / 3).astype(float))
    if static.schedule == "step-late":  # x0.1 at 5/8, 3/4, 7/8 (DHKD: 150, 180, 210 of 240)
        return hp["lr"] * 0.1 ** sum((t >= c).astype(float) for c in (5 / 8, 3 / 4, 7 / 8))
    return hp["lr"]


def _evaluate(net, data, static: Static, hp):
    """Losses and errors of the full training set (clean inputs) and the test set, and the
    features of both (test features normalized with the training set's statistics). Losses
    and errors are the first head's; the objective is the training objective (with
    distillation: gamma loss + alpha logit loss + penalties)."""
    x, y, xt, yt = data[:4]
    K = net.classifier.weight.shape[0]
    out = {}
    feats, logits = net.features(x)
    out["train_loss"] = _data_loss(static.loss, logits, jax.nn.one_hot(y, K, dtype=x.dtype))
    penalty = _penalty(net, feats, hp, x.shape[0], static.decay_all)
    if static.distill == "none":
        out["objective"] = out["train_loss"] + penalty
    else:  # data[4]: the teacher's training-set logits
        onehot = jax.nn.one_hot(y, K, dtype=x.dtype)
        terms = _distill_terms(net, feats, logits, onehot, data[4], hp, static)
        out["objective"] = terms[0] + terms[1] + penalty
    out["train_error"] = jnp.mean(jnp.argmax(logits, -1).astype(y.dtype) != y, dtype=x.dtype)
    feats_t, logits_t = net.features(xt, reference=x)
    out["test_loss"] = _data_loss(static.loss, logits_t, jax.nn.one_hot(yt, K, dtype=x.dtype))
    out["test_error"] = jnp.mean(jnp.argmax(logits_t, -1).astype(yt.dtype) != yt, dtype=x.dtype)
    return out, feats, feats_t


@eqx.filter_jit
def _segment(net, opt_state, key, history, start, stop, data, hp, static: Static):
    """Epochs start .. stop-1 (1-based: epoch e ends after its update)."""
    x, y = data[0], data[1]
    N, K = x.shape[0], net.classifier.weight.shape[0]
    params, rest = eqx.partition(net, eqx.is_inexact_array)
    onehot = jax.nn.one_hot(y, K, dtype=x.dtype)
    teacher = None if static.distill == "none" else data[4]

    def step(carry, batch):
        params, opt_state, lr, key = carry
        key, k1, k2 = jax.random.split(key, 3)
        xb, tb = x[batch], onehot[batch]
        zb = None if teacher is None else teacher[batch]
        if static.mixup:
            alpha = jnp.maximum(hp["mixup_alpha"], 1e-12)
            lam = jax.random.beta(k1, alpha, alpha, (xb.shape[0], 1), dtype=x.dtype)
            lam = jnp.where(hp["mixup_alpha"] > 0, lam, 1.0)
            partner = jax.random.permutation(k2, xb.shape[0])
            xb = lam * xb + (1 - lam) * xb[partner]
            tb = lam * tb + (1 - lam) * tb[partner]
        grads = _gradient(params, rest, xb, tb, zb, hp, static, N)
        opt_state.hyperparams["learning_rate"] = lr
        opt_state.hyperparams["momentum"] = hp["momentum"]
        updates, opt_state = OPTIMIZER.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, lr, key), None

    def epoch(e, carry):
        params, opt_state, key, history = carry
        key, k = jax.random.split(key)
        order = jax.random.permutation(k, N)[: static.batches * static.batch]
        batches = order.reshape(static.batches, static.batch)
        lr = _lr(hp, e - 1, static)
        (params, opt_state, _, key), _ = jax.lax.scan(step, (params, opt_state, lr, key), batches)
        stats, _, _ = _evaluate(eqx.combine(params, rest), data, static, hp)
        history = {k: v.at[e - 1].set(stats[k]) for k, v in history.items()}
        return params, opt_state, key, history

    params, opt_state, key, history = jax.lax.fori_loop(
        start, stop, epoch, (params, opt_state, key, history)
    )
    return eqx.combine(params, rest), opt_state, key, history


_record = eqx.filter_jit(_evaluate)


# ----------------------------------------------------------------------------------------


def build(data: Dataset, t: Training, key) -> mlp.MLP:
    """A freshly initialized network for `data` with `t`'s shape, in the working precision."""
    net = mlp.init(
        key, data.x_train.shape[1], t.widths, t.depth, data.K, t.batch_norm, t.bias, t.heads
    )
    dtype = jnp.result_type(float)
    return jax.tree_util.tree_map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, net)


def run(
    data: Dataset,
    training: Training,
    record: tuple[int, ...],
    progress: Callable[[int], None] = lambda epochs: None,
    stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any] | None:
    """Train one network; numpy arrays of everything recorded, or None if `stop()` turned
    true between segments (the run is then abandoned: nothing partial is returned)."""
    t = training
    N = data.x_train.shape[0]
    batch = check_batch(t, N)
    static = Static(
        t.loss, N // batch, batch, t.mixup_alpha > 0, t.schedule, t.epochs,
        t.distill, t.heads, t.projection, t.decay_all,
    )  # fmt: skip
    dtype = jnp.result_type(float)
    arrays = (data.x_train, data.y_train, data.x_test, data.y_test)
    names = ("weight_decay", "feature_decay", "mixup_alpha", "lr", "momentum")
    if t.distill != "none":
        if data.teacher_train is None:
            raise InputError(
                f"distill={t.distill!r}: the dataset carries no teacher logits (make it with "
                "ufm.networks.training.teach)"
            )
        arrays += (data.teacher_train,)
        names += ("gamma", "alpha", "temperature", "teacher_shift")
    device_data = tuple(
        jnp.asarray(a, dtype=dtype if a.dtype.kind == "f" else jnp.int32) for a in arrays
    )
    hp = {k: jnp.asarray(getattr(t, k), dtype) for k in names}
    key = jax.random.PRNGKey(t.seed)
    key, k_init = jax.random.split(key)
    net = build(data, t, k_init)
    opt_state = OPTIMIZER.init(eqx.filter(net, eqx.is_inexact_array))
    history = {k: jnp.full(t.epochs, jnp.nan, dtype) for k in HISTORY}
    began = time.perf_counter()
    records, done = [], 0
    for target in record:
        while done < target:  # segments of at most 25 epochs: progress, and a way to stop
            if stop():
                return None
            upto = min(target, done + 25)
            net, opt_state, key, history = _segment(
                net,
                opt_state,
                key,
                history,
                jnp.asarray(done + 1),
                jnp.asarray(upto + 1),
                device_data,
                hp,
                static,
            )
            jax.block_until_ready(history)
            progress(upto - done)
            done = upto
        stats, feats, feats_t = _record(net, device_data, static, hp)
        records.append(
            {
                "features_train": [np.asarray(f) for f in feats],
                "features_test": [np.asarray(f) for f in feats_t],
                "classifier": np.asarray(net.classifier.weight),
                "bias": None if net.classifier.bias is None else np.asarray(net.classifier.bias),
                **{k: float(v) for k, v in stats.items()},
            }
            | _second_head(net)
        )
    history = {k: np.asarray(v) for k, v in history.items()}
    flat, _ = jax.flatten_util.ravel_pytree(eqx.filter(net, eqx.is_inexact_array))
    return {
        "records": records,
        "history": history,
        "parameters": np.asarray(flat),
        "terminal_epoch": terminal_epoch(history["train_error"]),
        "seconds": time.perf_counter() - began,
    }


def _second_head(net) -> dict[str, Any]:
    if net.head2 is None:
        return {}
    bias = None if net.head2.bias is None else np.asarray(net.head2.bias)
    return {"classifier2": np.asarray(net.head2.weight), "bias2": bias}


def terminal_epoch(train_error: np.ndarray) -> int:
    """The first epoch (1-based) from which the training error is 0 to the end; -1 if none."""
    nonzero = np.flatnonzero(~(train_error == 0))
    if nonzero.size == 0:
        return 1
    last = int(nonzero[-1]) + 1
    return last + 1 if last < train_error.size else -1


def network(data: Dataset, training: Training, parameters: np.ndarray) -> mlp.MLP:
    """The trained network rebuilt from a store's flat `parameters` vector."""
    net = build(data, training, jax.random.PRNGKey(0))
    params, rest = eqx.partition(net, eqx.is_inexact_array)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    values = np.asarray(parameters)[: flat.size]
    return eqx.combine(unravel(jnp.asarray(values, dtype=jnp.result_type(float))), rest)


def teach(data: Dataset, teacher: Training) -> Dataset:
    """`data` carrying the logits of a network trained on it with `teacher` (a plain, not a
    distilled, training), on its training and test inputs (batch norm with the training
    set's statistics): the targets of a distillation. ``Dataset.teacher`` records the
    teacher's settings and its final training and test errors."""
    if teacher.distill != "none":
        raise InputError(f"teacher: train it without distillation; got distill={teacher.distill!r}")
    result = run(data, teacher, record=(teacher.epochs,))
    net = network(data, teacher, result["parameters"])
    x, x_test = (jnp.asarray(a, dtype=jnp.result_type(float)) for a in (data.x_train, data.x_test))
    logits = np.asarray(net.features(x, reference=x)[1])
    logits_test = np.asarray(net.features(x_test, reference=x)[1])
    last = result["records"][-1]
    about = {"training": teacher.as_dict()} | {k: last[k] for k in ("train_error", "test_error")}
    return data.with_teacher(logits, logits_test, about)
