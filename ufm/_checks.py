"""Validation of `ufm.make` keywords: one-line InputErrors naming the parameter and the range.

Python numbers, numpy scalars and 0-d arrays are accepted alike, and 1-D arrays where a
sequence is (counts, per-layer lambdas); bools are never numbers here."""

import math
import numbers
from collections.abc import Sequence

from .errors import InputError


def _scalar(value):
    """A 0-d numpy or jax array as its Python scalar (numpy users pass them); else as is."""
    if getattr(value, "shape", None) == () and hasattr(value, "dtype"):
        return value.item() if hasattr(value, "item") else value
    return value


def _sequence(value):
    """A 1-D numpy or jax array as a list (numpy integer arrays for counts); else as is."""
    if hasattr(value, "dtype") and getattr(value, "ndim", 0) == 1:
        return list(value.tolist())
    return value


def integer(name: str, value, minimum: int) -> int:
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def real(name: str, value, *, positive: bool) -> float:
    allowed = "a finite number > 0" if positive else "a finite number >= 0"
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be {allowed}; got {value!r}")
    x = float(value)
    if not math.isfinite(x) or x < 0 or (positive and x == 0):
        raise InputError(f"{name} must be {allowed}; got {value!r}")
    return x


def flag(name: str, value) -> bool:
    """True or False (numpy's bool_ and 0-d bool arrays too)."""
    value = _scalar(value)
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False; got {value!r}")
    return value


def choice(name: str, value, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def counts(value, K: int) -> tuple[int, ...]:
    """n as one count per class (balanced) or a sequence of K counts (imbalanced)."""
    value = _sequence(_scalar(value))
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (integer("n", value, 1),) * K
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InputError(
            f"n must be a positive integer or a sequence of K={K} of them; got {value!r}"
        )
    if len(value) != K:
        raise InputError(f"n must have K={K} entries (one count per class); got {len(value)}")
    return tuple(integer(f"n[{k}]", v, 1) for k, v in enumerate(value))


def reals(name: str, value, count: int) -> tuple[float, ...]:
    """One positive number for all `count` layers, or a sequence of exactly `count`."""
    value = _sequence(_scalar(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (real(name, value, positive=True),) * count
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != count:
        raise InputError(
            f"{name} must be a finite number > 0 or a sequence of depth={count} of them; "
            f"got {value!r}"
        )
    return tuple(real(f"{name}[{m}]", v, positive=True) for m, v in enumerate(value))
