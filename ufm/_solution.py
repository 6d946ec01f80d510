"""What a solve returns: the best restart, its convergence flag and the reason in words."""

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int


class RESULTS(eqx.Enumeration):
    """Why the solver stopped. Only ``successful`` counts as converged."""

    successful = "converged: gradient norm <= gtol x weight decay x max(||params||, 1)"
    max_steps_reached = (
        "not converged: max_steps reached before the gradient norm fell to the tolerance "
        "(gtol x weight decay x max(||params||, 1)); raise max_steps or add restarts (at a "
        "tiny weight decay the tolerance may be finer than float64 resolves: loosen gtol)"
    )
    nonfinite = (
        "not converged: the loss became nan or inf; lower init_scale or check the hyperparameters"
    )
    stalled = (
        "not converged: the optimizer stopped moving (line search failed) above the tolerance: "
        "the gradient cannot be resolved that finely in this precision (rounding is ~1e-16 "
        "of the gradient's terms in float64; a tiny weight decay makes the tolerance tiny); "
        "the point may still be the minimum, but this run cannot tell"
    )


def messages(result: eqx.Enumeration) -> list[str]:
    """The message of every entry of a (possibly batched) RESULTS item, flattened."""
    codes = np.atleast_1d(np.asarray(result._value))
    return [RESULTS._index_to_message[int(c)] for c in codes.ravel()]


class Solution(eqx.Module):
    """The best of `restarts` runs (lowest loss among converged runs, else lowest loss).

    ``gtol`` is the relative tolerance asked for, ``grad_tol`` the gradient norm it meant at
    the returned point (`ufm.solve.tolerance`); converged means grad_norm <= grad_tol.

    ``params`` holds the optimized arrays, named as in the papers (``W``, ``H``, ``b``,
    ``W1`` ... ``WM``); ``classifier`` is the (K, d) classifier applied to ``params["H"]``
    in every model: ``W`` when it is learned, the fixed one when it is not (mixup with a
    fixed ETF), the end-to-end product ``WM ... W1`` for the deep linear model.
    ``restart_losses`` and ``restart_converged`` keep every run, so a global-optimality
    claim can look at the spread. ``nonnegative``: the parameters the problem constrains to
    be >= 0 (`AbstractProblem.nonnegative`); where there are any, ``grad_norm`` is the norm
    of the projected gradient (entries at 0 whose gradient is positive left out) and the
    status and summary say so. ``route``: ``"collapsed"`` when the solver optimized the K
    class means and expanded them (`ufm.solve`'s `route`; the loss, gradient norm and
    convergence are still those of the full objective), ``"full"`` otherwise.
    """

    params: dict[str, Any]
    loss: Float[Array, ""]
    grad_norm: Float[Array, ""]
    steps: Int[Array, ""]
    result: RESULTS
    restart_losses: Float[Array, " R"]
    restart_converged: Bool[Array, " R"]
    gtol: Float[Array, ""]
    grad_tol: Float[Array, ""]
    classifier: Float[Array, "K d"]
    method: str = eqx.field(static=True)
    nonnegative: tuple[str, ...] = eqx.field(static=True, default=())
    route: str = eqx.field(static=True, default="full")

    @property
    def converged(self) -> bool:
        return bool(np.all(np.asarray(self.result == RESULTS.successful)))

    @property
    def status(self) -> str:
        status = "; ".join(dict.fromkeys(messages(self.result)))
        if self.nonnegative:
            status += (
                f"; the gradient norm is the projected one ({', '.join(self.nonnegative)} "
                "kept >= 0: entries at 0 whose gradient is positive left out)"
            )
        if not self.converged and np.asarray(self.loss).dtype == np.float32:
            status += (
                "; the problem is float32 (jax_enable_x64 is off): run "
                'jax.config.update("jax_enable_x64", True) before building it'
            )
        return status

    @property
    def loss_spread(self) -> float:
        """max - min of the finite restart losses: 0 when every restart found the same value."""
        finite = np.asarray(self.restart_losses)[np.isfinite(np.asarray(self.restart_losses))]
        return float(finite.max() - finite.min()) if finite.size else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "loss": float(self.loss),
            "grad_norm": float(self.grad_norm),
            "converged": self.converged,
            "status": self.status,
            "steps": int(self.steps),
            "method": self.method,
            "route": self.route,
            "gtol": float(self.gtol),
            "grad_tol": float(self.grad_tol),
            "restarts": int(jnp.size(self.restart_losses)),
            "restart_losses": [float(x) for x in np.asarray(self.restart_losses)],
            "loss_spread": self.loss_spread,
        } | ({"nonnegative": list(self.nonnegative)} if self.nonnegative else {})
