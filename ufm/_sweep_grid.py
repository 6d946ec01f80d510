"""The grid of a sweep: one `Axis` per hyperparameter, from ``--grid`` specs or lists."""

import dataclasses

import numpy as np

from ._sweep_store import COORD_NAMES
from .errors import InputError
from .registry import REGISTRY


@dataclasses.dataclass(frozen=True)
class Axis:
    """One grid dimension: a hyperparameter, its values, and how they are spaced."""

    name: str
    values: tuple
    spacing: str  # "log", "linear" or "list"

    @property
    def coord(self) -> str:
        return COORD_NAMES.get(self.name, self.name)


def parse_axis(text: str) -> tuple[str, list[str] | np.ndarray, str]:
    """``"lambda_W=1e-4:1:64:log"`` (START:STOP:NUM[:log|lin]) or ``"K=3,4,5"``.

    Returns (name, values, spacing); values are strings for a list (the model converts
    them) and floats for a range. A malformed spec raises a ValueError that says the form.
    """
    form = "NAME=START:STOP:NUM[:log|lin] or NAME=V1,V2,..."
    name, sep, spec = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name or not spec:
        raise InputError(f"--grid {text!r}: expected {form}")
    if ":" not in spec:
        return name, [v.strip() for v in spec.split(",")], "list"
    parts = spec.split(":")
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] not in ("log", "lin")):
        raise InputError(f"--grid {text!r}: expected {form}")
    try:
        start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise InputError(
            f"--grid {text!r}: START and STOP must be numbers, NUM an integer"
        ) from None
    log = len(parts) == 4 and parts[3] == "log"
    if num < 1:
        raise InputError(f"--grid {text!r}: NUM must be an integer >= 1; got {num}")
    if not (np.isfinite(start) and np.isfinite(stop)):
        raise InputError(f"--grid {text!r}: START and STOP must be finite")
    if log and (start <= 0 or stop <= 0):
        raise InputError(f"--grid {text!r}: a log range needs START > 0 and STOP > 0")
    values = np.geomspace(start, stop, num) if log else np.linspace(start, stop, num)
    return name, values, "log" if log else "linear"


def _axis(model: str, name: str, values, spacing: str | None) -> Axis:
    hyper = {h.name: h for h in REGISTRY[model].hypers}[name]
    convert = {"int": int, "counts": int, "float": float, "floats": float}.get(hyper.kind)
    if hyper.kind == "flag":
        convert = _flag
    return axis(name, values, spacing, convert, f"{hyper.kind} values ({hyper.help})")


def axis(name: str, values, spacing: str | None, convert, kind: str) -> Axis:
    """An Axis of `values` converted by `convert` (None: numpy scalars to Python ones); a
    spacing of None or "list" is inferred (log for positive numbers spanning 100x)."""
    if isinstance(values, str | bytes) or np.ndim(values) != 1 or len(values) == 0:
        raise InputError(f"grid {name!r}: expected a non-empty 1-D list of values; got {values!r}")
    try:
        values = tuple(
            convert(v) if convert else (v.item() if hasattr(v, "item") else v) for v in values
        )
    except (TypeError, ValueError):
        raise InputError(f"grid {name!r}: values must be {kind}; got {values!r}") from None
    if len(set(values)) != len(values):
        raise InputError(f"grid {name!r}: values repeat: {list(values)}")
    if spacing is None or spacing == "list":
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        positive = numeric and min(values) > 0
        spacing = "log" if positive and max(values) / min(values) >= 100 else "linear"
        spacing = spacing if numeric else "list"
    return Axis(name, values, spacing)


def seed_list(seeds) -> list[int]:
    """A count (0..S-1) or a list of distinct integers >= 0, as a list of ints."""
    if isinstance(seeds, bool):
        raise InputError(f"seeds must be a count >= 1 or a list of integers; got {seeds!r}")
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise InputError(f"seeds must be a count >= 1 or a list of integers; got {seeds!r}")
        return list(range(int(seeds)))
    out = list(seeds)
    if not out or not all(isinstance(s, int | np.integer) and s >= 0 for s in out):
        raise InputError(f"seeds must be a count >= 1 or a list of integers >= 0; got {seeds!r}")
    if len(set(out)) != len(out):
        raise InputError(f"seeds repeat: {out}")
    return [int(s) for s in out]


def _flag(v) -> bool:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    text = str(v).lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise InputError(v)
