"""Memory budgets: a problem, a sweep or a metrics run that cannot fit in this machine's
memory is refused up front, before anything big is allocated, with an InputError that names
the parameters, the estimated need and what the machine has.

The estimates count float64 numbers and are meant to be right within a factor of about two,
on the generous side. Measured on CPU (peak RSS less the 0.37 GB of a tiny solve), plain
UFM, K=10, n=2000, d=512: CE 1.6 GB at one restart and 8.0 GB at four, MSE 0.6 GB;
estimated 2.5, 8.9 and 1.0 GB. They are computed from the
hyperparameters alone (`check_hypers`, `check_sweep`, `check_metrics`: before `ufm.make`,
which itself allocates O(N) labels or O(K^2) mixup columns) or from a built problem through
``jax.eval_shape`` of its init (`check_problem`, in `ufm.solve`). A value that cannot be
read as a size is left to the validation that follows.
"""

import dataclasses
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import InputError

FLOAT = 8  # bytes per number: ufm computes in float64
PER_POINT = 32_000  # host bytes per sweep point: its problem, theory and leaves (~18 kB measured)
PER_RESULT = 2_000  # host bytes per sweep point and seed: result columns, store, dataset


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Numbers of float64 entries of one problem."""

    unknowns: int  # per start: every parameter the solver owns
    features: int  # of which the features H (eliminated in closed form for MSE)
    logits: int  # K x columns: the logits, their gradient and the one-hot labels
    classes: int  # K: the theory and the check form K x K Grams
    data: int = 0  # the problem's own arrays (H0, soft labels, columns)
    ridge: bool = False  # features solved in closed form (MSE): `solve(eliminate=True)` applies


# ---------------------------------------------------------------------------------------
# What the machine has


def available() -> tuple[int | None, str]:
    """(bytes available, where the number comes from): the least of the host's
    MemAvailable (/proc/meminfo; else sysconf), a cgroup limit and an accelerator's free
    memory. (None, ...) when none is known."""
    found = [x for x in (_meminfo(), _cgroup(), _device()) if x[0] is not None]
    if not found:
        return None, "unknown"
    return min(found, key=lambda x: x[0])


def _meminfo() -> tuple[int | None, str]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "available memory (MemAvailable)"
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(pages), "available physical memory"
    except (ValueError, OSError, AttributeError):
        return None, ""


def _cgroup() -> tuple[int | None, str]:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None, ""
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        return max(int(limit) - used, 0), "memory left under this cgroup's limit"
    except (OSError, ValueError):
        return None, ""


def _device() -> tuple[int | None, str]:
    """Free memory of the default accelerator (None on CPU, where the host's counts)."""
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return None, ""
    stats = device.memory_stats() or {}
    if "bytes_limit" not in stats:
        return None, ""
    free = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
    return int(free), f"free memory of {device.device_kind}"


def human(nbytes: float) -> str:
    """1.5 GB, 40 TB, ...: bytes in powers of 1000."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(nbytes) < 1000 or unit == "PB":
            return f"{nbytes:.3g} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1000
    return f"{nbytes:.3g} EB"


def _refuse(what: str | Callable[[], str], need: float, detail: str, hint: str) -> None:
    """An InputError if `need` bytes exceed what is available (`what`: the subject of the
    message, or a function that makes it: only called on a refusal)."""
    have, source = available()
    if have is None or need <= have:
        return
    what = what if isinstance(what, str) else what()
    raise InputError(
        f"{what} would need about {human(need)} of memory ({detail}); this machine has "
        f"{human(have)} ({source}); {hint}"
    )


# ---------------------------------------------------------------------------------------
# Solving one problem


def solve_bytes(s: Sizes, restarts: int, method: str, memory_size: int, eliminate: bool) -> int:
    """Peak bytes of `ufm.solve` and `ufm.check` on a problem of sizes `s`: per start the
    optimizer's state (L-BFGS: 2 memory_size vectors, line search and autodiff copies;
    eliminated features only a few copies) and the logits, then the check's copies."""
    per_vector = 2 * memory_size + 20 if method == "lbfgs" else 20
    owned = s.unknowns - s.features if eliminate else s.unknowns
    free = s.features if eliminate else 0
    per_start = per_vector * owned + 8 * free + 3 * s.logits
    check = 4 * s.unknowns + 2 * s.logits + 6 * s.classes**2
    return FLOAT * (restarts * per_start + check + s.data)


def check_problem(problem, options: dict[str, Any], eliminate: bool = True) -> Sizes | None:
    """Refuse a built problem whose solve cannot fit (sizes by ``jax.eval_shape`` of its
    init: nothing is allocated). `options`: ``check_options``'s restarts, method,
    memory_size. Returns the sizes (None for a layout it cannot read), so the caller need
    not trace the init again."""
    try:
        shapes = _init_shapes(problem)
        sizes = problem_sizes(problem, shapes)
    except (AttributeError, KeyError, TypeError, IndexError):
        return None  # not the usual layout (a model of one's own): nothing to estimate
    eliminate = bool(eliminate) and bool(problem.eliminates_features())
    _check_solve(sizes, options, eliminate, lambda: _describe(problem.hyperparameters()))
    return sizes


def _init_shapes(problem):
    import jax
    import jax.numpy as jnp

    scale = jnp.asarray(1.0, problem.lambda_H.dtype)
    return jax.eval_shape(problem.init, jax.random.PRNGKey(0), scale)


def problem_sizes(problem, shapes=None) -> Sizes:
    """The sizes of a built problem; `shapes`: those of its init, if already traced."""
    shapes = _init_shapes(problem) if shapes is None else shapes
    import jax

    unknowns = sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))
    H = jax.eval_shape(problem.feature_columns, shapes).shape  # params["H"] unless a model maps
    K = int(problem.K)
    return Sizes(unknowns, math.prod(H), K * H[1], K)


def _check_solve(sizes: Sizes, options: dict[str, Any], eliminate: bool, describe) -> None:
    """`describe()`: the problem's sizes in words (made only for a refusal)."""
    restarts, method = int(options["restarts"]), options["method"]
    need = solve_bytes(sizes, restarts, method, int(options["memory_size"]), eliminate)
    detail = (
        f"{sizes.unknowns:.3g} unknowns and {sizes.logits:.3g} logits per start, "
        f"restarts={restarts}"
    )
    if method == "lbfgs":
        detail += f", memory_size={int(options['memory_size'])}"
    what = lambda: f"this problem ({describe()})"
    _refuse(what, need, detail, "use smaller sizes or fewer restarts")


def _describe(hyper: dict[str, Any]) -> str:
    keys = ("loss", "K", "n", "d", "depth", "classifier", "mix")
    words = []
    for k in keys:
        if k in hyper and hyper[k] is not None:
            v = hyper[k]
            shown = f"{len(v)} counts summing to {sum(v)}" if isinstance(v, list | tuple) else v
            words.append(f"{k}={shown}")
    return ", ".join(words)


# ---------------------------------------------------------------------------------------
# From hyperparameters, before ufm.make


def hyper_sizes(model: str, hyper: dict[str, Any]) -> Sizes | None:
    """Sizes of ``ufm.make(model, **hyper)`` without building it (defaults filled in);
    None when a value is not a usable size (make's validation then reports it) or the
    sizes come from a file (vicinity's H0: the problem-based check sees them)."""
    from .registry import REGISTRY

    values = _filled(model, hyper)
    if values is None:
        return None
    try:
        return REGISTRY[model].sizes(values)
    except (TypeError, ValueError, KeyError, OverflowError, InputError):
        return None


def _filled(model: str, hyper: dict[str, Any]) -> dict[str, Any] | None:
    """`hyper` with the model's defaults filled in (None for an unknown model)."""
    from .registry import REGISTRY

    if model not in REGISTRY:
        return None
    return {h.name: h.default for h in REGISTRY[model].hypers} | dict(hyper)


def positive(value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(value)
    return int(value)


def total(n, K: int) -> int:
    if isinstance(n, list | tuple):
        return sum(positive(x) for x in n)
    return positive(n) * K


def check_hypers(model: str, hyper: dict[str, Any], options: dict[str, Any]) -> None:
    """Refuse ``ufm.solve(ufm.make(model, **hyper), **options)`` if it cannot fit, before
    make allocates anything. `options` holds restarts, method, memory_size (and
    optionally eliminate)."""
    sizes = hyper_sizes(model, hyper)
    if sizes is None:
        return
    eliminate = options.get("eliminate", True) and sizes.ridge
    _check_solve(sizes, _solver(options), eliminate, lambda: _describe(_filled(model, hyper)))


def _solver(options: dict[str, Any]) -> dict[str, Any]:
    """restarts, method, memory_size with `ufm.solve`'s defaults; a value that is not a
    positive integer counts as 1 (check_options reports it)."""
    out = {"restarts": 1, "method": "lbfgs", "memory_size": 3} | {
        k: options[k] for k in ("restarts", "method", "memory_size") if k in options
    }
    for k in ("restarts", "memory_size"):
        try:
            out[k] = positive(out[k])
        except (TypeError, ValueError, OverflowError):
            out[k] = 1
    return out


# ---------------------------------------------------------------------------------------
# A sweep


SHAPE = {"K", "n", "d", "depth", "loss", "bias", "classifier", "mix", "H0"}


def check_sweep(
    model: str,
    fixed: dict[str, Any],
    axes: list,
    seeds: list[int],
    chunk_size: int,
    options: dict[str, Any],
) -> None:
    """Refuse a sweep whose grid cannot fit: every point's problem and theory are held on
    the host, every point and seed has a row of results, and each chunk of `chunk_size`
    points is solved at once. `axes`: objects with ``name`` and ``values``."""
    points = math.prod(len(a.values) for a in axes)
    runs = points * len(seeds)
    solver = _solver(options)
    largest = _largest_point(model, fixed, axes)
    per_solve = 0
    if largest is not None:
        eliminate = options.get("eliminate", True) and largest.ridge
        per_solve = solve_bytes(largest, solver["restarts"], solver["method"],
                                solver["memory_size"], eliminate)  # fmt: skip
    held = 0
    if largest is not None:  # the problem's data, its theory's arrays and Grams
        held = FLOAT * (largest.data + 2 * largest.unknowns + 4 * largest.classes**2)
    need = points * (PER_POINT + held) + runs * PER_RESULT + min(chunk_size, runs) * per_solve
    sizes = ", ".join(f"{a.name}: {len(a.values)} values" for a in axes) or "no grid"
    detail = f"{points} grid points ({sizes}) x {len(seeds)} seeds, chunk_size={chunk_size}"
    _refuse("this sweep", need, detail, "use a coarser grid, fewer seeds or a smaller chunk_size")


def _largest_point(model: str, fixed: dict[str, Any], axes: list) -> Sizes | None:
    """The sizes of the grid's largest problem: the largest value of each numeric size
    axis, every value of the others (few: loss, mix, ...)."""
    import itertools

    choices = []
    for a in axes:
        if a.name not in SHAPE:
            continue
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in a.values)
        choices.append([(a.name, max(a.values))] if numeric else [(a.name, v) for v in a.values])
    best = None
    for combination in itertools.islice(itertools.product(*choices), 1000):
        s = hyper_sizes(model, dict(fixed) | dict(combination))
        if s is not None and (best is None or _floats(s) > _floats(best)):
            best = s
    return best


def _floats(s: Sizes) -> int:
    return s.unknowns + s.logits + s.classes**2 + s.data


# ---------------------------------------------------------------------------------------
# ufm metrics


def check_metrics(N: int, d: int, K: int | None, batch_size: int, has_W: bool) -> None:
    """Refuse `ufm metrics` on K classes of d features that cannot fit: the class
    statistics (K x d means, several working copies, W), the d x d within-class scatter,
    a batch of rows, and the pair statistics' blocks. K None (the distinct labels, at most
    N): only the K-free part is counted."""
    classes = K or 0
    block = min(classes, 1024)
    floats = (7 + has_W) * classes * (d + 2) + 4 * d * d + 6 * min(batch_size, N) * d
    floats += 12 * block * block
    named = f"--num-classes {K}, " if K else ""
    _refuse(
        "these metrics",
        FLOAT * floats,
        f"{named}d={d} features, --batch-size {batch_size}",
        "check --num-classes (classes without samples count too) or use a smaller --batch-size",
    )
