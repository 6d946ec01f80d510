"""The model registry behind `ufm.make`, the CLI, `ufm sweep` and `ufm verify`.

Three sources fill it, in this order:

1. ufm's own models (``plain``, ``deep-linear``, ``vicinity``, ``mixup``), imported on
   first use;
2. the ``ufm.models`` entry-point group of installed packages: a package declares
   ``[project.entry-points."ufm.models"] my-model = "my_package.module:MyProblem"`` and
   ``ufm`` finds it without being edited;
3. `register` at run time: ``ufm.register("my-model", MyProblem)``.

What a model class must provide is written in `ufm.problem.AbstractProblem` (and in
docs/contract.md). This module imports no model at import time.
"""

import importlib
import importlib.metadata
import re
import warnings
from collections.abc import Iterator, Mapping

import jax

from .errors import InputError, PrecisionWarning
from .problem import AbstractProblem

ENTRY_POINT_GROUP = "ufm.models"
NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")  # how a model is named on the command line

BUILTIN = {
    "plain": "ufm.models.plain:PlainProblem",
    "deep-linear": "ufm.models.deep_linear:DeepLinearProblem",
    "vicinity": "ufm.models.vicinity:VicinityProblem",
    "mixup": "ufm.models.mixup:MixupProblem",
}


def _load(target: str) -> type:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def validate(name: str, cls) -> None:
    """Refuse a model that would break `ufm.make` or the CLI, with the reason."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InputError(
            f"model name must be lowercase letters, digits and single hyphens "
            f"(e.g. 'label-smoothing'); got {name!r}"
        )
    if not (isinstance(cls, type) and issubclass(cls, AbstractProblem)):
        raise InputError(f"model {name!r}: the class must subclass ufm.problem.AbstractProblem")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise InputError(f"model {name!r}: {cls.__name__} leaves {', '.join(missing)} abstract")
    hypers = getattr(cls, "hypers", None)
    if not isinstance(hypers, tuple) or not hypers:
        raise InputError(f"model {name!r}: {cls.__name__}.hypers must be a tuple of ufm.Hyper")


class Registry(Mapping):
    """Model name -> problem class; a read-only mapping that loads models on first use."""

    def __init__(self) -> None:
        self._classes: dict[str, type[AbstractProblem]] = {}
        self._pending: dict[str, str] = dict(BUILTIN)
        self._entry_points_read = False

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._classes or ep.name in self._pending:
                warnings.warn(
                    f"entry point {ep.value!r} names model {ep.name!r}, which ufm already "
                    "has; it is ignored",
                    stacklevel=3,
                )
                continue
            self._pending[ep.name] = ep.value

    def _resolve(self, name: str) -> type[AbstractProblem]:
        target = self._pending.pop(name)
        try:
            cls = _load(target)
        except Exception as e:  # a broken plug-in must not take the other models down
            raise ImportError(f"model {name!r}: cannot import {target!r}: {e}") from e
        validate(name, cls)
        self._classes[name] = cls
        return cls

    def add(self, name: str, cls: type[AbstractProblem], replace: bool = False) -> None:
        validate(name, cls)
        self._read_entry_points()
        if not replace and (name in self._classes or name in self._pending):
            raise InputError(f"model {name!r} is registered already; pass replace=True")
        self._pending.pop(name, None)
        self._classes[name] = cls

    def remove(self, name: str) -> None:
        """Forget a model added with `register` (tests, notebooks)."""
        self._classes.pop(name, None)
        self._pending.pop(name, None)

    def __getitem__(self, name: str) -> type[AbstractProblem]:
        self._read_entry_points()
        if name in self._classes:
            return self._classes[name]
        if name in self._pending:
            return self._resolve(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        self._read_entry_points()
        return iter([*self._classes, *self._pending])

    def __len__(self) -> int:
        self._read_entry_points()
        return len(self._classes) + len(self._pending)

    def __contains__(self, name: object) -> bool:
        self._read_entry_points()
        return name in self._classes or name in self._pending


REGISTRY = Registry()


def register(name: str, cls: type[AbstractProblem], *, replace: bool = False) -> None:
    """Add a model: ``ufm.register("label-smoothing", LabelSmoothingProblem)``.

    From then on ``ufm.make(name, ...)``, `ufm.solve`, `ufm.sweep`, `ufm.check` and, for
    a model listed in the ``ufm.models`` entry-point group, the ``ufm`` command accept it.
    `cls` must subclass `ufm.problem.AbstractProblem` and implement what it leaves
    abstract (docs/contract.md); a taken name raises unless ``replace=True``.
    """
    REGISTRY.add(name, cls, replace=replace)


def make(name: str, **hyper) -> AbstractProblem:
    """Build a problem: ``ufm.make("plain", loss="ce", K=10, n=100, d=64, ...)``.

    Keywords are the model's hyperparameters (``ufm.REGISTRY[name].hypers``); an unknown
    model, an unknown keyword or a value out of range raises a one-line `ufm.InputError`
    naming the parameter and what is allowed.
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
