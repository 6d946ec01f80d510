"""`ufm.make("dhkd", ...)`: the keywords checked, the teacher built, the problem made."""

import math
import numbers

import numpy as np

from ... import _checks
from ...errors import InputError
from . import losses, teachers
from .problem import BIASES, DEFAULT_T, DEFAULTS, FEATURES, HEADS


def finite(name: str, value) -> float:
    """Any finite real number (the teacher's shift may be negative)."""
    value = _checks._scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number; got {value!r}")
    return float(value)


def _teacher(hyper: dict, K, n, d, lambdas) -> tuple[np.ndarray, tuple[int, ...], dict]:
    """(Zt, counts, the teacher's keywords for `hyperparameters`)."""
    kind = _checks.choice("teacher", hyper["teacher"], teachers.KINDS)
    margin = finite("teacher_margin", hyper["teacher_margin"])
    shift = finite("teacher_shift", hyper["teacher_shift"])
    dark = {
        "similarity": finite("teacher_similarity", hyper["teacher_similarity"]),
        "group": _checks.integer("teacher_group", hyper["teacher_group"], 1),
        "noise": _checks.real("teacher_noise", hyper["teacher_noise"], positive=False),
        "mistakes": _checks.real("teacher_mistakes", hyper["teacher_mistakes"], positive=False),
        "seed": _checks.integer("teacher_seed", hyper["teacher_seed"], 0),
    }
    if dark["mistakes"] > 1:
        raise InputError(f"teacher_mistakes must be in [0, 1]; got {dark['mistakes']!r}")
    path = hyper["teacher_file"]
    if (kind == "file") != (path is not None):
        raise InputError("teacher_file is needed exactly when teacher='file'")
    origin = {"teacher": kind}
    if kind == "file":
        Zt, counts = teachers.from_file(path, K)
        if n is not None and tuple(_checks.counts(n, len(counts))) != counts:
            raise InputError(f"n={n!r} does not match the teacher file's class counts {counts}")
        return Zt, counts, origin | {"teacher_file": str(path)}
    K = _checks.integer("K", DEFAULTS["K"] if K is None else K, 2)
    counts = _checks.counts(DEFAULTS["n"] if n is None else n, K)
    origin |= {"teacher_margin": margin, "teacher_shift": shift}
    if kind == "collapsed":
        return teachers.collapsed(K, counts, margin, shift), counts, origin
    if kind == "ce":
        return (
            _ce_teacher(K, counts, d, lambdas, shift),
            counts,
            {"teacher": kind, "teacher_shift": shift},
        )
    Zt = teachers.dark(K, counts, margin, shift, **dark)
    return Zt, counts, origin | {f"teacher_{k}": v for k, v in dark.items()}


def _ce_teacher(K, counts, d, lambdas, shift) -> np.ndarray:
    """The plain CE UFM's minimizer logits (same K, n, d, decays) plus the shift."""
    from ..plain.problem import PlainProblem

    n = counts[0] if len(set(counts)) == 1 else list(counts)
    plain = PlainProblem.make(loss="ce", K=K, n=n, d=d, lambda_W=lambdas[0], lambda_H=lambdas[1])
    t = plain.theory()
    if not t.applicable:
        raise InputError(f"teacher='ce': the plain CE UFM has no closed form here ({t.reason})")
    labels = np.repeat(np.arange(K), counts)
    return shift + np.asarray(t.quantities["logits"], dtype=float)[:, labels]


def build(cls, **hyper):
    """Validate every keyword of `ufm.make("dhkd", ...)` (defaults from cls.hypers) and
    build the problem."""
    values = {h.name: h.default for h in cls.hypers} | hyper
    d = _checks.integer("d", values["d"], 1)
    lambdas = tuple(_checks.real(k, values[k], positive=True) for k in ("lambda_W", "lambda_H"))
    heads = _checks.choice("heads", values["heads"], HEADS)
    logit_loss = _checks.choice("logit_loss", values["logit_loss"], losses.LOGIT_LOSSES)
    T = DEFAULT_T[logit_loss] if values["T"] is None else values["T"]
    T = _checks.real("T", T, positive=True)
    gamma = _checks.real("gamma", values["gamma"], positive=False)
    alpha = _checks.real("alpha", values["alpha"], positive=False)
    bias = _checks.choice("bias", values["bias"], BIASES)
    features = _checks.choice("features", values["features"], FEATURES)
    Zt, counts, origin = _teacher(values, values["K"], values["n"], d, lambdas)
    static = ("teacher", "teacher_file")
    numbers = {k: v for k, v in origin.items() if k not in static}
    return cls(
        counts=counts,
        d=d,
        heads=heads,
        logit_loss=logit_loss,
        bias=bias,
        features=features,
        origin={k: v for k, v in origin.items() if k in static},
        teacher_values=numbers,
        lambda_W=lambdas[0],
        lambda_H=lambdas[1],
        T=T,
        gamma=gamma,
        alpha=alpha,
        Zt=Zt,
    )
