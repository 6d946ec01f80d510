"""The dhkd students distilled from a SHIFTED teacher: its logits plus a constant m on every
class (`Training.teacher_shift`; the logit loss sees zt_i + m 1, cross-entropy does not and
softmax KD would not). Students (c) ``ce+binary-kl`` and (d) ``dual`` are trained again
against it, labelled ``ce+binary-kl@m=2`` etc., with the same seeds as the unshifted ones.

The prediction tested is the distillation UFM's (docs/models/dhkd.md, `ufm solve dhkd`):
BinaryKL's logit gradient T(sigma(z/T) - sigma(zt/T)) does not sum to zero over the classes,
so it pulls a head's mean logit towards the teacher's; on a single head carrying CE and
BinaryKL the mean logit follows the shift, carried by a common row (the mean row wbar =
mean_k w_k grows: a collapse of the head, common-mode fraction ~0.6 at m = 2 in the UFM's
default setting) and, where it is weight-decayed, partly by the bias. CE's logit gradient
p - e_y sums to zero over the classes, so a dual head's CE head gets no push on 1^T W1 or on
its bias's sum: both only decay, exactly as without the shift (the same seed gives the same
initial head and the same decay factor), and the second head takes the shift.

Per run and head (`logit_levels`, on the training set's last-layer features): |1^T W|,
|1^T W| / ||W||_F, the bias's mean, the mean logit (1/(NK)) sum_ik z_ki = wbar . hbar + mean
bias, and its part carried by the rows, wbar . hbar. `summary` sets each shifted student
beside its unshifted version (paired by seed) and judges the prediction.
"""

from typing import Any

import numpy as np

from .paired_seeds import mean_se, paired
from .paired_seeds import plus_minus as _pm
from .paired_seeds import plus_minus_paired as _diff

SHIFTS = (2.0, 4.0)  # the teacher's added mean logit m (full setup)
QUICK_SHIFTS = (2.0,)
BASES = ("ce+binary-kl", "dual")  # (c) one head, (d) two heads
MARK = "@m="
FOLLOWS = 0.5  # a head "follows" the shift when its mean logit moves by >= half of m
STAYS = 0.1  # ... and "stays" when it moves by < a tenth of m
ROW_SUM_TOLERANCE = 1e-6  # relative: |1^T W1| "unchanged" by the shift (round-off: ~1e-12)
LEVELS = ("row_sum", "row_sum_fraction", "bias_mean", "mean_logit", "mean_logit_rows")


def label(base: str, shift: float) -> str:
    """The variant label of `base` trained against the teacher shifted by `shift`."""
    return f"{base}{MARK}{shift:g}"


def parse(name: str) -> tuple[str, float] | None:
    """(base, shift) of a shifted label; None for an unshifted one."""
    if MARK not in name:
        return None
    base, shift = name.split(MARK)
    return base, float(shift)


def variants(methods: dict[str, dict], shifts=SHIFTS, bases=BASES) -> dict[str, dict]:
    """The shifted students' settings: each base method's with ``teacher_shift`` m."""
    return {label(b, m): methods[b] | {"teacher_shift": float(m)} for m in shifts for b in bases}


def display(name: str, labels: dict[str, str]) -> str:
    """A short label for figures: "(c) CE+BKL m=2" for ``ce+binary-kl@m=2``."""
    base, shift = parse(name) or (name, None)
    return labels[base] if shift is None else f"{labels[base]} m={shift:g}"


def logit_levels(W, b, H) -> dict[str, float | None]:
    """A head W (K, d) with bias b (K,) or None, on features H (d, N): ``row_sum`` |1^T W|
    (the norm of the rows' sum; 0 for a centred head), ``row_sum_fraction`` |1^T W| /
    ||W||_F (sqrt(K) for K equal rows), ``bias_mean`` (None without a bias), ``mean_logit``
    the mean of W H + b 1^T over classes and samples, ``mean_logit_rows`` its part wbar .
    hbar carried by the rows (the rest is the bias's mean)."""
    W, H = np.asarray(W, float), np.asarray(H, float)
    row_sum = float(np.linalg.norm(W.sum(axis=0)))
    frobenius = float(np.linalg.norm(W))
    bias = None if b is None else float(np.mean(b))
    rows = float(W.mean(axis=0) @ H.mean(axis=1))
    return {
        "row_sum": row_sum,
        "row_sum_fraction": row_sum / frobenius if frobenius > 0 else None,
        "bias_mean": bias,
        "mean_logit": rows + (bias or 0.0),
        "mean_logit_rows": rows,
    }


# ----------------------------------------------------------------------------------------
# The shifted students beside the unshifted ones.


def _flat(rows: list[dict], head: str, key: str) -> list[dict]:
    return [
        {"method": r["method"], "seed": r["seed"], "value": r[head][key]}
        for r in rows
        if r[head] is not None and r[head][key] is not None
    ]


def followed(rows: list[dict], name: str, base: str, shift: float, head: str) -> dict:
    """The fraction of the shift that `head`'s mean logit followed, per seed (mean logit
    shifted minus unshifted, over m), mean ± s.e. over the seeds."""
    by = {r["method"]: {} for r in rows}
    for r in _flat(rows, head, "mean_logit"):
        by[r["method"]][r["seed"]] = r["value"]
    seeds = sorted(by.get(name, {}).keys() & by.get(base, {}).keys())
    return mean_se([(by[name][s] - by[base][s]) / shift for s in seeds])


def row_sum_change(rows: list[dict], name: str, base: str) -> float | None:
    """The largest relative change of head 1's |1^T W1| between shifted and unshifted
    students of the same seed (0 where only the decay moves it: a centred CE head)."""
    values = {(r["method"], r["seed"]): r["value"] for r in _flat(rows, "head1", "row_sum")}
    changes = [
        abs(values[name, s] - values[base, s]) / max(abs(values[base, s]), 1e-300)
        for (m, s) in values
        if m == name and (base, s) in values
    ]
    return max(changes) if changes else None


def _head(rows: list[dict], summaries: dict, name: str, base: str, shift: float, head: str):
    levels = ("common_mode", *LEVELS)
    return {
        "shifted": {k: summaries[name][head][k] for k in levels},
        "unshifted": {k: summaries[base][head][k] for k in levels},
        "followed": followed(rows, name, base, shift, head),
        "common_mode_minus_unshifted": paired(
            _flat(rows, head, "common_mode"), name, base, "value"
        ),
    }


def student(rows: list[dict], summaries: dict, name: str, teacher_mean: float) -> dict:
    """One shifted student beside its unshifted version: accuracy (and its paired difference),
    each head's common mode and logit levels, the fraction of the shift each head's mean
    logit followed, and (head 1) the relative change of |1^T W1|."""
    base, shift = parse(name)
    heads = ("head1",) if summaries[name]["head2"] is None else ("head1", "head2")
    out = {"base": base, "shift": shift, "teacher_mean_logit": teacher_mean + shift}
    out |= {k: summaries[name][k] for k in ("accuracy", "train_error", "terminal_runs", "runs")}
    out["accuracy_unshifted"] = summaries[base]["accuracy"]
    out["accuracy_minus_unshifted"] = paired(rows, name, base)
    out |= {h: _head(rows, summaries, name, base, shift, h) for h in heads}
    return out | {"head1_row_sum_change": row_sum_change(rows, name, base)}


def summary(rows: list[dict], summaries: dict, teacher_mean: float) -> dict[str, Any] | None:
    """Every shifted student (`student`) whose unshifted version was trained too, the (c)
    minus (d) accuracy at each shift, the prediction judged (`judge`) and a verdict; None
    without shifted students."""
    names = [m for m in summaries if parse(m) and parse(m)[0] in summaries]
    if not names:
        return None
    students = {m: student(rows, summaries, m, teacher_mean) for m in names}
    single_minus_dual = {
        f"{m:g}": paired(rows, label(BASES[0], m), label(BASES[1], m))
        for m in sorted({s["shift"] for s in students.values()})
        if label(BASES[0], m) in students and label(BASES[1], m) in students
    }
    out = {"teacher_mean_logit": teacher_mean, "students": students}
    out |= {"single_minus_dual": single_minus_dual, "prediction": judge(students)}
    return out | {"verdict": verdict(out)}


def judge(students: dict[str, dict]) -> dict[str, bool | None]:
    """The UFM's prediction, part by part (None where no student tests a part): the single
    head's mean logit follows the shift (moves by >= `FOLLOWS` m) and its common-mode
    fraction grows (paired, beyond 2 s.e.); the dual CE head's |1^T W1| is unchanged
    (relative `ROW_SUM_TOLERANCE`) and its mean logit stays (moves by < `STAYS` m); the
    dual's second head follows the shift."""
    single = [s for s in students.values() if s["base"] == BASES[0]]
    dual = [s for s in students.values() if s["base"] == BASES[1]]
    grows = lambda d: d["resolved"] and d["difference"] > 0  # noqa: E731
    parts = {
        "single_follows_shift": [s["head1"]["followed"]["mean"] >= FOLLOWS for s in single],
        "single_common_row_grows": [
            grows(s["head1"]["common_mode_minus_unshifted"]) for s in single
        ],
        "dual_ce_row_sum_only_decays": [
            s["head1_row_sum_change"] is not None and s["head1_row_sum_change"] < ROW_SUM_TOLERANCE
            for s in dual
        ],
        "dual_ce_mean_logit_stays": [abs(s["head1"]["followed"]["mean"]) < STAYS for s in dual],
        "dual_head2_follows_shift": [
            "head2" in s and s["head2"]["followed"]["mean"] >= FOLLOWS for s in dual
        ],
    }
    judged = {k: (all(v) if v else None) for k, v in parts.items()}
    tested = [v for v in judged.values() if v is not None]
    return judged | {"holds": bool(tested) and all(tested)}


def _sentence(name: str, s: dict) -> str:
    h1 = s["head1"]
    text = (
        f"{name}: teacher mean logit {s['teacher_mean_logit']:.3f}; head 1 mean logit "
        f"{_pm(h1['shifted']['mean_logit'])} (unshifted {_pm(h1['unshifted']['mean_logit'])}; "
        f"followed {_pm(h1['followed'], 1, 2)} of m; bias mean {_pm(h1['shifted']['bias_mean'])}"
        f", rows {_pm(h1['shifted']['mean_logit_rows'])}), common mode "
        f"{_pm(h1['shifted']['common_mode'])} (unshifted {_pm(h1['unshifted']['common_mode'])}),"
        f" |1^T W1|/||W1|| {_pm(h1['shifted']['row_sum_fraction'])}"
    )
    if "head2" in s:
        h2 = s["head2"]
        text += (
            f"; |1^T W1| changed by {s['head1_row_sum_change']:.1e} (relative); head 2 mean "
            f"logit {_pm(h2['shifted']['mean_logit'])} (followed {_pm(h2['followed'], 1, 2)})"
        )
    acc = _pm(s["accuracy"], 100, 2)
    return text + f"; accuracy {acc} %, {_diff(s['accuracy_minus_unshifted'])} vs unshifted"


def verdict(out: dict) -> str:
    """The shifted students' numbers and the prediction's parts in one paragraph."""
    parts = [_sentence(name, s) for name, s in out["students"].items()]
    for m, d in out["single_minus_dual"].items():
        parts.append(f"(c) - (d) at m={m}: {_diff(d)} points (paired)")
    judged = out["prediction"]
    failed = [k for k, v in judged.items() if v is False and k != "holds"]
    said = "yes" if judged["holds"] else "no (" + ", ".join(failed) + " fails)"
    return "; ".join(parts) + f". The UFM's prediction holds: {said}"


# ----------------------------------------------------------------------------------------
# The figure's shift row.


CURVES = {  # the shift row's curves: name -> (colour, marker)
    "(c) one head": ("C0", "o"),
    "(d) dual, head 1": ("C4", "s"),
    "(d) dual, head 2": ("C9", "^"),
}


def levels_panel(ax, shift: dict) -> None:
    """Mean logit on the training set against the teacher's shift m (0: the unshifted
    students): head 1 of (c), heads 1 and 2 of (d), mean ± s.e. (filled, labelled for the
    legend), and the part the bias carries (hollow); dashed: the teacher's mean logit."""
    t0, by = shift["teacher_mean_logit"], _by_head(shift)
    ms = sorted({0.0} | {m for curve in by.values() for m in curve})
    ax.plot(ms, [t0 + m for m in ms], "--", color="0.4", lw=0.8, label="teacher's mean logit")
    for j, (name, curve) in enumerate(by.items()):
        for key, filled in (("mean_logit", True), ("bias_mean", False)):
            _curve(ax, curve, key, name, filled, 0.08 * (j - 1), label=name if filled else None)
    ax.set(xlabel="teacher shift m", ylabel="mean logit (filled), bias (hollow)", xticks=ms)


def centring_panel(ax, shift: dict) -> None:
    """The CE head's common-mode fraction (filled) and |1^T W1| / ||W1||_F (hollow) against
    m, for (c) and (d), mean ± s.e. (colours and markers as in `levels_panel`)."""
    by = _by_head(shift)
    names = [n for n in by if "head 2" not in n]
    for j, name in enumerate(names):
        for key, filled in (("common_mode", True), ("row_sum_fraction", False)):
            _curve(ax, by[name], key, name, filled, 0.08 * (j - 0.5))
    ax.set(xlabel="teacher shift m", ylabel="common mode (filled),\n|1ᵀW|/‖W‖ (hollow)")
    ax.set(ylim=(0, None), xticks=sorted(by[names[0]]))


def _curve(ax, curve: dict, key: str, name: str, filled: bool, dx: float, label=None) -> None:
    xs = sorted(curve)
    stats = [curve[m][key] for m in xs]
    if any(s["mean"] is None for s in stats):
        return
    colour, marker = CURVES[name]
    ax.errorbar(
        np.asarray(xs) + dx, [s["mean"] for s in stats], yerr=[s["se"] or 0 for s in stats],
        fmt=marker, color=colour, mfc=None if filled else "white", capsize=2, label=label,
        ls="-" if filled else ":", lw=0.7,
    )  # fmt: skip


def _by_head(shift: dict) -> dict[str, dict[float, dict]]:
    """{curve name: {m: {level: stats}}} with m = 0 from the unshifted students."""
    curves: dict[str, dict[float, dict]] = {}
    for s in shift["students"].values():
        for head in ("head1", "head2"):
            if head not in s:
                continue
            tag = "(c) one head" if s["base"] == BASES[0] else f"(d) dual, head {head[-1]}"
            curve = curves.setdefault(tag, {})
            curve[0.0] = s[head]["unshifted"]
            curve[s["shift"]] = s[head]["shifted"]
    return curves
