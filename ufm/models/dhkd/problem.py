"""The distillation UFM (dual-head knowledge distillation, Yang et al., arXiv 2411.08937).

Free features H (d x N, columns sorted by class), a CE head (W, b) and, with heads="dual", a
second head (W2, b2) for the logit loss; heads="single" puts both losses on (W, b):

    f = (1/N) sum_i [gamma CE(W h_i + b, y_i) + alpha l(W' h_i + b', zt_i)]
        + lambda_W/2 (||W||^2 + ||W2||^2) + lambda_H/2 ||H||^2  [+ lambda_W/2 (|b|^2 + |b2|^2)]

(W' = W or W2). l is softmax KD, BinaryKL or BinaryKL-Norm with temperature T, as the official
code defines them (`losses`); zt_i are the teacher's logits (`teachers`). bias: "none", "free"
or "decayed" (the code's setting: its SGD weight decay reaches every parameter, biases
included). features: "free", or "nonnegative" (the code's pooled features are post-ReLU;
solved with bounds, converged on the projected gradient).

Theory (`theory`, ours): under a balanced collapsed teacher the global minimum is a convex
problem in two or three scalars, exact for free features and d >= the logits' rank, a lower
bound otherwise (d below it, nonnegative features). Other teachers: no closed form.
"""

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ... import _budget, _symmetry
from ... import _theory as th
from ...problem import AbstractCountedProblem, Hyper
from . import losses, teachers
from . import theory as reduction

HEADS = ("single", "dual")
BIASES = ("none", "free", "decayed")
FEATURES = ("free", "nonnegative")
DEFAULT_T = {"binary-kl": 2.0, "binary-kl-norm": 2.0, "kd": 4.0}  # BinaryKL_T, kd_T
DEFAULTS = {"K": 4, "n": 5}


def _as_arrays(values: dict) -> dict:
    return {k: jnp.asarray(v) for k, v in values.items()}


def _plain(value) -> float | int:
    """A teacher keyword back as the Python number it was given as (seeds and group sizes
    are integers)."""
    value = np.asarray(value)
    return int(value) if np.issubdtype(value.dtype, np.integer) else float(value)


class DhkdProblem(AbstractCountedProblem):
    """Distillation UFM: CE and a logit loss on one head or on two heads."""

    summary: ClassVar[str] = "Distillation UFM: CE and a logit loss (KD) on one head or two."
    name: ClassVar[str] = "dhkd"
    hypers: ClassVar[tuple[Hyper, ...]] = (
        Hyper("K", "int", None, "number of classes (>= 2; default: the teacher file's, else 4)"),
        Hyper("n", "counts", None, "samples per class (default: the teacher file's, else 5)"),
        Hyper("d", "int", 6, "feature dimension (>= 1)"),
        Hyper("lambda_W", "float", 5e-3, "weight decay on the heads (> 0)"),
        Hyper("lambda_H", "float", 5e-3, "weight decay on the features (> 0)"),
        Hyper("heads", "choice", "single", "both losses on one head, or two heads", HEADS),
        Hyper("logit_loss", "choice", "binary-kl", "the distillation loss", losses.LOGIT_LOSSES),
        Hyper("T", "float", None, "temperature (> 0; default 2 for binary-kl(-norm), 4 for kd)"),
        Hyper("gamma", "float", 1.0, "weight of CE (>= 0)"),
        Hyper("alpha", "float", 1.0, "weight of the logit loss (>= 0)"),
        Hyper("bias", "choice", "none", "head biases: none, free, or weight-decayed", BIASES),
        Hyper("features", "choice", "free", "free or nonnegative (post-ReLU) features", FEATURES),
        Hyper("teacher", "choice", "collapsed", "teacher logits", teachers.KINDS),
        Hyper("teacher_margin", "float", 4.0, "teacher's logit margin a_t (finite)"),
        Hyper("teacher_shift", "float", 2.0, "teacher's mean logit m (finite)"),
        Hyper("teacher_similarity", "float", 0.0, "dark teacher: same-group bonus / a_t"),
        Hyper("teacher_group", "int", 2, "dark teacher: classes per similarity group (>= 1)"),
        Hyper("teacher_noise", "float", 0.0, "dark teacher: noise std / a_t (>= 0)"),
        Hyper("teacher_mistakes", "float", 0.0, "dark teacher: fraction of wrong samples"),
        Hyper("teacher_seed", "int", 0, "dark teacher: seed"),
        Hyper("teacher_file", "path", None, "teacher='file': .npy (N x K) or .npz logits"),
    )

    counts: tuple[int, ...] = eqx.field(static=True)
    d: int = eqx.field(static=True)
    heads: str = eqx.field(static=True)
    logit_loss: str = eqx.field(static=True)
    bias: str = eqx.field(static=True)
    features: str = eqx.field(static=True)
    # how the teacher was made: its kind (and file) static, its numbers data (a sweep over
    # teacher_shift or teacher_mistakes compiles once); Zt holds the logits themselves
    origin: dict = eqx.field(static=True)
    teacher_values: dict = eqx.field(converter=_as_arrays)
    lambda_W: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    lambda_H: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    T: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    gamma: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    alpha: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    Zt: Float[Array, "K N"] = eqx.field(converter=jnp.asarray)

    @classmethod
    def make(cls, **hyper) -> "DhkdProblem":
        from .make import build  # validation lives beside the class, in make.py

        return build(cls, **hyper)

    @classmethod
    def claims(cls) -> tuple:
        from .claims import CLAIMS  # claims solve problems: imported when asked for

        return CLAIMS

    @classmethod
    def sizes(cls, values: dict[str, Any]) -> _budget.Sizes | None:
        if values.get("teacher_file") is not None:
            return None
        K = _budget.positive(DEFAULTS["K"] if values["K"] is None else values["K"])
        d = _budget.positive(values["d"])
        N = _budget.total(DEFAULTS["n"] if values["n"] is None else values["n"], K)
        heads = 2 if values["heads"] == "dual" else 1
        return _budget.Sizes(heads * K * (d + 1) + d * N, d * N, 2 * K * N, K)

    def hyperparameters(self) -> dict[str, Any]:
        return (
            {
                "K": self.K,
                "n": self.counts[0] if self.balanced else list(self.counts),
                "d": self.d,
                "lambda_W": float(self.lambda_W),
                "lambda_H": float(self.lambda_H),
                "heads": self.heads,
                "logit_loss": self.logit_loss,
                "T": float(self.T),
                "gamma": float(self.gamma),
                "alpha": float(self.alpha),
                "bias": self.bias,
                "features": self.features,
            }
            | self.origin
            | {k: _plain(v) for k, v in self.teacher_values.items()}
        )

    # ------------------------------------------------------------------------------------
    def head_logits(self, params: dict[str, Array]) -> tuple[Array, Array]:
        """(CE head logits, logit-loss head logits), each (K, N), biases included."""
        H = params["H"]
        Z = params["W"] @ H
        if self.bias != "none":
            Z = Z + params["b"][:, None]
        if self.heads == "single":
            return Z, Z
        Z2 = params["W2"] @ H
        if self.bias != "none":
            Z2 = Z2 + params["b2"][:, None]
        return Z, Z2

    def ce_term(self, params: dict[str, Array]) -> Float[Array, ""]:
        """(1/N) sum_i CE(z_i, y_i) on the CE head (unweighted)."""
        Z, _ = self.head_logits(params)
        Y = jax.nn.one_hot(self.labels, self.K, dtype=Z.dtype).T
        return jnp.mean(losses.cross_entropy(Z, Y))

    def logit_term(self, params: dict[str, Array]) -> Float[Array, ""]:
        """(1/N) sum_i l(z_i, zt_i) on the logit-loss head (unweighted)."""
        _, Z2 = self.head_logits(params)
        return jnp.mean(losses.logit_loss(self.logit_loss, Z2, self.Zt.astype(Z2.dtype), self.T))

    def penalty(self, params: dict[str, Array]) -> Float[Array, ""]:
        """The decays: lambda_W/2 on every head weight (and decayed bias), lambda_H/2 on H."""
        heads = [k for k in ("W", "W2") if k in params]
        if self.bias == "decayed":
            heads += [k for k in ("b", "b2") if k in params]
        value = self.lambda_W / 2 * sum(jnp.sum(params[k] ** 2) for k in heads)
        return value + self.lambda_H / 2 * jnp.sum(params["H"] ** 2)

    def loss(self, params: dict[str, Array]) -> Float[Array, ""]:
        data = self.gamma * self.ce_term(params) + self.alpha * self.logit_term(params)
        return data + self.penalty(params)

    def nonnegative(self) -> tuple[str, ...]:
        return ("H",) if self.features == "nonnegative" else ()

    def init(self, key: PRNGKeyArray, scale: Float[Array, ""]) -> dict[str, Array]:
        """Heads and features with i.i.d. N(0, scale^2/d) entries (|.| of them for
        nonnegative features); biases 0."""
        kW, kW2, kH = jax.random.split(key, 3)
        dtype = self.lambda_W.dtype
        std = scale / float(np.sqrt(self.d))
        H = std * jax.random.normal(kH, (self.d, self.N), dtype)
        params = {"W": std * jax.random.normal(kW, (self.K, self.d), dtype)}
        params["H"] = jnp.abs(H) if self.features == "nonnegative" else H
        if self.heads == "dual":
            params["W2"] = std * jax.random.normal(kW2, (self.K, self.d), dtype)
        if self.bias != "none":
            for key_ in ("b", "b2") if self.heads == "dual" else ("b",):
                params[key_] = jnp.zeros(self.K, dtype)
        return params

    def symmetry_tangents(self, params: dict[str, Array]) -> list[dict[str, Array]] | None:
        """O(d) on the feature space (free features only: H >= 0 is not rotation-invariant)."""
        if self.features == "nonnegative":
            return None
        if self.heads == "single":
            return _symmetry.rotation_tangents(params, left="W", right="H")
        stacked = dict(params) | {"W": jnp.concatenate([params["W"], params["W2"]])}
        out = _symmetry.rotation_tangents(stacked, left="W", right="H")
        for tangent in out:  # the two heads turn together
            tangent["W"], tangent["W2"] = tangent["W"][: self.K], tangent["W"][self.K :]
        return out

    # ------------------------------------------------------------------------------------
    def setting(self) -> "reduction.Setting | None":
        """The reduced problem's setting if the teacher is balanced and collapsed, else None."""
        found = teachers.symmetric(np.asarray(self.Zt, dtype=float), self.labels, self.K)
        if found is None or not self.balanced:
            return None
        margin, shift = found
        return reduction.Setting(
            self.K,
            self.counts[0],
            float(self.lambda_W),
            float(self.lambda_H),
            self.heads,
            self.logit_loss,
            float(self.T),
            float(self.gamma),
            float(self.alpha),
            self.bias,
            margin,
            shift,
        )

    def lower_bound(self) -> float | None:
        """The reduced minimum, a lower bound on the loss for every d and for nonnegative
        features (None where the teacher is not balanced and collapsed)."""
        s = self.setting()
        return None if s is None else reduction.reduced(s).loss

    def theory(self) -> th.Theory:
        from .predict import predict

        return predict(self)

    def extra_quantities(self, params: dict[str, Array]) -> dict[str, np.ndarray]:
        """The logit head's Gram ``W2_gram`` and logits ``logits2`` (dual), its bias ``b2``,
        and the CE head's ``common_mode_fraction``."""
        from .predict import head_quantities

        return head_quantities(self, {k: np.asarray(v, dtype=float) for k, v in params.items()})

    def extra_report(self, params: dict[str, Any], theory=None) -> dict[str, Any]:
        from .predict import report

        return {"dhkd": report(self, params)}

    @staticmethod
    def report_lines(section: dict[str, Any]) -> list[str]:
        from .predict import report_lines

        return report_lines(section)

    def data_arrays(self) -> dict[str, np.ndarray]:
        """The teacher's logits ``Zt`` (K x N), sorted by class as the solver sees them."""
        return {"Zt": np.asarray(self.Zt)}
