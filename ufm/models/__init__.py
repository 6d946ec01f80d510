"""The registry behind `ufm.make` and the CLI: model name -> problem class."""

import warnings

import jax

from ..errors import InputError, PrecisionWarning
from ._base import AbstractProblem as AbstractProblem
from ._base import Hyper as Hyper
from .deep_linear import DeepLinearProblem as DeepLinearProblem
from .mixup import MixupProblem as MixupProblem
from .plain import PlainProblem as PlainProblem
from .vicinity import VicinityProblem as VicinityProblem

REGISTRY: dict[str, type[AbstractProblem]] = {
    "plain": PlainProblem,
    "deep-linear": DeepLinearProblem,
    "vicinity": VicinityProblem,
    "mixup": MixupProblem,
}


def make(name: str, **hyper) -> AbstractProblem:
    """Build a problem: ``ufm.make("plain", loss="ce", K=10, n=100, d=64, ...)``.

    Keywords are the model's hyperparameters (``ufm.models.REGISTRY[name].hypers``);
    an unknown model, an unknown keyword or a value out of range raises a one-line
    ValueError naming the parameter and what is allowed.
    """
    if name not in REGISTRY:
        raise InputError(f"model must be one of {', '.join(map(repr, REGISTRY))}; got {name!r}")
    if not jax.config.jax_enable_x64:
        warnings.warn(
            "float64 is off (jax_enable_x64 is False): this problem is built in float32, whose "
            "hyperparameters keep 7 digits and whose solves cannot reach ufm's default "
            'tolerance; run jax.config.update("jax_enable_x64", True) before ufm.make',
            PrecisionWarning,
            stacklevel=2,
        )
    cls = REGISTRY[name]
    allowed = [h.name for h in cls.hypers]
    for key in hyper:
        if key not in allowed:
            raise InputError(
                f"unknown parameter {key!r} for model {name!r}; allowed: {', '.join(allowed)}"
            )
    return cls.make(**hyper)
