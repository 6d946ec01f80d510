"""What `ufm.theory` predicts for the distillation UFM, and its report section."""

from typing import Any

import numpy as np

from ... import _theory as th
from ...errors import InputError
from . import theory as reduction

MODE_ATOL = 1e-12  # a common mode below this (relative to the margin) counts as none


def predict(problem) -> th.Theory:
    """The realized minimizer of the reduced problem (`theory`), or not_applicable."""
    s = problem.setting()
    if s is None:
        return th.not_applicable(
            "the teacher is not a balanced collapsed one (zt_i = m 1 + a_t (e_y - 1/K)): no "
            "closed form; the solver still finds a minimizer",
            reduction.SOURCE,
        )
    opt = reduction.reduced(s)
    if not opt.converged:
        return th.not_applicable(
            f"the reduced problem did not converge (|grad F| = {opt.grad_norm:.3g})",
            reduction.SOURCE,
        )
    bound = f"its minimum {opt.loss:.12g} is a lower bound on the loss"
    Z1, Z2 = reduction.logits(opt, s.K, s.heads)
    stack = Z1 if Z2 is None else np.vstack([Z1, Z2])
    counts = np.asarray(problem.counts)
    try:
        factors, _ = th.realize(stack, counts, problem.d, (s.lambda_H, s.lambda_W))
    except InputError as e:
        return th.not_applicable(
            f"{e}: the minimum is not attained at this d; {bound}", reduction.SOURCE
        )
    params = _params(problem, opt, factors)
    if problem.features == "nonnegative":
        params = _nonnegative(params, problem)
        if params is None:
            return th.not_applicable(
                "nonnegative features: the free minimizer's class means have negative inner "
                f"products, which nonnegative vectors cannot have; {bound}",
                reduction.SOURCE,
            )
    quantities = _quantities(problem, opt, params)
    centred = _centred(problem, opt)
    reason = (
        f"reduced problem: CE margin A = {opt.A:.10g}"
        + (f", logit-head margin A2 = {opt.A2:.10g}" if Z2 is not None else "")
        + f", common mode M = {opt.M:.10g} (bias carries {opt.beta:.10g})"
    )
    zero = not np.any(stack)
    geometry = "zero" if zero else "simplex_etf" if centred else "uncentred_etf"
    return th.Theory(
        "zero" if zero else "collapsed",
        geometry,
        opt.loss,
        reason,
        reduction.SOURCE,
        quantities,
        params,
    )


def _params(problem, opt, factors) -> dict[str, np.ndarray]:
    K = problem.K
    Hbar, W_all = factors[0], factors[-1]
    params = {"W": W_all[:K], "H": Hbar[:, problem.labels]}
    if problem.heads == "dual":
        params["W2"] = W_all[K:]
    if problem.bias != "none":
        if problem.heads == "single":
            params["b"] = np.full(K, opt.beta)
        else:
            params["b"], params["b2"] = np.zeros(K), np.full(K, opt.beta)
    return params


def _nonnegative(params: dict, problem) -> dict | None:
    """The free minimizer turned so that its class means are nonnegative, or None where
    they cannot be (derivations/dhkd_geometry.py step 3). Its class-mean Gram is a P + b J:
    with b >= 0 the means x e_c + y (e_1 + ... + e_K), x = sqrt(a), K y^2 + 2 x y = b, have
    it; an orthogonal Q with Hbar' = Q Hbar (Procrustes) turns the heads along (W Q^T)."""
    K, d = problem.K, problem.d
    first = np.searchsorted(problem.labels, np.arange(K))
    Hbar = params["H"][:, first]
    G = Hbar.T @ Hbar
    a = G[0, 0] - G[0, 1]
    b = G[0, 1]
    if b < -1e-12 * G[0, 0] or d < K:
        return None
    x = np.sqrt(a)
    y = (-x + np.sqrt(x * x + K * max(b, 0.0))) / K
    target = np.zeros((d, K))
    target[:K] = x * np.eye(K) + y
    U, _, Vt = np.linalg.svd(target @ Hbar.T)
    Q = U @ Vt
    out = dict(params)
    out["H"] = np.maximum(Q @ params["H"], 0.0)  # >= 0 up to rounding
    for key in ("W", "W2"):
        if key in out:
            out[key] = params[key] @ Q.T
    return out


def _quantities(problem, opt, params) -> dict[str, np.ndarray]:
    """The class-mean quantities of the realized minimizer that every minimizer shares."""
    K = problem.K
    Hbar = params["H"][:, np.searchsorted(problem.labels, np.arange(K))]
    W = params["W"]
    out = {
        "W_gram": W @ W.T,
        "Hbar_gram": Hbar.T @ Hbar,
        "logits": W @ Hbar,
        "w_norm2": np.sum(W**2, axis=1),
        "hbar_norm2": np.sum(Hbar**2, axis=0),
        "common_mode_fraction": np.asarray(
            0.0 if _centred(problem, opt) else reduction.common_mode_fraction(W)
        ),
    }
    shift_free = problem.logit_loss == "kd" or problem.heads == "dual"
    if problem.bias == "free" and shift_free:
        out["b_centred"] = np.zeros(K)  # CE (and kd) fix a free bias only up to b + t 1
    elif problem.bias != "none":
        out["b"] = params["b"]
    if problem.heads == "dual":
        W2 = params["W2"]
        out |= {"W2_gram": W2 @ W2.T, "logits2": W2 @ Hbar}
        if problem.bias != "none" and not (problem.bias == "free" and problem.logit_loss == "kd"):
            out["b2"] = params["b2"]
    return out


def _centred(problem, opt) -> bool:
    """Whether the CE head's rows sum to zero at the minimizer: the dual head always (CE's
    gradient sums to zero over classes), the single head when W carries no common mode."""
    return problem.heads == "dual" or abs(opt.M - opt.beta) <= MODE_ATOL * max(abs(opt.A), 1.0)


def head_quantities(problem, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The found counterparts of the model-specific predicted quantities."""
    K = problem.K
    onehot = np.eye(K)[problem.labels]
    Hbar = params["H"] @ onehot / onehot.sum(axis=0)
    out = {"common_mode_fraction": np.asarray(reduction.common_mode_fraction(params["W"]))}
    if "W2" in params:
        out |= {"W2_gram": params["W2"] @ params["W2"].T, "logits2": params["W2"] @ Hbar}
    if "b2" in params:
        out["b2"] = params["b2"]
    return out


def report(problem, params: dict[str, Any]) -> dict[str, Any]:
    """The ``dhkd`` section of `ufm solve`'s report: the heads' geometry, the two loss
    terms, the teacher's agreement, the lower bound and the gradient cosines."""
    from . import gradients

    p = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    Z1, Z2 = (np.asarray(z) for z in problem.head_logits(p))
    labels = problem.labels
    out = {
        "ce_term": float(problem.ce_term(p)),
        "logit_term": float(problem.logit_term(p)),
        "accuracy": float(np.mean(np.argmax(Z1, axis=0) == labels)),
        "teacher_accuracy": float(np.mean(np.argmax(np.asarray(problem.Zt), axis=0) == labels)),
        "min_margin": float(_margins(Z1, labels).min()),
        "common_mode_fraction": reduction.common_mode_fraction(p["W"]),
        "mean_logit": float(Z1.mean()),
        "lower_bound": problem.lower_bound(),
        "cosines": gradients.cosines(problem, p),
    }
    if problem.heads == "dual":
        out["common_mode_fraction_logit_head"] = reduction.common_mode_fraction(p["W2"])
        out["mean_logit_head2"] = float(Z2.mean())
    if problem.features == "nonnegative":
        out["min_feature"] = float(p["H"].min())
    return out


def _margins(Z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per sample: its target logit minus its largest other logit."""
    target = Z[labels, np.arange(labels.size)]
    others = np.where(np.eye(Z.shape[0], dtype=bool)[:, labels], -np.inf, Z)
    return target - others.max(axis=0)


def report_lines(section: dict[str, Any]) -> list[str]:
    """The ``dhkd`` section in words, for `ufm solve`'s text output."""
    cos = section["cosines"]
    return [
        f"CE head: accuracy {section['accuracy']:.4g}, min margin {section['min_margin']:.4g}, "
        f"common-mode fraction {section['common_mode_fraction']:.4g}",
        f"CE term {section['ce_term']:.6g}, logit term {section['logit_term']:.6g}; lower "
        f"bound {section['lower_bound']}",
        f"cos(grad CE, grad logit loss): on W {cos['W']:.4g}, on H {cos['H']:.4g}",
    ]
