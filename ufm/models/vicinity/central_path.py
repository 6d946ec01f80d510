"""The central path of the vicinity UFM: gradient flow of the reduced loss (Tirer, Huang &
Niles-Weed 2023, Thm 3.1).

With the classifier at its optimum W*(H), the beta-free loss is L(H) = f_0(W*(H), H), and
the minimizer of f(.; H0) is one backward-Euler step of size 1/beta of the flow

    dH/dtau = -grad L(H),   H(0) = H0

(the paper's Eq. 4 in canonical time: tau = N t, t = 1/beta^T; the gradient of L is
derivations/vicinity.py step 2, the backward-Euler step its step 4). Thm 3.1: along the flow,
NC1 = Tr(Sigma_W) / Tr(Sigma_B) strictly decreases, e^{2 lambda_H tau} Tr(Sigma_W) decreases and
e^{2 lambda_H tau} Tr(Sigma_B) strictly increases (lambda_W > 0, Sigma_W(H0) != 0).
The flow is integrated with diffrax (Tsit5, adaptive steps).
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float

from ... import metrics
from .problem import VicinityProblem

# Changes below this (relative) are integration error, not a trend: at the default
# tolerances of `flow` the largest wrong-way move measured was 4e-11, and it shrinks with them.
MONOTONE_RTOL = 1e-8


class FlowPath(eqx.Module):
    """The flow recorded at times ``taus``: NC1 (trace ratio), e^{2 lambda_H tau} Tr Sigma_W
    (``scaled_within``), e^{2 lambda_H tau} Tr Sigma_B (``scaled_between``), H at every time,
    and the integrator's step count."""

    taus: Float[Array, " T"]
    nc1: Float[Array, " T"]
    scaled_within: Float[Array, " T"]
    scaled_between: Float[Array, " T"]
    H: Float[Array, "T d N"]
    steps: Array


def traces(problem: VicinityProblem, H: Array) -> tuple[Array, Array]:
    """(Tr Sigma_W, Tr Sigma_B) of features H with the problem's labels (the paper's Eq. 3,
    `ufm.metrics.scatter_traces`)."""
    return metrics.scatter_traces(H, jnp.asarray(problem.labels), problem.K)


@eqx.filter_jit
def flow(
    problem: VicinityProblem,
    taus: Float[Array, " T"],
    *,
    rtol: float = 1e-12,
    atol: float = 1e-16,
    max_steps: int = 100_000,
) -> FlowPath:
    """Integrate dH/dtau = -grad L(H) from H0 and record the Thm 3.1 quantities at `taus`
    (increasing, starting at 0 or later)."""
    taus = jnp.asarray(taus, dtype=problem.H0.dtype)
    term = diffrax.ODETerm(lambda tau, H, args: -problem.reduced_gradient(H))
    sol = diffrax.diffeqsolve(
        term,
        diffrax.Tsit5(),
        t0=0.0,
        t1=taus[-1],
        dt0=None,
        y0=problem.H0,
        saveat=diffrax.SaveAt(ts=taus),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
    )
    within, between = jax.vmap(lambda H: traces(problem, H))(sol.ys)
    grow = jnp.exp(2 * problem.lambda_H * taus)
    return FlowPath(
        taus, within / between, grow * within, grow * between, sol.ys, sol.stats["num_steps"]
    )


def monotonicity(path: FlowPath, rtol: float = MONOTONE_RTOL) -> dict[str, dict]:
    """Thm 3.1's three statements on a recorded path: for each, whether it holds and the
    largest change against the stated direction (relative to the quantity's size)."""
    out = {}
    for name, series, direction in (
        ("nc1_decreasing", path.nc1, -1),
        ("scaled_within_decreasing", path.scaled_within, -1),
        ("scaled_between_increasing", path.scaled_between, +1),
    ):
        x = np.asarray(series)
        steps = direction * np.diff(x) / np.maximum(np.abs(x[:-1]), 1e-300)
        worst = float(-steps.min()) if steps.size else 0.0  # > 0: a move the wrong way
        out[name] = {"holds": worst <= rtol, "worst_violation": max(worst, 0.0)}
    return out


def backward_step(problem: VicinityProblem, step: float | None = None) -> Array:
    """One backward-Euler step of the flow from H0: the root H of
    H - H0 + step * grad L(H) = 0 (step = 1/beta by default), found by Newton's method
    (optimistix) from H0, without the solver of `ufm.solve`. Newton forms the dN x dN
    Jacobian: for small problems and checks."""
    h = 1 / problem.beta if step is None else jnp.asarray(step, problem.H0.dtype)
    return _backward_step(problem, h)


@eqx.filter_jit
def _backward_step(problem: VicinityProblem, h: Array) -> Array:
    residual = lambda H, h: H - problem.H0 + h * problem.reduced_gradient(H)
    sol = optx.root_find(residual, optx.Newton(rtol=1e-13, atol=1e-14), problem.H0, args=h)
    return sol.value
