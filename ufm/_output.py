"""What ufm writes: strict JSON (null for nan and inf) and files replaced atomically, their
paths checked before any work is done.

Every JSON document ufm writes (``solve --json/--out``, ``sweep --json``, ``verify --json``,
``metrics --json/--out``) goes through `dumps`: non-finite floats become null (the
reports say why a value is undefined) and ``allow_nan=False`` makes a bare NaN or
Infinity an error instead of invalid JSON.
"""

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError


def jsonable(value: Any) -> Any:
    """`value` as JSON can hold it: non-finite floats as None, numpy and jax scalars and
    arrays as Python numbers and lists, tuples as lists, paths as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic) or hasattr(value, "__array__"):
        return jsonable(np.asarray(value).tolist())
    raise TypeError(f"ufm cannot write a {type(value).__name__} as JSON: {value!r}")


def dumps(value: Any) -> str:
    """Strict JSON text (indented): nan and inf are written as null."""
    return json.dumps(jsonable(value), indent=2, allow_nan=False)


def check_writable(path: Path, flag: str) -> None:
    """An InputError naming `flag` unless a result can be written to `path`: it is not a
    directory, its parent is an existing directory where a file can be created (a probe
    file is created and removed) on a device with free space; or it is an existing
    writable device or pipe (``/dev/stdout``), written in place. A disk that fills up
    later shows only when the result is written (`write_text` cleans up)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{flag}: {str(path)!r} is a directory; give a file name")
    if path.exists() and not path.is_file():
        if not os.access(path, os.W_OK):
            raise InputError(f"{flag}: {str(path)!r} is not writable")
        return
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"{flag}: directory {str(parent)!r} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
        full = os.statvfs(parent).f_bfree == 0
    except OSError as error:
        raise InputError(
            f"{flag}: cannot create a file in {str(parent)!r} ({error.strerror or error})"
        ) from None
    if full:
        raise InputError(f"{flag}: no space left on the device of {str(parent)!r}")


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically: a temporary file beside it, then a rename, so
    `path` holds the old or the new content, never a part; on a failure (a full disk)
    the temporary file is removed and the OSError raised. A device or pipe is written
    in place."""
    _write(Path(path), lambda f: f.write(text.encode()))


def write_npz(path: Path, arrays: dict[str, Any]) -> None:
    """`np.savez` to exactly `path`, atomically (see `write_text`)."""
    _write(Path(path), lambda f: np.savez(f, **arrays))


def _write(path: Path, fill) -> None:
    if path.exists() and not path.is_file():
        with open(path, "wb") as f:
            fill(f)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            fill(f)
        _commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _commit(tmp: Path, path: Path) -> None:
    """The atomic step: `tmp` becomes `path` (a rename within one directory)."""
    os.replace(tmp, path)
