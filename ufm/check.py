"""Compare a solution with the theory, quantity by quantity, and give a verdict."""

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from . import metrics
from ._solution import Solution
from .models import AbstractProblem
from .theory import Theory, layer_quantities

LOSS_RTOL = 1e-9  # float64 solves to gtol=1e-10 reach the closed-form loss to ~1e-13
QUANTITY_TOL = 1e-5  # Grams converge like sqrt(loss error) along flat directions


@dataclasses.dataclass(frozen=True)
class Report:
    """Outcome of `ufm.check`.

    verdict: ``agrees``, ``disagrees`` or ``inconclusive``; reason says why.
    loss_gap: (found - predicted) / |predicted|; negative means the solver beat the theory,
        positive (beyond loss_rtol) that it stopped in a spurious minimum.
    errors: per predicted quantity, ||found - predicted||_F / ||predicted||_F, or the
        absolute ||found||_F where the prediction is zero. ``within_class`` is
        ||H - Hbar Y||_F / ||H_predicted||_F (absolute if H_predicted = 0; 0 under exact NC1).
        Deep models add ``layer<m>.<quantity>`` for every layer m (`Theory.layers`).
    metrics / predicted_metrics: NC metrics (`ufm.metrics.summary`) of the solution and of
        the closed-form minimizer. layer_metrics / predicted_layer_metrics: the same per
        layer (features H_m against the head W_M ... W_m); empty for one-layer models.
    """

    verdict: str
    reason: str
    loss: float
    theory_loss: float | None
    loss_gap: float | None
    errors: dict[str, float]
    metrics: dict[str, float]
    predicted_metrics: dict[str, float]
    theory: Theory
    converged: bool
    layer_metrics: list[dict[str, float]] = dataclasses.field(default_factory=list)
    predicted_layer_metrics: list[dict[str, float]] = dataclasses.field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out = {
            "verdict": self.verdict,
            "reason": self.reason,
            "loss_gap": self.loss_gap,
            "errors": self.errors,
            "predicted_metrics": self.predicted_metrics,
        }
        if self.layer_metrics:
            out["layer_metrics"] = self.layer_metrics
            out["predicted_layer_metrics"] = self.predicted_layer_metrics
        return out


def relative_error(found: np.ndarray, predicted: np.ndarray) -> float:
    ref = float(np.linalg.norm(predicted))
    diff = float(np.linalg.norm(found - predicted))
    return diff / ref if ref > 0 else diff


def found_quantities(problem: AbstractProblem, params: dict[str, Any]) -> dict[str, np.ndarray]:
    """The rotation-invariant quantities of a solution, named as in `Theory.quantities`."""
    W = np.asarray(problem.classifier(params), dtype=float)
    H = np.asarray(params["H"], dtype=float)
    y = problem.labels
    K = W.shape[0]
    counts = np.bincount(y, minlength=K)
    Hbar = (H @ np.eye(K)[y]) / counts[None, :]
    out = {
        "W_gram": W @ W.T,
        "Hbar_gram": Hbar.T @ Hbar,
        "logits": W @ Hbar,
        "logits_sv": np.linalg.svd(W @ Hbar, compute_uv=False),
        "w_norm2": np.sum(W**2, axis=1),
        "hbar_norm2": np.sum(Hbar**2, axis=0),
        "within_class": H - Hbar[:, y],
        "H": H,  # compared only where the theory fixes H itself (vicinity: H0 pins the rotation)
    }
    out |= {k: np.asarray(v, dtype=float) for k, v in problem.extra_quantities(params).items()}
    if "b" in params:
        out["b"] = np.asarray(params["b"], dtype=float)
        out["b_centred"] = out["b"] - out["b"].mean()  # where only b up to + t 1 is determined
    return out


def nc_metrics(problem: AbstractProblem, params: dict[str, Any]) -> dict[str, float]:
    """`ufm.metrics.summary` of the features ``H`` against the end-to-end classifier."""
    return _summary(problem, params["H"], problem.classifier(params), params.get("b"))


def layer_metrics(problem: AbstractProblem, params: dict[str, Any]) -> list[dict[str, float]]:
    """Per layer m: NC metrics of its features H_m against its head W_M ... W_m."""
    b = params.get("b")
    return [_summary(problem, L["H"], L["head"], b) for L in problem.layers(params)]


def _summary(problem: AbstractProblem, H, W, b) -> dict[str, float]:
    y = jnp.asarray(problem.labels)
    K = int(problem.labels.max()) + 1
    b = None if b is None else jnp.asarray(b)
    values = metrics.summary(jnp.asarray(H), y, K, jnp.asarray(W), b)
    return {k: float(v) for k, v in values.items()}


def check(
    problem: AbstractProblem,
    sol: Solution,
    *,
    loss_rtol: float = LOSS_RTOL,
    quantity_tol: float = QUANTITY_TOL,
) -> Report:
    """Compare `sol` with ``ufm.theory(problem)``.

    ``agrees``: converged, |loss_gap| <= loss_rtol and every quantity error <= quantity_tol.
    ``disagrees``: converged and applicable, but some number is off (named in the reason;
    a loss below the prediction means the theory is beaten). ``inconclusive``: the solver
    did not converge, or the theory does not apply (its reason is given).
    """
    theory = problem.theory()
    loss = float(sol.loss)
    found = found_quantities(problem, sol.params)
    found_metrics = nc_metrics(problem, sol.params)
    found_layers = layer_metrics(problem, sol.params)
    if not theory.applicable:
        return Report(
            "inconclusive",
            f"theory not applicable: {theory.reason}",
            loss,
            None,
            None,
            {},
            found_metrics,
            {},
            theory,
            sol.converged,
            found_layers,
        )

    assert theory.loss is not None and theory.params is not None
    gap = (loss - theory.loss) / abs(theory.loss)
    # NC1: the spread around the class means, relative to the predicted ||H||_F
    spread = float(np.linalg.norm(found["within_class"]))
    scale = float(np.linalg.norm(theory.params["H"]))
    errors = {}
    if problem.collapsed_columns:
        errors["within_class"] = spread / scale if scale > 0 else spread
    errors |= {k: relative_error(found[k], v) for k, v in theory.quantities.items()}
    layers = problem.layers(sol.params)
    for m, (predicted, layer) in enumerate(zip(theory.layers, layers, strict=True), start=1):
        got = layer_quantities(layer, problem.labels, int(problem.labels.max()) + 1)
        errors |= {f"layer{m}.{k}": relative_error(got[k], v) for k, v in predicted.items()}
    predicted_metrics = nc_metrics(problem, theory.params)
    predicted_layers = layer_metrics(problem, theory.params)

    if not sol.converged:
        verdict, reason = "inconclusive", sol.status
    else:
        bad = [f"loss gap {gap:.3g}"] if abs(gap) > loss_rtol else []
        bad += [f"{k} error {v:.3g}" for k, v in errors.items() if v > quantity_tol]
        if not bad:
            verdict = "agrees"
            reason = f"|loss gap| <= {loss_rtol:g} and every quantity within {quantity_tol:g}"
        else:
            verdict = "disagrees"
            reason = "; ".join(bad)
            if gap < -loss_rtol:
                reason = "the solver found a LOWER loss than the theory predicts: " + reason
            elif gap > loss_rtol:
                reason = (
                    f"the solver stopped in a spurious minimum, {loss - theory.loss:.6g} above "
                    f"the predicted global minimum (more restarts may find it): " + reason
                )
    return Report(
        verdict,
        reason,
        loss,
        theory.loss,
        gap,
        errors,
        found_metrics,
        predicted_metrics,
        theory,
        sol.converged,
        found_layers,
        predicted_layers,
    )
