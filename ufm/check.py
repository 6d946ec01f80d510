"""Compare a solution with the theory, quantity by quantity, and give a verdict."""

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from . import metrics
from ._solution import Solution
from ._theory import Theory, layer_quantities
from .problem import AbstractProblem

LOSS_RTOL = 1e-9  # converged float64 solves (default gtol) reach the closed-form loss to ~1e-13
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
    certificate: the model's proof that the solution is a global minimum, from the point
        alone (`AbstractProblem.certificate`: ``gap``, ``certified``, ...); None where the
        model has none. Where there is one, ``agrees`` needs it to hold.
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
    certificate: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        out = {
            "verdict": self.verdict,
            "reason": self.reason,
            "loss_gap": self.loss_gap,
            "errors": self.errors,
            "predicted_metrics": self.predicted_metrics,
            "certificate": self.certificate,
        }
        if self.layer_metrics:
            out["layer_metrics"] = self.layer_metrics
            out["predicted_layer_metrics"] = self.predicted_layer_metrics
        return out


def relative_error(found: np.ndarray, predicted: np.ndarray) -> float:
    ref = float(np.linalg.norm(predicted))
    diff = float(np.linalg.norm(found - predicted))
    return diff / ref if ref > 0 else diff


def class_mean_quantities(W, H, b, labels: np.ndarray, K: int, xp=jnp) -> dict[str, Any]:
    """The rotation-invariant quantities of classifier W (K, d), features H (d, N) with
    `labels` and bias b (or None), named as in `Theory.quantities`. `xp`: jax.numpy inside
    a jitted sweep, numpy on the host (eager jax would compile every small op)."""
    onehot = xp.eye(K, dtype=H.dtype)[labels]
    Hbar = (H @ onehot) / xp.sum(onehot, axis=0)[None, :]
    out = {
        "W_gram": W @ W.T,
        "Hbar_gram": Hbar.T @ Hbar,
        "logits": W @ Hbar,
        "w_norm2": xp.sum(W**2, axis=1),
        "hbar_norm2": xp.sum(Hbar**2, axis=0),
        "within_class": H - Hbar[:, labels],
    }
    if b is not None:
        out["b"] = b
        out["b_centred"] = b - xp.mean(b)  # where only b up to + t 1 is determined
    return out


def found_quantities(
    problem: AbstractProblem, params: dict[str, Any], standard: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """The rotation-invariant quantities of a solution, named as in `Theory.quantities`.
    `standard`: ``class_mean_quantities`` of it if the caller has them already."""
    if standard is None:
        W = np.asarray(problem.classifier(params), dtype=float)
        H = np.asarray(problem.feature_columns(params), dtype=float)
        b = None if params.get("b") is None else np.asarray(params["b"], dtype=float)
        y = problem.labels
        standard = class_mean_quantities(W, H, b, y, int(y.max()) + 1, xp=np)
    out = {k: np.asarray(v, dtype=float) for k, v in standard.items()}
    # on the host: a LAPACK call per point inside a sweep's chunk would run one by one
    out["logits_sv"] = np.linalg.svd(out["logits"], compute_uv=False)
    # compared only where the theory fixes H itself (vicinity: H0 pins the rotation)
    out["H"] = np.asarray(problem.feature_columns(params), dtype=float)
    if type(problem).extra_quantities is not AbstractProblem.extra_quantities:
        extra = problem.extra_quantities(params)
        out |= {k: np.asarray(v, dtype=float) for k, v in extra.items()}
    return out


def nc_metrics(problem: AbstractProblem, params: dict[str, Any]) -> dict[str, float]:
    """`ufm.metrics.summary` of the features (`AbstractProblem.feature_columns`) against the
    end-to-end classifier."""
    return _summary(
        problem, problem.feature_columns(params), problem.classifier(params), params.get("b")
    )


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
    applicable = theory.applicable
    errors = quantity_errors(problem, theory, sol.params) if applicable else {}
    certificate = problem.certificate(sol.params, loss)
    verdict, reason, gap = judge(
        theory, loss, sol.converged, sol.status, errors, loss_rtol, quantity_tol, certificate
    )
    return Report(
        verdict,
        reason,
        loss,
        theory.loss,
        gap,
        errors,
        nc_metrics(problem, sol.params),
        nc_metrics(problem, theory.params) if applicable else {},
        theory,
        sol.converged,
        layer_metrics(problem, sol.params),
        layer_metrics(problem, theory.params) if applicable else [],
        certificate,
    )


def quantity_errors(
    problem: AbstractProblem,
    theory: Theory,
    params: dict[str, Any],
    found: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Relative error of every quantity `theory` predicts (see `Report.errors`); `found`:
    ``found_quantities(problem, params)`` if the caller has it already."""
    assert theory.params is not None
    found = found_quantities(problem, params) if found is None else found
    errors = {}
    if problem.collapsed_columns:
        # NC1: the spread around the class means, relative to the predicted ||H||_F
        spread = float(np.linalg.norm(found["within_class"]))
        scale = float(np.linalg.norm(problem.feature_columns(theory.params)))
        errors["within_class"] = spread / scale if scale > 0 else spread
    errors |= {k: relative_error(found[k], v) for k, v in theory.quantities.items()}
    layers = problem.layers(params) if theory.layers else []
    for m, (predicted, layer) in enumerate(zip(theory.layers, layers, strict=True), start=1):
        got = layer_quantities(layer, problem.labels, int(problem.labels.max()) + 1)
        errors |= {f"layer{m}.{k}": relative_error(got[k], v) for k, v in predicted.items()}
    return errors


def judge(
    theory: Theory,
    loss: float,
    converged: bool,
    status: str,
    errors: dict[str, float],
    loss_rtol: float = LOSS_RTOL,
    quantity_tol: float = QUANTITY_TOL,
    certificate: dict[str, Any] | None = None,
) -> tuple[str, str, float | None]:
    """(verdict, reason, loss_gap) of a solution with this loss and these quantity errors.
    With a `certificate` (`AbstractProblem.certificate`), ``agrees`` also needs it to hold:
    the point is then a certified global minimum."""
    if not theory.applicable:
        return "inconclusive", f"theory not applicable: {theory.reason}", None
    assert theory.loss is not None
    gap = (loss - theory.loss) / abs(theory.loss)
    if not converged:
        return "inconclusive", status, gap
    bad = [f"loss gap {gap:.3g}"] if abs(gap) > loss_rtol else []
    bad += [f"{k} error {v:.3g}" for k, v in errors.items() if v > quantity_tol]
    if not bad:
        matched = f"|loss gap| <= {loss_rtol:g} and every quantity within {quantity_tol:g}"
        if certificate is None:
            return "agrees", matched + " (no certificate of global optimality for this model)", gap
        if not certificate["certified"] and not certificate.get("tight", True):
            return (
                "agrees",
                f"{matched}; not certified: d is below the width {certificate['width_needed']} "
                "from which the convex lower bound is attained (duality gap "
                f"{certificate['gap']:.3g})",
                gap,
            )
        if not certificate["certified"]:
            return (
                "inconclusive",
                f"{matched}, but the certificate of global optimality does not hold: duality "
                f"gap {certificate['gap']:.3g}, ||grad_Z L||_op / mu = "
                f"{certificate['grad_op_over_mu']:.12g}",
                gap,
            )
        return "agrees", f"{matched}; certified global (duality gap {certificate['gap']:.2g})", gap
    reason = "; ".join(bad)
    if gap < -loss_rtol:
        reason = "the solver found a LOWER loss than the theory predicts: " + reason
    elif gap > loss_rtol:
        reason = (
            f"the solver stopped in a spurious minimum, {loss - theory.loss:.6g} above "
            f"the predicted global minimum (more restarts may find it): " + reason
        )
    return "disagrees", reason, gap


ZERO_ATOL = 1e-6  # class-mean logits below this (Frobenius) count as the zero solution
RANK_RTOL = 1e-6  # singular values of the class-mean logits below this fraction are off


def found_regime(problem: AbstractProblem, found: dict[str, np.ndarray]) -> str:
    """The regime of a solution, read off its class-mean logits Zbar = W Hbar alone.

    ``zero`` if ||Zbar||_F <= ZERO_ATOL; ``collapsed`` if Zbar has full rank (K for MSE
    without bias, whose optimum is an orthogonal frame, else K-1, at most d); otherwise
    ``minority_collapse`` for MSE or imbalanced classes (classes or label directions
    switched off, or minority classes sharing their logits) and ``low_rank`` for balanced
    cross-entropy (the deep orthoplex). Models whose columns are not class samples (mixup)
    are ``zero`` or ``collapsed``.
    """
    Z = found["logits"]
    if float(np.linalg.norm(Z)) <= ZERO_ATOL:
        return "zero"
    if not problem.collapsed_columns:
        return "collapsed"
    loss = getattr(problem, "loss_name", None)  # "mse", "ce"; a model of one's own: None
    K = Z.shape[0]
    full = K if loss == "mse" and not getattr(problem, "bias", False) else K - 1
    full = min(full, getattr(problem, "d", full))
    sv = found["logits_sv"]  # np.linalg.svd: descending
    if int(np.sum(sv > RANK_RTOL * sv[0])) >= full:
        return "collapsed"
    balanced = getattr(problem, "balanced", True)
    return "minority_collapse" if loss == "mse" or not balanced else "low_rank"
