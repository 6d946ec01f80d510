"""The distillation UFM under a collapsed teacher: an exact reduction to two or three scalars.

derivations/dhkd.py steps 3-5 and 7 (ours; the paper's body was not read and its abstract
gives no closed form). The penalties bound the loss below by a convex program in the logits
(lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2 >= sqrt(lambda_W lambda_H) ||W H||_*, attained for
d >= rank), and a balanced collapsed teacher zt_i = m 1 + a_t (e_{y_i} - 1/K) makes that
program invariant under class permutations, so its minimum is attained at logits
z_i = M + A (e_{y_i} - 1/K) (margin A, common mode M) per head. With c = sqrt(n lambda_W
lambda_H):

    single head  F(A, M) = gamma CE_K(A) + alpha l(A, M) + c (K-1) |A| + kappa(M)
    dual head    F(A1, A2, M2) = gamma CE_K(A1) + alpha l(A2, M2) + c (K-1) sqrt(A1^2 + A2^2)
                                + kappa(M2)          (the CE head's common mode is 0)

with CE_K(A) = log(1 + (K-1) e^{-A}), l the logit loss of those logits against the teacher's,
and kappa the price of the common mode: c K |M| carried by W (no bias), 0 (a free bias
carries it), or a Huber function (a weight-decayed bias carries beta = sign(M) min(|M|,
c/lambda_W), W the rest). F is convex; it is minimized here piece by piece (each piece of
kappa smooth) by Newton's method in float64, and the minimizer is realized as balanced
factors (`ufm._theory.realize`). F's minimum is a lower bound on the UFM's loss for every d
and for nonnegative features too; it is attained by free features when d >= rank.
"""

from typing import NamedTuple

import numpy as np
import scipy.special

SOURCE = (
    "ours: the convex reduction of the distillation UFM under a collapsed teacher, "
    "derivations/dhkd.py steps 3-5 [ours: derivation dhkd.py steps 3-5]"
)
NEWTON_STEPS = 100
GRAD_RTOL = 1e-13  # Newton has converged when |grad F| <= this max(F, 1)


class Setting(NamedTuple):
    """Everything the reduced problem depends on."""

    K: int
    n: int
    lambda_W: float
    lambda_H: float
    heads: str  # "single" or "dual"
    logit_loss: str
    T: float
    gamma: float
    alpha: float
    bias: str  # "none", "free" or "decayed"
    margin: float  # the teacher's a_t
    shift: float  # the teacher's m

    @property
    def c(self) -> float:
        return float(np.sqrt(self.n * self.lambda_W * self.lambda_H))

    @property
    def edge(self) -> float:
        """A decayed bias carries common modes up to this size."""
        return self.c / self.lambda_W


class Optimum(NamedTuple):
    loss: float
    A: float  # margin of the CE head's logits
    A2: float  # margin of the logit head's (dual; = A for single)
    M: float  # common mode of the logit head's logits (bias included)
    beta: float  # the part of M a bias carries
    grad_norm: float  # |grad F| at the returned point (on its piece)
    converged: bool


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _log_cosh(x):
    a = np.abs(x)
    return np.where(a < 20, 0.5 * np.log1p(np.sinh(np.minimum(a, 20)) ** 2), a - np.log(2.0))


def logit_term(s: Setting, A: float, M: float) -> tuple[float, np.ndarray, np.ndarray]:
    """l(A, M) of one sample (every class gives the same), its gradient and Hessian in
    (A, M): student logits z = M 1 + A e, teacher zt = m 1 + a_t e, e = e_0 - 1/K."""
    K, T = s.K, s.T
    e = np.full(K, -1.0 / K)
    e[0] += 1.0
    z, zt = M + A * e, s.shift + s.margin * e
    J = np.stack([e, np.ones(K)])  # dz/d(A, M)
    if s.logit_loss == "kd":
        log_pt = zt / T - scipy.special.logsumexp(zt / T)
        log_ps = z / T - scipy.special.logsumexp(z / T)
        pt, ps = np.exp(log_pt), np.exp(log_ps)
        value = T**2 * float(np.sum(pt * (log_pt - log_ps)))
        return value, J @ (T * (ps - pt)), J @ (np.diag(ps) - np.outer(ps, ps)) @ J.T
    if s.logit_loss == "binary-kl":
        x, t = z / T, zt / T
        q = scipy.special.expit(t)
        entry = q * (_log_sigmoid(t) - _log_sigmoid(x)) + (1 - q) * (
            _log_sigmoid(-t) - _log_sigmoid(-x)
        )
        r = scipy.special.expit(x)
        d1, d2 = T * (r - q), r * (1 - r)
    else:
        u = (z - zt) / T
        entry = _log_cosh(u / 2)
        r = scipy.special.expit(u)
        d1, d2 = T * (r - 0.5), r * (1 - r)
    return T**2 * float(np.sum(entry)), J @ d1, (J * d2) @ J.T


def _ce(K: int, A: float) -> tuple[float, float, float]:
    """CE_K(A) = log(1 + (K-1) e^{-A}) and its first two derivatives."""
    u = np.log(K - 1) - A
    p_other = scipy.special.expit(u)  # 1 - p_target
    return float(np.logaddexp(0.0, u)), -p_other, p_other * (1 - p_other)


def _kappa(s: Setting, piece: str, M: float) -> tuple[float, float, float]:
    """The price of the common mode on one piece, with its two derivatives."""
    c, K = s.c, s.K
    if piece == "huber":
        return s.lambda_W * K * M**2 / 2, s.lambda_W * K * M, s.lambda_W * K
    if piece in ("plus", "minus"):
        sign = 1.0 if piece == "plus" else -1.0
        offset = -(c**2) * K / (2 * s.lambda_W) if s.bias == "decayed" else 0.0
        return c * K * sign * M + offset, c * K * sign, 0.0
    return 0.0, 0.0, 0.0


def objective(s: Setting, piece: str, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """F on one piece of kappa, with gradient and Hessian; x = (A, A2, M) without A2 for
    one head and without M on the piece M = 0."""
    K, dual, has_M = s.K, s.heads == "dual", piece != "zero"
    A1, A2 = x[0], x[1] if dual else x[0]
    M = x[-1] if has_M else 0.0
    size = x.size
    g, H = np.zeros(size), np.zeros((size, size))
    ce, ce1, ce2 = _ce(K, A1)
    lv, lg, lh = logit_term(s, A2, M)
    value = s.gamma * ce + s.alpha * lv
    g[0] += s.gamma * ce1
    H[0, 0] += s.gamma * ce2
    i = 1 if dual else 0  # index of A2
    idx = [i] + ([size - 1] if has_M else [])
    g[idx] += s.alpha * lg[: len(idx)]
    H[np.ix_(idx, idx)] += s.alpha * lh[: len(idx), : len(idx)]
    w = s.c * (K - 1)
    if dual:
        a = np.array([A1, A2])
        r = float(np.hypot(A1, A2))
        if r == 0:  # zero margins: the subgradient is handled by `reduced`
            return value + _kappa_terms(s, piece, M, g, H), g, H
        value += w * r
        g[:2] += w * a / r
        H[:2, :2] += w * (np.eye(2) / r - np.outer(a, a) / r**3)
    else:
        value += w * abs(A1)
        g[0] += w * np.sign(A1)
    return value + _kappa_terms(s, piece, M, g, H), g, H


def _kappa_terms(s: Setting, piece: str, M: float, g: np.ndarray, H: np.ndarray) -> float:
    """Add kappa's derivatives to g, H (in place, last entry); return its value."""
    if piece == "zero":
        return 0.0
    kv, kg, kh = _kappa(s, piece, M)
    g[-1] += kg
    H[-1, -1] += kh
    return kv


def _norm(g: np.ndarray) -> float:
    return float(np.linalg.norm(g))


def _newton(s: Setting, piece: str, x: np.ndarray, free: np.ndarray):
    """Damped Newton on one convex piece over the entries `free` of x (the others stay):
    (x, F, |grad F| on the free entries)."""
    value, g, H = objective(s, piece, x)
    for _ in range(NEWTON_STEPS):
        if _norm(g[free]) <= GRAD_RTOL * max(abs(value), 1.0):
            break
        d = np.zeros_like(x)
        try:
            d[free] = -np.linalg.solve(H[np.ix_(free, free)], g[free])
        except np.linalg.LinAlgError:
            d[free] = -g[free]
        # margins stay positive (F has a cone point at zero margins, where Newton stalls;
        # zero margins are a piece of their own): at most half the way to zero per step
        margins, towards_zero = (
            x[: -1 if piece != "zero" else None],
            d[: len(x) - (piece != "zero")],
        )
        shrink = towards_zero < 0
        t = min(1.0, float(np.min(-0.5 * margins[shrink] / towards_zero[shrink], initial=1.0)))
        while t > 1e-12:
            trial = objective(s, piece, x + t * d)
            # Armijo; near the optimum the decrease is below F's rounding (T^2 kd: ~1e-14),
            # so a step within rounding of F that shrinks the gradient is taken too
            armijo = trial[0] <= value + 1e-4 * t * float(g @ d)
            flat = abs(trial[0] - value) <= 1e-12 * max(abs(value), 1.0)
            if np.isfinite(trial[0]) and (
                armijo or (flat and _norm(trial[1][free]) < _norm(g[free]))
            ):
                break
            t /= 2
        else:
            break  # no decrease along d: at the precision's floor
        x, (value, g, H) = x + t * d, trial
    return x, value, _norm(g[free])


def _pieces(bias: str, logit_loss: str) -> tuple[str, ...]:
    if logit_loss == "kd":  # shift-invariant: the common mode only costs
        return ("zero",)
    return {"none": ("zero", "plus", "minus"), "free": ("free",)}.get(
        bias, ("huber", "plus", "minus")
    )


def _valid(piece: str, M: float, bias: str, edge: float) -> bool:
    if piece in ("zero", "free"):
        return True
    if piece == "huber":
        return abs(M) <= edge
    sign = 1.0 if piece == "plus" else -1.0
    return sign * M >= (edge if bias == "decayed" else 0.0)


def reduced(s: Setting) -> Optimum:
    """The minimum of F (module doc) and its minimizer: the best valid piece (of kappa, and
    margins nonzero or zero, where F is not smooth)."""
    best = None
    margins = 1 if s.heads == "single" else 2
    for piece in _pieces(s.bias, s.logit_loss):
        for zero_margin in (False, True):
            A0 = 0.0 if zero_margin else max(abs(s.margin), 1.0)
            x0 = np.asarray([A0] * margins + ([s.shift] if piece != "zero" else []), dtype=float)
            free = np.arange(x0.size) >= (margins if zero_margin else 0)
            x, value, gnorm = _newton(s, piece, x0, free)
            M = float(x[-1]) if piece != "zero" else 0.0
            if not (np.isfinite(value) and _valid(piece, M, s.bias, s.edge)):
                continue
            if zero_margin:  # a minimum iff the smooth part's slope is within the kink's
                slope = _norm(objective(s, piece, x)[1][:margins])
                if slope > s.c * (s.K - 1) * (1 + 1e-9):
                    continue
            converged = gnorm <= GRAD_RTOL * max(abs(value), 1.0)
            A, A2 = float(x[0]), float(x[margins - 1])
            beta = {"none": 0.0, "free": M}.get(s.bias, float(np.sign(M) * min(abs(M), s.edge)))
            candidate = Optimum(float(value), A, A2, M, beta, gnorm, bool(converged))
            if best is None or candidate.loss < best.loss:
                best = candidate
    assert best is not None  # the M = 0 / free / huber piece with zero margins is valid or
    return best


def logits(opt: Optimum, K: int, heads: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The class-mean logits W Hbar of the CE head and (dual) of the logit head, bias
    excluded: A (I - J/K) + M_W J with M_W = M - beta the part W carries."""
    P = np.eye(K) - 1.0 / K
    J = np.ones((K, K))
    MW = opt.M - opt.beta
    if heads == "single":
        return opt.A * P + MW * J, None
    return opt.A * P, opt.A2 * P + MW * J


ZERO_HEAD = 1e-8  # a head whose rows are all shorter than this has no direction: fraction 0


def common_mode_fraction(W, xp=np):
    """|mean of the rows of W| / max_k |w_k| (0 for a centred head, 1 when every row is the
    same; 0 for a head that is zero to ZERO_HEAD). `xp`: numpy (a float, the default) or
    jax.numpy (a jax scalar, jittable: the dynamics record it every step)."""
    if xp is np:
        W = np.asarray(W, dtype=float)
    top = xp.max(xp.linalg.norm(W, axis=1))
    ok = top > ZERO_HEAD
    value = xp.where(ok, xp.linalg.norm(W.mean(axis=0)) / xp.where(ok, top, 1.0), 0.0)
    return float(value) if xp is np else value
