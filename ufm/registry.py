"""The model registry behind `ufm.make`, the CLI, `ufm sweep` and `ufm verify`.

Three sources fill it, in this order:

1. ufm's own models (``plain``, ``deep-linear``, ``vicinity``, ``mixup``, ``dhkd``,
   ``next-token``), imported on first use;
2. the ``ufm.models`` entry-point group of installed packages: a package declares
   ``[project.entry-points."ufm.models"] my-model = "my_package.module:MyProblem"`` and
   ``ufm`` finds it without being edited;
3. `register` at run time: ``ufm.register("my-model", MyProblem)``.

What a model class must provide is written in `ufm.problem.AbstractProblem` (and in
docs/contract.md). This module imports no model at import time. A model that cannot be
loaded (its entry point's module fails to import, or its class breaks the contract) drops
out of the listing when it is first asked for; asking for it again raises the same
ImportError, naming the entry point and the cause; every other model keeps working.
"""

import importlib
import importlib.metadata
import re
import warnings
from collections.abc import Iterator, Mapping

import jax

from .errors import InputError, PrecisionWarning
from .problem import AbstractProblem, Hyper

ENTRY_POINT_GROUP = "ufm.models"
NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")  # how a model is named on the command line

BUILTIN = {
    "plain": "ufm.models.plain:PlainProblem",
    "deep-linear": "ufm.models.deep_linear:DeepLinearProblem",
    "vicinity": "ufm.models.vicinity:VicinityProblem",
    "mixup": "ufm.models.mixup:MixupProblem",
    "dhkd": "ufm.models.dhkd:DhkdProblem",
    "next-token": "ufm.models.next_token:NextTokenProblem",
}


def _load(target: str) -> type:
    """The object named by an entry point's value, ``"package.module:Attribute"``."""
    return importlib.metadata.EntryPoint(name="", value=target, group=ENTRY_POINT_GROUP).load()


def validate(name: str, cls) -> None:
    """Refuse a model that would break `ufm.make` or the CLI, with the reason."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InputError(
            f"model name must be lowercase letters, digits and single hyphens "
            f"(e.g. 'label-smoothing'); got {name!r}"
        )
    if not (isinstance(cls, type) and issubclass(cls, AbstractProblem)):
        raise InputError(f"model {name!r}: the class must subclass ufm.problem.AbstractProblem")
    missing = set(getattr(cls, "__abstractmethods__", ()))
    # equinox's AbstractVar / AbstractClassVar fields (AbstractClassProblem's counts, ...)
    missing |= set(getattr(cls, "__abstractvars__", ()))
    missing |= set(getattr(cls, "__abstractclassvars__", ()))
    if missing:
        raise InputError(
            f"model {name!r}: {cls.__name__} leaves {', '.join(sorted(missing))} abstract"
        )
    if not isinstance(getattr(cls, "name", None), str):
        raise InputError(f"model {name!r}: {cls.__name__}.name must be a string (the model name)")
    hypers = getattr(cls, "hypers", None)
    if not isinstance(hypers, tuple) or not hypers or not all(isinstance(h, Hyper) for h in hypers):
        raise InputError(
            f"model {name!r}: {cls.__name__}.hypers must be a non-empty tuple of ufm.Hyper"
        )


class Registry(Mapping):
    """Model name -> problem class; a read-only mapping that loads models on first use, in
    the order they were added (built-ins, entry points, `register`)."""

    def __init__(self) -> None:
        # name -> the class, or "module:attribute" until it is first asked for
        self._entries: dict[str, type[AbstractProblem] | str] = dict(BUILTIN)
        # name -> why it could not be loaded: it leaves the listing, asking for it repeats why
        self._broken: dict[str, str] = {}
        self._entry_points_read = False

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._entries:
                warnings.warn(
                    f"entry point {ep.value!r} names model {ep.name!r}, which ufm already "
                    "has; it is ignored",
                    stacklevel=3,
                )
                continue
            self._entries[ep.name] = ep.value

    def add(self, name: str, cls: type[AbstractProblem], replace: bool = False) -> None:
        validate(name, cls)
        self._read_entry_points()
        if not replace and name in self._entries:
            raise InputError(f"model {name!r} is registered already; pass replace=True")
        self._entries[name] = cls
        self._broken.pop(name, None)

    def remove(self, name: str) -> None:
        """Forget a model (tests, notebooks); a built-in comes back only in a new process."""
        self._entries.pop(name, None)
        self._broken.pop(name, None)

    def __getitem__(self, name: str) -> type[AbstractProblem]:
        self._read_entry_points()
        if name in self._broken:
            raise ImportError(self._broken[name])
        entry = self._entries[name]  # KeyError for an unknown name, as a mapping does
        if isinstance(entry, str):
            try:
                cls = _load(entry)
                validate(name, cls)
            except Exception as e:  # a broken plug-in must not take the other models down
                where = "" if name in BUILTIN else f" (entry point of group {ENTRY_POINT_GROUP!r})"
                self._broken[name] = (
                    f"model {name!r}: cannot load {entry!r}{where}: {type(e).__name__}: {e}"
                )
                del self._entries[name]
                raise ImportError(self._broken[name]) from e
            self._entries[name] = entry = cls
        return entry

    def items(self) -> list[tuple[str, type[AbstractProblem]]]:  # pyright: ignore
        """(name, class) of every model that loads; one that does not is left out with a
        warning that says why (the `ufm` command and `ufm verify` list models this way, so
        a broken plug-in does not take the others down)."""
        out = []
        for name in list(self):
            try:
                out.append((name, self[name]))
            except ImportError as e:
                warnings.warn(f"{e}; it is left out", stacklevel=2)
        return out

    def values(self) -> list[type[AbstractProblem]]:  # pyright: ignore
        """The classes of `items`."""
        return [cls for _, cls in self.items()]

    def __iter__(self) -> Iterator[str]:
        self._read_entry_points()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._read_entry_points()
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        self._read_entry_points()
        return name in self._entries


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
    naming the parameter and what is allowed; a model whose plug-in cannot be loaded, an
    ImportError naming its entry point.
    """
    if name not in REGISTRY and name not in REGISTRY._broken:
        raise InputError(f"model must be one of {', '.join(map(repr, REGISTRY))}; got {name!r}")
    cls = REGISTRY[name]  # a plug-in that cannot be loaded: an ImportError that says why
    if not jax.config.jax_enable_x64:
        warnings.warn(
            "float64 is off (jax_enable_x64 is False): this problem is built in float32, whose "
            "hyperparameters keep 7 digits and whose solves cannot reach ufm's default "
            'tolerance; run jax.config.update("jax_enable_x64", True) before ufm.make',
            PrecisionWarning,
            stacklevel=2,
        )
    allowed = [h.name for h in cls.hypers]
    for key in hyper:
        if key not in allowed:
            raise InputError(
                f"unknown parameter {key!r} for model {name!r}; allowed: {', '.join(allowed)}"
            )
    return cls.make(**hyper)
