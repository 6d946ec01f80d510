"""A census of the stationary points a model's loss landscape holds: `ufm.landscape`.

Many restarts run as one vmapped, jitted computation (the loop of `ufm.solve`: its
`restart_keys`, `starts` and `run_start`), and every restart is kept, not only the best.
The converged ones are grouped into distinct stationary points: two restarts are one point
when their losses agree to `loss_rtol` (relative) and their rotation-invariant fingerprints
to `invariant_rtol` (the singular values of the class-mean logits W Hbar and, for deep
models, of every factor W_m). Restarts that did not converge are counted, never classified.

At one representative of each group (the member with the smallest gradient) the bottom of
the Hessian spectrum is computed (`ufm._hessian`: dense below 2000 unknowns, else Lanczos on
Hessian-vector products), with the zeros of the model's continuous symmetry (its
`symmetry_tangents`, e.g. O(d) on the feature space) counted apart. Each group is then

    saddle            a negative eigenvalue (index k: how many);
    degenerate        no negative eigenvalue, a zero one the symmetry does not explain;
    global_minimum    neither, at the lowest loss (the lowest stationary loss found, or
                      `problem.theory().loss` where that is lower: it is attained by the
                      closed form's own point);
    spurious_minimum  neither, at a higher loss.

Descent rarely stops at saddles, so `points` classifies given parameters (the zero point
W = H = 0, a theory's candidate) with the same analysis; a given point whose gradient is
above the solver's tolerance is reported as ``not_stationary``.
"""

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _budget, _hessian, _output
from ._solution import RESULTS
from .check import found_quantities
from .errors import InputError
from .solve import DEFAULT_GTOL, _number, check_options, restart_keys, run_start, starts, tolerance

LOSS_RTOL = 1e-8  # losses of one stationary point agree to ~1e-13 at gtol 1e-9; distinct
# points closer than this in loss are told apart by their invariants
INVARIANT_RTOL = 1e-4  # fingerprints converge like the distance to the point (gtol-ish)
INVARIANT_FLOOR = 1e-3  # ... relative to max(|a|, |b|, this): the zero point's are ~1e-10
HESSIAN_METHODS = ("auto", "dense", "lanczos")
KINDS = ("global_minimum", "spurious_minimum", "saddle", "degenerate", "not_stationary")


@dataclasses.dataclass(frozen=True)
class Group:
    """One stationary point: a group of restarts, or a given point (`name` set, count 0).

    loss: at the representative; loss_spread: max - min over the members. count, fraction:
    members, and members over all restarts. invariants: the fingerprint (``logits_sv``,
    ``W<m>_sv``). spectrum: `ufm._hessian.Spectrum` at the representative. kind: one of
    `KINDS`. params: the representative's parameters (numpy). members: restart indices.
    """

    loss: float
    loss_spread: float
    count: int
    fraction: float
    grad_norm: float
    stationary: bool
    invariants: dict[str, np.ndarray]
    spectrum: _hessian.Spectrum
    kind: str
    params: dict[str, np.ndarray]
    members: tuple[int, ...] = ()
    name: str | None = None

    @property
    def index(self) -> int:
        return self.spectrum.index

    def summary(self) -> dict[str, Any]:
        out = {
            "loss": self.loss,
            "loss_spread": self.loss_spread,
            "count": self.count,
            "fraction": self.fraction,
            "grad_norm": self.grad_norm,
            "stationary": self.stationary,
            "kind": self.kind,
            "index": self.index,
            "hessian": self.spectrum.summary(),
            "invariants": {k: np.asarray(v).tolist() for k, v in self.invariants.items()},
        }
        return ({"name": self.name} if self.name is not None else {}) | out


@dataclasses.dataclass(frozen=True)
class Landscape:
    """What `landscape` found. groups: the stationary points the restarts reached, by
    ascending loss; points: the given points, analysed the same way. converged: restarts
    that met the tolerance (the others are in no group). reference_loss: the loss a
    ``global_minimum`` has (see the module docstring); theory_loss: ``problem.theory()``'s,
    None where it does not apply. restart_losses / restart_converged: every restart."""

    model: str
    parameters: dict[str, Any]
    restarts: int
    converged: int
    groups: tuple[Group, ...]
    points: tuple[Group, ...]
    reference_loss: float | None
    theory_loss: float | None
    restart_losses: np.ndarray
    restart_converged: np.ndarray
    options: dict[str, Any]
    seconds: dict[str, float]

    def of_kind(self, kind: str) -> list[Group]:
        """The groups (not the given points) classified as `kind`."""
        return [g for g in self.groups if g.kind == kind]

    def describe(self) -> str:
        """One line: 'global_minimum x41 (loss 0.495, index 0), saddle zero (loss 0.5, ...)'."""
        parts = []
        for g in self.groups + self.points:
            who = f" {g.name}" if g.name is not None else f" x{g.count}"
            parts.append(f"{g.kind}{who} (loss {g.loss:.6g}, index {g.index})")
        return ", ".join(parts)

    def summary(self) -> dict[str, Any]:
        """Strict-JSON-safe: numbers, lists, strings and None (nan and inf become None)."""
        return _output.jsonable(
            {
                "model": self.model,
                "parameters": self.parameters,
                "restarts": self.restarts,
                "converged": self.converged,
                "unconverged": self.restarts - self.converged,
                "reference_loss": self.reference_loss,
                "theory_loss": self.theory_loss,
                "counts": {k: len(self.of_kind(k)) for k in KINDS},
                "groups": [g.summary() for g in self.groups],
                "points": [p.summary() for p in self.points],
                "options": self.options,
                "seconds": self.seconds,
            }
        )


@eqx.filter_jit
def _all_restarts(problem, keys, scales, *options):
    """`ufm.solve`'s vmapped restarts, every one returned: (params, loss, grad_norm, result)."""
    run = lambda p: run_start(problem, p, *options)
    params, loss, grad_norm, _, result = jax.vmap(run)(starts(problem, keys, scales))
    return params, loss, grad_norm, result


def invariants(problem, params: dict) -> dict[str, np.ndarray]:
    """The fingerprint of a point that no symmetry changes: the singular values of the
    class-mean logits W Hbar (``logits_sv``) and of every deep factor W_m (``W<m>_sv``)."""
    out = {"logits_sv": found_quantities(problem, params)["logits_sv"]}
    for m, layer in enumerate(problem.layers(params), start=1):
        out[f"W{m}_sv"] = np.linalg.svd(np.asarray(layer["W"], dtype=float), compute_uv=False)
    return out


def _close(a: float, b: float, rtol: float) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b), np.finfo(float).tiny)


def _same(a: dict, b: dict, rtol: float) -> bool:
    x = np.concatenate([np.ravel(a[k]) for k in sorted(a)])
    y = np.concatenate([np.ravel(b[k]) for k in sorted(b)])
    scale = max(np.linalg.norm(x), np.linalg.norm(y), INVARIANT_FLOOR)
    return x.shape == y.shape and float(np.linalg.norm(x - y)) <= rtol * scale


def group_restarts(losses, fingerprints: dict[int, dict], loss_rtol, invariant_rtol):
    """Restart indices in groups: each restart (by ascending loss) joins the first group
    whose first member's loss and fingerprint it matches, else starts a new group."""
    groups: list[list[int]] = []
    for i in sorted(fingerprints, key=lambda i: losses[i]):
        for members in groups:
            first = members[0]
            if _close(losses[i], losses[first], loss_rtol) and _same(
                fingerprints[i], fingerprints[first], invariant_rtol
            ):
                members.append(i)
                break
        else:
            groups.append([i])
    return groups


def _options(restarts, seed, gtol, max_steps, bottom, rtols: dict, hessian, solver: dict):
    """The options as plain Python values, or an InputError naming the first bad one."""
    options = check_options(restarts=restarts, gtol=gtol, max_steps=max_steps, **solver)
    options["seed"] = _number("seed", seed, int)
    options["bottom"] = _number("bottom", bottom, int)
    if options["bottom"] < 1:
        raise InputError(f"bottom must be an integer >= 1; got {bottom!r}")
    for name, value in rtols.items():
        options[name] = _number(name, value, float)
        if not 0 < options[name] < float("inf"):
            raise InputError(f"{name} must be a finite number > 0; got {value!r}")
    if hessian not in HESSIAN_METHODS:
        raise InputError(f"hessian must be one of {', '.join(map(repr, HESSIAN_METHODS))}; "
                         f"got {hessian!r}")  # fmt: skip
    options["hessian"] = hessian
    return options


def _given_points(problem, points) -> dict[str, dict]:
    """`points` (a mapping name -> params, or a sequence of params) checked against the
    shapes of ``problem.init``: an InputError naming the point otherwise."""
    if points is None:
        return {}
    if not isinstance(points, Mapping):
        points = {f"point{i}": p for i, p in enumerate(points)}
    shapes = jax.eval_shape(problem.init, jax.random.PRNGKey(0), jnp.asarray(1.0))
    want = {k: tuple(v.shape) for k, v in shapes.items()}
    out = {}
    for name, params in points.items():
        got = (
            {k: np.shape(v) for k, v in dict(params).items()}
            if isinstance(params, Mapping)
            else None
        )
        if got != want:
            raise InputError(f"points[{name!r}] must hold arrays of shapes {want}; got {got}")
        dtype = problem.weight_decay().dtype
        out[str(name)] = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    return out


def zero_point(problem) -> dict[str, np.ndarray]:
    """W = H = 0 (every parameter zero) in the problem's shapes: a critical point of every
    bias-free model here, whose gradient vanishes there (each term is a product of factors)."""
    shapes = jax.eval_shape(problem.init, jax.random.PRNGKey(0), jnp.asarray(1.0))
    return {k: np.zeros(v.shape) for k, v in shapes.items()}


def landscape(
    problem,
    restarts: int = 256,
    *,
    seed: int = 0,
    gtol: float = DEFAULT_GTOL,
    max_steps: int = 10_000,
    bottom: int = 6,
    points: Mapping[str, dict] | list[dict] | None = None,
    symmetry: Callable[[dict], list | None] | None = None,
    loss_rtol: float = LOSS_RTOL,
    invariant_rtol: float = INVARIANT_RTOL,
    zero_rtol: float = _hessian.ZERO_RTOL,
    hessian: str = "auto",
    init_scale: float = 1.0,
    init_spread: float = 2.0,
    method: str = "lbfgs",
    memory_size: int = 3,
    learning_rate: float = 1e-2,
) -> Landscape:
    """Census of the stationary points of `problem` (module docstring): `restarts` starts
    (keys from `seed`, init scales spread as in `ufm.solve`), run to `gtol`, grouped, and at
    each group's representative the Hessian's `bottom` smallest eigenvalues off the
    symmetry's orbit, its saddle index and its zero eigenvalues. `points`: parameters to
    classify as well (a mapping name -> params, or a list; `zero_point(problem)` gives
    W = H = 0). `symmetry`: params -> tangent pytrees, instead of the model's
    `symmetry_tangents`. A zero eigenvalue is one with |value| <= zero_rtol x
    ``problem.weight_decay()``. Bad input: an InputError naming the parameter (and one for
    a problem with nonnegative parameters, `_refuse_bounds`)."""
    _refuse_bounds(problem)
    solver = dict(method=method, memory_size=memory_size, init_scale=init_scale,
                  init_spread=init_spread, learning_rate=learning_rate)  # fmt: skip
    rtols = dict(loss_rtol=loss_rtol, invariant_rtol=invariant_rtol, zero_rtol=zero_rtol)
    options = _options(restarts, seed, gtol, max_steps, bottom, rtols, hessian, solver)
    given = _given_points(problem, points)
    if symmetry is not None and not callable(symmetry):
        raise InputError(f"symmetry must be a callable params -> tangents; got {symmetry!r}")
    _budget.check_problem(problem, options, True)
    start = time.perf_counter()
    params, losses, grads, converged = _run_restarts(problem, options)
    solved = time.perf_counter()
    tangents_of = symmetry or problem.symmetry_tangents
    analyse = lambda p: _hessian.spectrum(
        problem, p, tangents_of(p), options["bottom"], options["zero_rtol"], options["hessian"]
    )
    fingerprints = {i: invariants(problem, _pick(params, i)) for i in np.flatnonzero(converged)}
    groups = []
    for members in group_restarts(losses, fingerprints, loss_rtol, invariant_rtol):
        rep = min(members, key=lambda i: grads[i])
        groups.append(dict(loss=float(losses[rep]), grad_norm=float(grads[rep]),
                           stationary=True, invariants=fingerprints[rep],
                           spectrum=analyse(_pick(params, rep)), params=_pick(params, rep),
                           members=tuple(int(i) for i in sorted(members)),
                           loss_spread=float(np.ptp(losses[members]))))  # fmt: skip
    named = [_analyse_point(problem, name, p, options, analyse) for name, p in given.items()]
    theory = problem.theory()
    theory_loss = float(theory.loss) if theory.applicable and theory.loss is not None else None
    stationary = [g["loss"] for g in groups + named if g["stationary"]]
    reference = min(stationary + ([theory_loss] if theory_loss is not None else []), default=None)
    kind = lambda g: _classify(g, reference, options["loss_rtol"])
    total = options["restarts"]
    finish = lambda g, count: Group(count=count, fraction=count / total, kind=kind(g), **g)
    return Landscape(
        model=problem.name,
        parameters=problem.hyperparameters(),
        restarts=total,
        converged=int(converged.sum()),
        groups=tuple(finish(g, len(g["members"])) for g in groups),
        points=tuple(finish(g, 0) for g in named),
        reference_loss=reference,
        theory_loss=theory_loss,
        restart_losses=losses,
        restart_converged=converged,
        options=options,
        seconds={"restarts": solved - start, "analysis": time.perf_counter() - solved},
    )


def _refuse_bounds(problem) -> None:
    """An InputError for a problem with nonnegative parameters: at a bound, stationarity
    and the Hessian's spectrum (what the census reads) mean something else."""
    if problem.nonnegative():
        raise InputError(
            f"model {problem.name!r} has nonnegative parameters "
            f"({', '.join(problem.nonnegative())}); the landscape census is for "
            "unconstrained problems"
        )


def _run_restarts(problem, options: dict):
    """Every restart, on the host: (params with a leading axis, loss, grad_norm, converged)."""
    from .solve import problem_dtype

    dtype = problem_dtype(problem)
    keys, scales = restart_keys(options["seed"], options["restarts"], options["init_scale"],
                                options["init_spread"], dtype)  # fmt: skip
    params, loss, grad_norm, result = _all_restarts(
        problem, keys, scales, jnp.asarray(options["learning_rate"], dtype),
        jnp.asarray(options["gtol"], dtype), options["method"], options["max_steps"],
        options["memory_size"], True,
    )  # fmt: skip
    converged = np.asarray(result._value) == np.asarray(RESULTS.successful._value)
    params = {k: np.asarray(v) for k, v in params.items()}
    return params, np.asarray(loss, dtype=float), np.asarray(grad_norm, dtype=float), converged


def _pick(params: dict, i: int) -> dict[str, np.ndarray]:
    return {k: v[i] for k, v in params.items()}


def _analyse_point(problem, name: str, params: dict, options: dict, analyse) -> dict:
    """A given point: its loss, gradient, stationarity (the solver's test), fingerprint and
    Hessian spectrum, as the fields of a `Group`."""
    import optax.tree_utils as otu  # on first use: optax is not needed to import ufm

    loss, grad = jax.value_and_grad(problem.loss)(params)
    grad_norm = float(otu.tree_norm(grad))
    tol = float(tolerance(problem, params, jnp.asarray(options["gtol"])))
    host = {k: np.asarray(v) for k, v in params.items()}
    return dict(loss=float(loss), grad_norm=grad_norm, stationary=grad_norm <= tol,
                invariants=invariants(problem, host), spectrum=analyse(host), params=host,
                name=name, loss_spread=0.0)  # fmt: skip


def _classify(group: dict, reference: float | None, loss_rtol: float) -> str:
    spectrum = group["spectrum"]
    if not group["stationary"]:
        return "not_stationary"
    if spectrum.index > 0:
        return "saddle"
    if spectrum.unexplained_zeros > 0:
        return "degenerate"
    lowest = reference is None or group["loss"] <= reference + loss_rtol * max(
        abs(reference), 1e-300
    )
    return "global_minimum" if lowest else "spurious_minimum"
