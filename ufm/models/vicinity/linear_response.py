"""First-order perturbation analysis of the vicinity UFM (Tirer, Huang, Niles-Weed, Thms 4.1-4.2).

At a minimizer (W, H) of f(.; H0), a change dH0 of H0 moves the minimizer by
dH = F[dH0] + O(|dH0|^2), with (derivations/vicinity.py step 5, canonical units)

    F = (I + S0/beta)^{-1}                     exact
    F ~ I - S0/beta                            Eq. 5, beta >> max(1/N, lambda_H), O(beta^-2)

where S0 is the Schur complement (H block minus the W coupling) of the Hessian of the
beta-free loss f_0 at (W, H). Everything is matrix-free: an operator maps a (d, N) array to a
(d, N) array, and the exact F is a conjugate-gradient solve. `dense` and `blocks` build
matrices (column-stacked vec, columns sorted by class) only when asked.
"""

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ... import metrics
from ...errors import InputError
from .problem import VicinityProblem
from .theory import eq5_spectrum, theorem_4_2

Operator = Callable[[jax.Array], jax.Array]
CG_TOL = 1e-13


def schur(problem: VicinityProblem, W: jax.Array, H: jax.Array) -> Operator:
    """S0[dH] = (W^T W dH + N lambda_H dH - M^T R - W^T M H) / N with R = W H - Y and
    M[dH] = (R dH^T + W dH H^T)(H H^T + N lambda_W I)^{-1} (the classifier's response)."""
    N, d = problem.N, problem.d
    R = W @ H - jax.nn.one_hot(problem.labels, problem.K, dtype=H.dtype).T
    A = H @ H.T + N * problem.lambda_W * jnp.eye(d, dtype=H.dtype)
    WtW = W.T @ W

    def apply(dH):
        M = jnp.linalg.solve(A, (R @ dH.T + W @ dH @ H.T).T).T  # A is symmetric
        return (WtW @ dH + N * problem.lambda_H * dH - M.T @ R - W.T @ M @ H) / N

    return apply


def response(
    problem: VicinityProblem, W: jax.Array, H: jax.Array, *, approximation: str = "exact"
) -> Operator:
    """F at the minimizer (W, H) of f(.; H0): ``"exact"`` (I + S0/beta)^{-1} by conjugate
    gradients (I + S0/beta is symmetric positive definite at a minimizer), or ``"eq5"``,
    the paper's large-beta form I - S0/beta."""
    S0 = schur(problem, W, H)
    beta = problem.beta
    if approximation == "eq5":
        return lambda dH: dH - S0(dH) / beta
    if approximation != "exact":
        raise InputError(f"approximation must be 'exact' or 'eq5'; got {approximation!r}")

    def apply(dH):
        maxiter = 10 * dH.size
        x, _ = jax.scipy.sparse.linalg.cg(
            lambda v: v + S0(v) / beta, dH, tol=CG_TOL, atol=0.0, maxiter=maxiter
        )
        return x

    return apply


def _base(problem: VicinityProblem) -> jax.Array:
    """The collapsed minimizer H* nearest to H0 (`VicinityProblem.collapsed_base`)."""
    base, _ = problem.collapsed_base()
    if base is None:
        raise InputError(
            "no collapsed minimizer to linearize at: the theory needs balanced classes and d >= K"
        )
    return jnp.asarray(base, dtype=problem.H0.dtype)


def at_base(problem: VicinityProblem, approximation: str = "exact") -> tuple[Operator, jax.Array]:
    """F at the collapsed minimizer H* nearest to H0, where f(.; H*) is minimized by
    (W*(H*), H*) (Cor 2.2): the setting of Thm 4.2. Returns (F, H*)."""
    H = _base(problem)
    return response(problem, problem.optimal_classifier(H), H, approximation=approximation), H


def _vec(X: jax.Array) -> jax.Array:
    return X.T.reshape(-1)  # column stacking: column i, row r -> i d + r


def _unvec(v: jax.Array, d: int) -> jax.Array:
    return v.reshape(-1, d).T


def dense(op: Operator, d: int, N: int, columns: np.ndarray | None = None) -> np.ndarray:
    """The matrix of `op` (d N x d N, column-stacked vec), or only the matrix columns that act
    on the sample columns `columns` of H. For small problems and tests."""
    cols = np.arange(N) if columns is None else np.asarray(columns)
    index = (cols[:, None] * d + np.arange(d)[None, :]).reshape(-1)
    basis = jnp.eye(d * N)[index]
    return np.asarray(_images(op, d)(basis)).T


@functools.lru_cache(maxsize=2)
def _images(op: Operator, d: int):
    """The jitted, vmapped `op` on vec'd inputs, made once per operator: a new closure per
    call would compile again for every block `blocks` asks of the same operator."""
    return jax.jit(jax.vmap(lambda v: _vec(op(_unvec(v, d)))))


def blocks(op: Operator, problem: VicinityProblem, k: int, k_other: int) -> np.ndarray:
    """The d n x d n block F_{k, k_other} of Eq. 6: class k_other's columns in, class k's out
    (balanced classes)."""
    n = problem.counts[0]
    d = problem.d
    column_block = dense(op, d, problem.N, columns=np.arange(k_other * n, (k_other + 1) * n))
    return column_block[k * d * n : (k + 1) * d * n]


def theorem_4_2_check(problem: VicinityProblem, *, rtol: float = 1e-9) -> dict[str, Any]:
    """Thm 4.2 at the problem's collapsed minimizer: Eq. 5's F, blocks F_00 and F_01, their
    extreme singular values and the rank of F_01, found against predicted; plus the full
    spectrum of F_00 against `vicinity.eq5_spectrum`."""
    K, n, d = problem.K, problem.counts[0], problem.d
    if d <= K:
        raise InputError(f"Thm 4.2 needs d > K; got d={d}, K={K}")
    lW, lH, beta = float(problem.lambda_W), float(problem.lambda_H), float(problem.beta)
    F, _ = at_base(problem, "eq5")
    diag = np.linalg.svd(blocks(F, problem, 0, 0), compute_uv=False)
    off = np.linalg.svd(blocks(F, problem, 0, 1), compute_uv=False)
    found = {
        "diag_max": float(diag[0]),
        "diag_min": float(diag[-1]),
        "off_max": float(off[0]),
        "off_rank": int(np.sum(off > rtol * max(off[0], 1e-300) + 1e-14)),
    }
    predicted = theorem_4_2(K, n, lW, lH, beta)
    spectrum = np.sort(
        np.concatenate([np.full(m, v) for v, m in eq5_spectrum(K, n, d, lW, lH, beta)])
    )
    errors = {k: abs(found[k] - predicted[k]) for k in ("diag_max", "diag_min", "off_max")}
    errors["spectrum"] = float(np.max(np.abs(np.sort(diag) - spectrum)))
    return {
        "found": found,
        "predicted": {k: float(v) for k, v in predicted.items()},
        "errors": errors,
        "holds": max(errors.values()) <= rtol and found["off_rank"] == 1,
        "diag_singular_values": diag,
        "off_singular_values": off,
    }


def first_order(problem: VicinityProblem) -> jax.Array:
    """H* + F[H0 - H*]: the minimizer to first order in the distance of H0 from its nearest
    collapsed minimizer H* (exact F at H*)."""
    return _first_order(problem, _base(problem))


@eqx.filter_jit
def _first_order(problem: VicinityProblem, base: jax.Array) -> jax.Array:
    F = response(problem, problem.optimal_classifier(base), base)
    return base + F(problem.H0 - base)


@eqx.filter_jit
def explicit_step(problem: VicinityProblem) -> jax.Array:
    """H0 - grad L(H0)/beta: the minimizer to first order in 1/beta
    (derivations/vicinity.py step 4)."""
    return problem.H0 - problem.reduced_gradient(problem.H0) / problem.beta


def nc1(problem: VicinityProblem, H) -> float:
    """Tr(Sigma_W)/Tr(Sigma_B) (the paper's Eq. 3) of features H with the problem's labels."""
    return float(metrics.nc1_trace(jnp.asarray(H), jnp.asarray(problem.labels), problem.K))


def nc1_report(problem: VicinityProblem, params: dict[str, Any]) -> dict[str, Any]:
    """``nc1_trace_H0``, ``nc1_trace`` of the solution, and both first-order predictions of
    ``nc1_trace`` (Tr Sigma_W / Tr Sigma_B, the paper's Eq. 3; `ufm.metrics.nc1_trace`)."""
    out: dict[str, Any] = {
        "nc1_trace_H0": nc1(problem, problem.H0),
        "nc1_trace": nc1(problem, params["H"]),
    }
    predicted = {
        "explicit_step": {
            "nc1_trace": nc1(problem, explicit_step(problem)),
            "valid": "first order in 1/beta: beta >> max(1/N, lambda_H)",
        }
    }
    base, distance = problem.collapsed_base()
    if base is not None and np.any(base):
        predicted["linear_response"] = {
            "nc1_trace": nc1(problem, first_order(problem)),
            "valid": "first order in the distance of H0 from a collapsed minimizer",
            "distance": distance,
        }
    return out | {"first_order": predicted}


def nc1_curve(problem: VicinityProblem, name: str, values, **solve_options) -> dict[str, Any]:
    """NC1 (trace ratio) of the minimizer as `name` (lambda_W, lambda_H or beta) runs over
    `values`, solved and predicted (`VicinityProblem.with_parameter` rebuilds each point;
    every point has the same shapes, so `ufm.solve` compiles once).

    Returns arrays over `values`: ``nc1`` (solved), ``nc1_H0``, ``linear_response`` and
    ``explicit_step`` (the two first-order predictions) and ``converged``."""
    from ...solve import solve

    rows = []
    for value in values:
        p = problem.with_parameter(name, float(value))
        sol = solve(p, **solve_options)
        report = nc1_report(p, sol.params)
        predicted = report["first_order"]
        rows.append(
            (
                report["nc1_trace"],
                report["nc1_trace_H0"],
                predicted.get("linear_response", {}).get("nc1_trace", np.nan),
                predicted["explicit_step"]["nc1_trace"],
                sol.converged,
            )
        )
    columns = ("nc1", "nc1_H0", "linear_response", "explicit_step", "converged")
    out = {key: np.array(col) for key, col in zip(columns, zip(*rows, strict=True), strict=True)}
    return {"parameter": name, "values": np.asarray(values, dtype=float)} | out
