"""How `ufm verify` judges the distillation UFM's claims that are not one solve against the
reduced theory: gradient conflict, centring at critical points, the lower bound, the margin,
and the dark-knowledge teacher. Each procedure reports the numbers it decided on."""

import numpy as np

from ...claims import Outcome
from ...claims import verdict as _verdict
from ...solve import solve
from . import conflict, gradients, predict
from . import theory as reduction

BOUND_RTOL = 1e-9  # a converged loss this far (relative) below the lower bound refutes it
TEACHERS = {  # the survey's teachers: (margin, shift) x temperature
    "teacher": [(a, m) for a in (1.0, 4.0, 10.0) for m in (-3.0, 0.0, 2.0, 6.0)],
    "T": (1.0, 2.0, 4.0),
}


def _variants(problem):
    for a, m in TEACHERS["teacher"]:
        for T in TEACHERS["T"]:
            hyper = problem.hyperparameters() | {"teacher_margin": a, "teacher_shift": m, "T": T}
            yield type(problem).make(**hyper)


def _survey(problem) -> list[dict]:
    return [row for p in _variants(problem) for row in conflict.survey(p)]


def classifier_not_backbone(problem) -> Outcome:
    """The abstract's mechanism at collapse points: the two gradients conflict on the head
    (cos W < 0) but not on the features (cos H >= 0). Refuted if no such point exists among
    the conflicting ones of the survey (teachers x temperatures x collapse points)."""
    rows = _survey(problem)
    on_W = [r for r in rows if r["W"] < 0]
    pattern = [r for r in on_W if r["H"] >= 0]
    rows_only = sum(min(r["W_rows"]) < 0 <= r["W"] for r in rows)
    reason = (
        f"{len(rows)} symmetric collapse points (teacher margin x shift x T x head/feature "
        f"scales, common row, feature mean): {len(on_W)} conflict on W (full batch), of which "
        f"{len(pattern)} not on H; {rows_only} points with some row of W in conflict while the "
        "full-batch cosine is not"
    )
    if not on_W:
        return Outcome("inconclusive", reason + ": no conflict at all", "cos W < 0 <= cos H", "-")
    ok = len(pattern) > 0
    return Outcome(_verdict(ok), reason, "cos W < 0 <= cos H", f"{len(pattern)}/{len(on_W)}")


def equal_signs(problem) -> Outcome:
    """Ours: at every symmetric collapse point cos W and cos H have the same sign."""
    rows = _survey(problem)
    differ = [r for r in rows if np.sign(r["W"]) != np.sign(r["H"]) and abs(r["W"]) > 1e-12]
    negative = sum(r["W"] < 0 for r in rows)
    reason = (
        f"{len(rows)} collapse points, {negative} with negative cosines; sign(cos W) != "
        f"sign(cos H) at {len(differ)}"
    )
    return Outcome(_verdict(not differ), reason, "same sign everywhere", f"{len(differ)} differ")


def at_minimizer(problem) -> Outcome:
    """The cosines at the single head's global minimizer (the solver's): the same sign on W
    and on H, as at every symmetric collapse point."""
    sol = solve(problem, restarts=2)
    if not sol.converged:
        return Outcome("inconclusive", sol.status, "-", "-")
    cos = gradients.cosines(problem, sol.params)
    reason = (
        f"at the minimizer: cos W = {cos['W']:.6g}, cos H = {cos['H']:.6g}, rows of W "
        f"{np.round(cos['W_rows'], 4).tolist()}, conflicting samples on H "
        f"{cos['H_conflicting_samples']:.3g}"
    )
    same = np.sign(cos["W"]) == np.sign(cos["H"])
    return Outcome(_verdict(bool(same)), reason, "same sign", f"{cos['W']:.3g} / {cos['H']:.3g}")


def centred_at_critical_points(problem) -> Outcome:
    """The dual head's CE rows sum to zero at a critical point, for any teacher: |1^T W| is
    bounded by sqrt(K) |grad f| / lambda_W (CE's logit gradient sums to zero over the
    classes); the single head on the same teacher is not centred."""
    lam = float(problem.lambda_W)
    sums = {}
    for heads in ("dual", "single"):
        p = type(problem).make(**(problem.hyperparameters() | {"heads": heads}))
        sol = solve(p, restarts=2)
        if not sol.converged:
            return Outcome("inconclusive", f"{heads}: {sol.status}", "-", "-")
        W = np.asarray(sol.params["W"])
        bound = np.sqrt(p.K) * float(sol.grad_norm) / lam
        sums[heads] = (float(np.linalg.norm(W.sum(axis=0))), bound, float(np.linalg.norm(W)))
    (dual, bound, norm), (single, _, single_norm) = sums["dual"], sums["single"]
    reason = (
        f"dual: |1^T W| = {dual:.3g} <= sqrt(K) |grad|/lambda_W = {bound:.3g} (|W| = "
        f"{norm:.3g}); single head on the same teacher: |1^T W| = {single:.3g} (|W| = "
        f"{single_norm:.3g})"
    )
    ok = dual <= bound and single > 1e3 * max(bound, 1e-300)
    return Outcome(_verdict(ok), reason, "0 (dual), > 0 (single)", f"{dual:.2g} / {single:.2g}")


def _bound_outcome(problem, attained_expected: bool) -> Outcome:
    bound = problem.lower_bound()
    if bound is None:
        return Outcome("inconclusive", "no reduced problem for this teacher", "-", "-")
    sol = solve(problem, restarts=3)
    if not sol.converged:
        return Outcome("inconclusive", sol.status, f">= {bound:.10g}", "-")
    loss = float(sol.loss)
    gap = (loss - bound) / abs(bound)
    reason = (
        f"best of 3 restarts {loss:.12g}, reduced minimum {bound:.12g} (relative gap {gap:.3g})"
    )
    if gap < -BOUND_RTOL:
        return Outcome("refuted", "the solver BEAT the lower bound: " + reason, "-", "-")
    attained = gap <= BOUND_RTOL
    return Outcome(
        _verdict(attained == attained_expected), reason, f">= {bound:.8g}", f"{loss:.8g}"
    )


def bound_attained(problem) -> Outcome:
    """The reduced minimum is a lower bound that the solver reaches (nonnegative features
    whose optimal class means have nonnegative inner products)."""
    return _bound_outcome(problem, True)


def bound_not_attained(problem) -> Outcome:
    """The reduced minimum is a lower bound that the solver stays above (d below the
    logits' rank, or nonnegative features that cannot realize the free optimum)."""
    return _bound_outcome(problem, False)


def margin_not_hurt(problem) -> Outcome:
    """Ours, the UFM's side of the abstract's accuracy claim: at the single head's global
    minimizer under a collapsed teacher every training sample is classified correctly (the
    common mode does not move the argmax); the margins with and without the logit loss are
    reported (alpha = 0: CE alone)."""
    s = problem.setting()
    if s is None:
        return Outcome("inconclusive", "no reduced problem for this teacher", "-", "-")
    both = reduction.reduced(s)
    alone = reduction.reduced(s._replace(alpha=0.0))
    sol = solve(problem, restarts=2)
    if not sol.converged:
        return Outcome("inconclusive", sol.status, "-", "-")
    section = predict.report(problem, sol.params)
    reason = (
        f"margins A: CE + {s.logit_loss} {both.A:.8g}, CE alone {alone.A:.8g}; solver: "
        f"accuracy {section['accuracy']:.3g}, min margin {section['min_margin']:.6g}, "
        f"common-mode fraction {section['common_mode_fraction']:.4g}"
    )
    ok = section["accuracy"] == 1.0 and section["min_margin"] > 0
    return Outcome(_verdict(ok), reason, "accuracy 1", f"{section['accuracy']:.3g}")


def _group_cosines(M: np.ndarray, group: int) -> tuple[float, float]:
    """Mean cosine of the centred rows of M (K x d) within and across similarity groups."""
    C = M - M.mean(axis=0)
    C = C / np.linalg.norm(C, axis=1, keepdims=True)
    G = C @ C.T
    K = M.shape[0]
    same = (np.arange(K)[:, None] // group == np.arange(K)[None, :] // group) & ~np.eye(
        K, dtype=bool
    )
    cross = np.arange(K)[:, None] // group != np.arange(K)[None, :] // group
    return float(G[same].mean()), float(G[cross].mean())


def dark_knowledge(problem) -> Outcome:
    """Ours: a teacher with class-similarity groups shapes the student. One head: the
    centred class means and the head's rows are closer within a group than across. Two
    heads: the class means are, the CE head's rows are not, and the CE head stays centred."""
    group = problem.hyperparameters().get("teacher_group", 2)
    sol = solve(problem, restarts=2)
    if not sol.converged:
        return Outcome("inconclusive", sol.status, "-", "-")
    H = np.asarray(sol.params["H"])
    onehot = np.eye(problem.K)[problem.labels]
    f_in, f_out = _group_cosines((H @ onehot / onehot.sum(axis=0)).T, group)
    w_in, w_out = _group_cosines(np.asarray(sol.params["W"]), group)
    section = predict.report(problem, sol.params)
    reason = (
        f"class means: mean cosine within/across groups {f_in:.4f}/{f_out:.4f}; CE head rows "
        f"{w_in:.4f}/{w_out:.4f}; common-mode fraction {section['common_mode_fraction']:.4g}; "
        f"accuracy {section['accuracy']:.3f} (teacher {section['teacher_accuracy']:.3f})"
    )
    if problem.heads == "single":
        ok, predicted = f_in > f_out and w_in > w_out, "within > across (means, rows)"
    else:
        ok = f_in > f_out and w_in <= w_out and section["common_mode_fraction"] < 1e-6
        predicted = "means within > across, rows not; centred"
    return Outcome(_verdict(ok), reason, predicted, f"{f_in - f_out:.3g}, {w_in - w_out:.3g}")


def _residuals(problem, params) -> tuple[float, float]:
    """Mean residual z - zt of the logit head on the target class and on the others."""
    _, Z2 = (np.asarray(z) for z in problem.head_logits(params))
    R = Z2 - np.asarray(problem.Zt)
    target = np.eye(problem.K, dtype=bool)[:, problem.labels]
    return float(R[target].mean()), float(R[~target].mean())


def residual_pattern(problem) -> Outcome:
    """Ours (derivations/dhkd.py step 8; the reviews' "unsynchronized optimization"): at the
    single head's minimizer BinaryKL and BinaryKL-Norm leave the same sign pattern (target
    logit above the teacher's, the others below), but BinaryKL leaves a larger target
    residual (its gradient is damped by the teacher's saturated sigmoid); the solver's
    residuals equal the reduced minimizer's."""
    found, worst = {}, 0.0
    for loss in ("binary-kl", "binary-kl-norm"):
        p = type(problem).make(**(problem.hyperparameters() | {"logit_loss": loss, "T": 2.0}))
        sol = solve(p, restarts=2)
        if not sol.converged:
            return Outcome("inconclusive", f"{loss}: {sol.status}", "-", "-")
        opt, s = reduction.reduced(p.setting()), p.setting()
        K = s.K
        predicted = (
            opt.M - s.shift + (opt.A - s.margin) * (K - 1) / K,
            opt.M - s.shift - (opt.A - s.margin) / K,
        )
        found[loss] = _residuals(p, sol.params)
        worst = max(worst, *(abs(f - q) for f, q in zip(found[loss], predicted, strict=True)))
    (t1, o1), (t2, o2) = found["binary-kl"], found["binary-kl-norm"]
    reason = (
        f"target / other residuals: BinaryKL {t1:.6g} / {o1:.6g}, BinaryKL-Norm {t2:.6g} / "
        f"{o2:.6g} (target ratio {t1 / t2:.3g}); solver vs reduced minimizer within {worst:.1e}"
    )
    ok = t1 > t2 > 0 > max(o1, o2) and worst < 1e-6
    return Outcome(_verdict(ok), reason, "same signs, larger BinaryKL target", f"{t1 / t2:.3g}x")


TRAINING_SEEDS = 10
TRAINING_STEPS = 400  # the transient before the head collapses is over by ~150 steps


def along_training(problem) -> Outcome:
    """The abstract's mechanism along training: full-batch SGD at the official code's
    settings from TRAINING_SEEDS random starts, every step recorded; among the steps where
    the two gradients conflict on W, the share where they do not conflict on H. Confirmed if
    that is the majority (the conflict mostly in the classifier only), refuted otherwise."""
    from . import dynamics

    on_W = pattern = 0
    for seed in range(TRAINING_SEEDS):
        run = dynamics.train(problem, steps=TRAINING_STEPS, record_every=1, seed=seed)
        negative = run.cos_W < 0
        on_W += int(negative.sum())
        pattern += int((negative & (run.cos_H >= 0)).sum())
    if on_W == 0:
        return Outcome("inconclusive", "no step with a conflict on W", "-", "-")
    reason = (
        f"{TRAINING_SEEDS} seeds x {TRAINING_STEPS} SGD steps (lr 0.05, momentum 0.9): "
        f"{on_W} steps conflict on W, {pattern} of them without a conflict on H "
        f"({pattern / on_W:.3g}); the rest conflict on both"
    )
    share = pattern / on_W
    return Outcome(_verdict(share > 0.5), reason, "cos W < 0 <= cos H", f"{share:.3g}")
