"""Claims on imbalanced cross-entropy, answered by the convex program (`convex.py`).

Solve-and-compare claims at points no closed form covers, and three procedures: the tied
classes' merge threshold (derivations/plain_convex.py step 7), Fang et al.'s minority
collapse as the imbalance ratio grows, and SELI as the lambda -> 0 limit.
"""

import numpy as np

from ...claims import Claim, Outcome, verdict
from . import convex

CONVEX = (
    "ours: the plain UFM's minimum is that of a convex program in the class-mean logits "
    "weighted by the counts (derivations/plain_convex.py steps 1-5), solved to a certified "
    "duality gap [ours: derivation plain_convex.py steps 1-5]"
)
HONG_LING = (
    "Hong & Ling 2023, arXiv 2309.09725: the abstract says they convexify the imbalanced CE UFM "
    "and characterize the minority-collapse threshold in a setting of two groups of classes; "
    "their program, their threshold and their default parameters were not read: the point here "
    "is a two-group setting of ours, solved by our program (derivations/plain_convex.py) "
    "[read: abstract]"
)
TIED = (
    "ours: m >= 2 classes of equal count n merge exactly at sqrt(lambda_W lambda_H) = sqrt(n)/N, "
    "whatever the other counts and the bias (derivations/plain_convex.py step 7); the phase "
    "diagrams showed it as classes dying at sqrt(n_min)/N; a single smallest class has no such "
    "threshold [ours: derivation plain_convex.py step 7]"
)
FANG = (
    "Fang, He, Long & Su 2021, arXiv 2101.12699 (PNAS): the abstract says minority classifiers "
    "collapse as the imbalance grows (Thm 5, recalled: w_k - w_k' -> 0 as R -> infinity, in "
    "their norm-constrained layer-peeled model, not read); here the weight-decay UFM at fixed "
    "lambda, where step 7 of derivations/plain_convex.py predicts an exact collapse at a finite "
    "R [read: abstract; ours: derivation plain_convex.py step 7]"
)
SELI = (
    "Thrampoulidis, Kini, Vakilian & Behnia 2022, arXiv 2208.05512: the abstract says the "
    "bias-free imbalanced CE UFM's normalized minimizers approach the SELI geometry as the "
    "regularization vanishes; SELI's logits P_K Y and classifier Gram (P_K D P_K)^{1/2} are "
    "recalled, not read [read: abstract; formulas recalled]"
)

IMB = (100, 100, 10, 10)
TWO_GROUPS = (100,) * 5 + (10,) * 5


def _merge_point(counts, bias: str, lb: float, group: list[int]) -> float:
    """The mu at which the classes of `group` merge: bisection on the convex program for the
    spread of their classifier rows' directions (rows of Zbar D^{1/2} restricted to them)."""

    def spread(mu: float) -> float:
        sol = convex.solve(counts, mu, bias, lb)
        Q = sol.logits * np.sqrt(np.asarray(counts, float))[None, :]
        U, s, _ = np.linalg.svd(Q)
        rows = U[group] * np.sqrt(s)[None, :]  # the classifier rows, up to a rotation
        return float(np.linalg.norm(rows - rows.mean(axis=0)))

    N = float(np.sum(counts))
    lo, hi = 0.5 * np.sqrt(min(counts)) / N, 1.5 * np.sqrt(min(counts)) / N
    for _ in range(40):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if spread(mid) > 1e-7 else (lo, mid)
    return float(np.sqrt(lo * hi))


def tied_merge_threshold(problem) -> Outcome:
    """Bisection for the merge of the tied smallest classes, for no, free and regularized
    bias, against sqrt(n)/N; and a single smallest class, which has no such threshold."""
    counts = np.asarray(problem.counts)
    N = counts.sum()
    group = [int(k) for k in np.flatnonzero(counts == counts.min())]
    if len(group) < 2:
        return Outcome("inconclusive", "needs >= 2 tied smallest classes", "", "")
    predicted = float(np.sqrt(counts.min()) / N)
    found = {b: _merge_point(counts, b, lb, group) for b, lb in CASES}
    errors = {b: abs(v / predicted - 1) for b, v in found.items()}
    ok = max(errors.values()) <= 1e-6
    single = (*counts[:-1], counts[-1] + 1)  # the tie broken: one smallest class left
    lone = convex.solve(single, 1.02 * np.sqrt(min(single)) / sum(single), "free")
    alive = float(np.linalg.norm(lone.logits[:, -1]))
    text = ", ".join(f"{b}: {v:.10g}" for b, v in found.items())
    return Outcome(
        verdict(ok),
        f"merge points {text} against sqrt(n)/N = {predicted:.10g} (relative errors up to "
        f"{max(errors.values()):.1g}); with the tie broken to counts {list(single)}, the lone "
        f"smallest class is still on at 1.02 sqrt(n_min)/N (its logit column's norm "
        f"{alive:.3g}): no threshold there",
        f"merge at sqrt(n)/N = {predicted:.6g}",
        f"bisection: {max(errors.values()):.1g} off",
    )


CASES = (("none", 0.0), ("free", 0.0), ("regularized", 0.01))


def fang_minority_collapse(problem) -> Outcome:
    """At fixed lambda, the distance between the two minority classifiers (from ufm.solve,
    relative to ||W||_F) as the imbalance ratio R grows: it shrinks, and is exactly 0 from
    the R at which N = 2 (R + 1) n_min reaches sqrt(n_min)/mu (derivations/plain_convex.py
    step 7)."""
    from ... import make, solve

    n_min = 5
    mu = float(np.sqrt(problem.lambda_W * problem.lambda_H))
    R0 = (np.sqrt(n_min) / mu / n_min - 2) / 2
    rows = []
    for R in RATIOS:
        hyper = problem.hyperparameters() | {"n": [R * n_min] * 2 + [n_min] * 2}
        sol = solve(make("plain", **hyper), restarts=2)
        W = np.asarray(sol.classifier, dtype=float)
        rows.append((R, float(np.linalg.norm(W[2] - W[3]) / np.linalg.norm(W)), sol.converged))
    if not all(bool(c) for *_, c in rows):
        return Outcome("inconclusive", "a solve did not converge", "", "")
    gaps = [g for _, g, _ in rows]
    shrinking = all(b <= a + 1e-9 for a, b in zip(gaps, gaps[1:], strict=False))
    before = all(g > 1e-3 for R, g, _ in rows if R <= R0 / 2)
    after = all(g < 1e-6 for R, g, _ in rows if R >= 2 * R0)
    table = ", ".join(f"R={R}: {g:.3g}" for R, g, _ in rows)
    return Outcome(
        verdict(shrinking and before and after),
        f"||w_3 - w_4|| / ||W||_F of the minority classifiers: {table}; predicted exactly 0 "
        f"from R0 = {R0:.4g} on",
        f"w_3 - w_4 shrinks, 0 from R0 = {R0:.3g}",
        f"{gaps[0]:.3g} -> {gaps[-1]:.1g}",
    )


RATIOS = (1, 3, 9, 27)  # imbalance ratios: two below R0 / 2, one above 2 R0 (R0 = 10)
LAMBDAS_SELI = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)


def seli_limit(problem) -> Outcome:
    """Distance of the normalized class-mean logits and classifier Gram to SELI's
    (P_K and (P_K D P_K)^{1/2}) as lambda falls, from the convex program (bias-free)."""
    counts = np.asarray(problem.counts, dtype=float)
    K = counts.size
    P = np.eye(K) - 1 / K
    evals, V = np.linalg.eigh(P @ np.diag(counts) @ P)
    gram_seli = (V * np.sqrt(np.clip(evals, 0, None))) @ V.T
    unit = lambda X: X / np.linalg.norm(X)
    logits, grams = [], []
    for lam in LAMBDAS_SELI:
        sol = convex.solve(counts, lam, "none")
        if not sol.converged:
            return Outcome("inconclusive", f"lambda={lam:g}: {sol.status}", "", "")
        Q = sol.logits * np.sqrt(counts)[None, :]
        U, s, _ = np.linalg.svd(Q)
        logits.append(float(np.linalg.norm(unit(sol.logits) - unit(P))))
        grams.append(float(np.linalg.norm(unit((U * s) @ U.T) - unit(gram_seli))))
    falling = all(b < a for a, b in zip(logits, logits[1:], strict=False))
    falling &= all(b < a for a, b in zip(grams, grams[1:], strict=False))
    table = ", ".join(
        f"{lam:g}: {a:.3g}/{b:.3g}" for lam, a, b in zip(LAMBDAS_SELI, logits, grams, strict=True)
    )
    return Outcome(
        verdict(falling),
        f"distance of the normalized logits / classifier Gram to SELI's, by lambda: {table}",
        "distance -> 0 as lambda -> 0",
        f"{logits[0]:.3g} -> {logits[-1]:.3g}",
    )


def _ce(n, **hyper) -> dict:
    return {"loss": "ce", "K": len(n), "n": list(n), "d": len(n) + 2} | hyper


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "ce-imbalanced-hong-ling-two-groups",
        HONG_LING,
        "CE, two groups of 5 classes (100 and 10 samples), free bias, lambda = 5e-4: ufm.solve "
        "reaches the convex program's minimizer (certified)",
        "plain",
        _ce(TWO_GROUPS, bias=True, lambda_W=5e-4, lambda_H=5e-4),
        quick=True,
    ),
    Claim(
        "ce-imbalanced-regularized-bias",
        CONVEX,
        "imbalanced CE with a regularized bias (lambda_b = 0.01): the convex program's minimizer",
        "plain",
        _ce(IMB, bias=True, lambda_b=0.01, lambda_W=5e-3, lambda_H=5e-3),
    ),
    Claim(
        "ce-imbalanced-no-bias",
        CONVEX,
        "imbalanced CE without bias, lambda = 5e-3: the convex program's minimizer",
        "plain",
        _ce(IMB, lambda_W=5e-3, lambda_H=5e-3),
    ),
    Claim(
        "ce-tied-minority-distinct",
        TIED,
        "counts 100,100,10,10, free bias, sqrt(lW lH) = 0.9 sqrt(10)/220: the minority classes "
        "are told apart (rank K - 1 = 3)",
        "plain",
        _ce(IMB, bias=True, lambda_W=0.9 * np.sqrt(10) / 220, lambda_H=0.9 * np.sqrt(10) / 220),
    ),
    Claim(
        "ce-tied-minority-merged",
        TIED,
        "counts 100,100,10,10, free bias, sqrt(lW lH) = 1.1 sqrt(10)/220: the minority classes "
        "merge (minority collapse, rank 2)",
        "plain",
        _ce(IMB, bias=True, lambda_W=1.1 * np.sqrt(10) / 220, lambda_H=1.1 * np.sqrt(10) / 220),
    ),
    Claim(
        "ce-tied-merge-threshold",
        TIED,
        "counts 50,50,10,10: the tied minority pair merges at sqrt(lW lH) = sqrt(10)/120, to 1e-6, "
        "without bias, with a free and with a regularized bias",
        "plain",
        _ce((50, 50, 10, 10)),
        expect="confirmed",
        procedure=tied_merge_threshold,
    ),
    Claim(
        "ce-fang-minority-collapse",
        FANG,
        "bias-free CE, counts 5R,5R,5,5, lambda = sqrt(5)/110: the minority classifiers' "
        "difference shrinks as R grows (R = 1, 3, 9, 27) and is exactly 0 from R0 = 10 on",
        "plain",
        _ce((5, 5, 5, 5), lambda_W=np.sqrt(5) / 110, lambda_H=np.sqrt(5) / 110),
        expect="confirmed",
        procedure=fang_minority_collapse,
    ),
    Claim(
        "ce-seli-limit",
        SELI,
        "bias-free CE, counts 100,100,10,10: the normalized class-mean logits and classifier "
        "Gram approach SELI's as lambda falls from 1e-2 to 1e-7",
        "plain",
        _ce(IMB),
        expect="confirmed",
        procedure=seli_limit,
    ),
)
