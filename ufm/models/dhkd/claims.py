"""The claims `ufm verify` checks for the distillation UFM (Yang et al., arXiv 2411.08937).

Only the paper's abstract and its official code were read. The abstract's mechanism (the two
losses' gradients conflict in the classifier, not in the backbone; two heads fix it) is
tested at the UFM's collapse points and minimizers; the rest is ours: the exact reduction
under a collapsed teacher (`theory`), judged by `ufm.check`, and properties judged by the
procedures of `procedures.py`.
"""

from ...claims import Claim
from . import procedures

CODE = "7976c69"
PAPER = "Yang et al. 2024, arXiv 2411.08937"
ABSTRACT = (
    f"{PAPER}, abstract: adding a logit-level loss to CE on one linear head hurts, because "
    "the two losses' gradients conflict in the classifier but not in the backbone (head "
    "collapse); tested at the UFM's symmetric collapse points "
    "(derivations/dhkd_geometry.py step 2) "
    "[read: abstract; hypotheses not read]"
)
ABSTRACT_TRAINING = (
    f"{PAPER}, abstract: the two losses' gradients conflict in the classifier but not in the "
    "backbone; tested along full-batch SGD in the UFM [read: abstract; hypotheses not read]"
)
REDUCTION = (
    "ours: the exact reduction of the distillation UFM under a balanced collapsed teacher to a "
    "convex problem in the margins and the common mode, derivations/dhkd.py steps 3-5 "
    "[ours: derivation dhkd.py steps 3-5]"
)
BIAS = (
    "ours: a free bias carries the common mode at no cost, a weight-decayed one (the official "
    f"code's setting, {PAPER} @{CODE}) up to c/lambda_W, derivations/dhkd.py step 5 "
    "[ours: derivation dhkd.py step 5]"
)
CENTRED = (
    "ours: CE's logit gradient sums to zero over the classes, so the dual head's CE rows sum "
    "to zero at every critical point, derivations/dhkd.py step 6 [ours: derivation dhkd.py step 6]"
)
SIGNS = (
    "ours: at a symmetric collapse point both inner products are x y (K-1) times positive "
    "factors, derivations/dhkd_geometry.py steps 1-2 [ours: derivation dhkd_geometry.py steps 1-2]"
)
BOUND = (
    "ours: the reduced minimum bounds the loss below for every d and for nonnegative features, "
    "attained only where the convex minimizer factors, derivations/dhkd.py step 3 "
    "[ours: derivation dhkd.py step 3]"
)
NONNEGATIVE = (
    "ours: a class-mean Gram a P + b J with b >= 0 has nonnegative realizations (x e_c + y 1), "
    "one with b < 0 has none, derivations/dhkd_geometry.py step 3 "
    "[ours: derivation dhkd_geometry.py step 3]"
)
RESIDUALS = (
    "ours: the residuals at the reduced minimizer and their linearization, derivations/dhkd.py "
    "step 8 (the reviews of the paper call the difference unsynchronized optimization) "
    "[ours: derivation dhkd.py step 8]"
)
NUMERICS = "ours: an observation of ufm's solver on the distillation UFM [ours: numerics]"
TEACHER = {"teacher_margin": 4.0, "teacher_shift": 2.0}
DARK = {"teacher": "dark", "teacher_similarity": 0.3, "teacher_noise": 0.2}
DARK |= {"teacher_mistakes": 0.2, "n": 10}


def _claim(name, source, statement, quick=False, expect="agrees", restarts=2, **kw) -> Claim:
    procedure = kw.pop("procedure", None)
    if procedure is not None and expect == "agrees":
        expect = "confirmed"
    return Claim(
        name,
        source,
        statement,
        "dhkd",
        TEACHER | kw,
        expect=expect,
        quick=quick,
        restarts=restarts,
        procedure=procedure,
    )


CLAIMS: tuple[Claim, ...] = (
    _claim(
        "dhkd-single-common-mode",
        REDUCTION,
        "CE + BinaryKL on one bias-free head, teacher margin 4 and shift 2: the minimizer is "
        "the reduced one, an ETF plus a common row (common-mode fraction 0.62)",
        quick=True,
    ),
    _claim(
        "dhkd-single-norm-common-mode",
        REDUCTION,
        "the same with BinaryKL-Norm (the loss of the dual head's second head)",
        logit_loss="binary-kl-norm",
    ),
    _claim(
        "dhkd-dual-centred",
        REDUCTION,
        "two bias-free heads, CE + BinaryKL-Norm: the CE head is a centred ETF, the second head "
        "carries the common mode; the minimizer is the reduced one",
        quick=True,
        heads="dual",
        logit_loss="binary-kl-norm",
    ),
    _claim(
        "dhkd-kd-centred",
        REDUCTION,
        "softmax KD (T = 4) on the CE head: shift-invariant like CE, so the head stays centred",
        logit_loss="kd",
    ),
    _claim(
        "dhkd-free-bias",
        BIAS,
        "a free bias on the single head takes the whole common mode: W is centred",
        bias="free",
    ),
    _claim(
        "dhkd-decayed-bias-small-shift",
        BIAS,
        "a weight-decayed bias (the official code's setting) takes a shift below c/lambda_W = "
        "2.24: W is centred",
        bias="decayed",
    ),
    _claim(
        "dhkd-decayed-bias-large-shift",
        BIAS,
        "a teacher shift of 6, beyond c/lambda_W: the decayed bias takes 2.24 of it and W "
        "carries the rest as a common row",
        bias="decayed",
        teacher_shift=6.0,
    ),
    _claim(
        "dhkd-dual-centred-any-teacher",
        CENTRED,
        "with a noisy dark-knowledge teacher (no closed form) the dual head's CE rows still sum "
        "to zero at the solver's critical point; a single head on the same teacher does not",
        procedure=procedures.centred_at_critical_points,
        **DARK,
    ),
    _claim(
        "dhkd-conflict-classifier-not-backbone",
        ABSTRACT,
        "at symmetric collapse points of one head (teacher margin 1-10, shift -3..6, T 1-4, "
        "head and feature scales, common row, feature mean) some point has the two gradients "
        "in conflict on W (cos < 0) but not on the features H",
        expect="refuted",
        procedure=procedures.classifier_not_backbone,
    ),
    _claim(
        "dhkd-conflict-along-training",
        ABSTRACT_TRAINING,
        "along one head's SGD at the official code's settings (10 seeds, every step of 400), "
        "most steps with a conflict on W have none on the features H",
        expect="refuted",
        procedure=procedures.along_training,
    ),
    _claim(
        "dhkd-conflict-equal-signs",
        SIGNS,
        "at every symmetric collapse point of the survey cos(W) and cos(H) have the same sign",
        procedure=procedures.equal_signs,
    ),
    _claim(
        "dhkd-conflict-at-minimizer",
        SIGNS,
        "at the single head's minimizer the two data gradients are in conflict, equally on W "
        "and on H (cosines equal)",
        procedure=procedures.at_minimizer,
    ),
    _claim(
        "dhkd-residual-pattern",
        RESIDUALS,
        "at the single head's minimizer BinaryKL and BinaryKL-Norm leave the target logit above "
        "the teacher's and the others below, BinaryKL with the larger target residual",
        procedure=procedures.residual_pattern,
    ),
    _claim(
        "dhkd-bound-d-below-rank",
        BOUND,
        "at d = K - 1 = 3 the single head cannot hold an ETF and a common row: the solver stays "
        "above the reduced minimum and never beats it",
        procedure=procedures.bound_not_attained,
        d=3,
    ),
    _claim(
        "dhkd-nonnegative-free-minimum",
        NONNEGATIVE,
        "post-ReLU (nonnegative) features reach the free-feature minimum when the teacher's "
        "shift gives the class means nonnegative inner products (shift 2)",
        features="nonnegative",
        restarts=3,
    ),
    _claim(
        "dhkd-nonnegative-centred-teacher",
        NONNEGATIVE,
        "with an unshifted teacher (shift 0) the free minimizer's class means have negative "
        "inner products: nonnegative features stay above the reduced minimum",
        procedure=procedures.bound_not_attained,
        features="nonnegative",
        teacher_shift=0.0,
    ),
    _claim(
        "dhkd-margin-kept",
        NUMERICS,
        "with a teacher margin of 1 (below CE's own) the single head's minimizer still "
        "classifies every sample correctly: head collapse does not cost training accuracy here",
        procedure=procedures.margin_not_hurt,
        teacher_margin=1.0,
    ),
    _claim(
        "dhkd-dark-single",
        NUMERICS,
        "a dark-knowledge teacher (groups of 2 similar classes, noise, 20% mistakes): with one "
        "head, the class means and the head's rows are closer within a group than across",
        procedure=procedures.dark_knowledge,
        **DARK,
    ),
    _claim(
        "dhkd-dark-dual",
        NUMERICS,
        "the same teacher with two heads: the class means inherit the groups, the CE head's "
        "rows do not (they are farther apart within a group), and the CE head stays centred",
        procedure=procedures.dark_knowledge,
        heads="dual",
        **DARK,
    ),
)
