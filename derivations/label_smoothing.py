"""Closed form of the plain UFM trained with label-smoothing cross-entropy, derived with sympy.

This is the model of docs/tutorial.md (a model added from outside ufm). Convention as in
derivations/plain_ufm.py, no bias:

    f(W, H) = (1/N) sum_i l_eps(W h_i, y_i) + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2,

    l_eps(z, y) = -sum_j q_j log softmax(z)_j,   q = (1 - eps) e_y + (eps/K) 1,  0 <= eps < 1.

Shapes W (K, d), H (d, N), balanced classes n_k = n, N = K n.  Shorthands as in plain_ufm.py:
mu = sqrt(lambda_W lambda_H), s = sqrt(n lambda_W lambda_H), and here t = s + eps/K.

The result: the smoothed problem is the plain CE problem with s replaced by t.  The minimizer
is a simplex ETF with margin a* = ln(1/t - (K - 1)) while K s + eps < 1, and W = H = 0 once
K s + eps >= 1.  Everything below is our derivation; Zhou et al. 2022 (arXiv 2210.02192,
abstract read) state that under the UFM the global minimizers of the label-smoothing loss
are neural collapse solutions, which is the qualitative half of step 7.

The argument, step by step:

1. The smoothed loss.  Because sum_j q_j = 1,
   l_eps(z, y) = logsumexp(z) - q.z = CE(z, y) + eps (z_y - mean_j z_j),
   so l_eps is unchanged by z -> z + c 1, and it is CE plus eps times the own logit's excess
   over the mean logit (checked entrywise for K = 4 with symbolic logits).
2. At a simplex ETF.  The class-k column of Zbar = a P_K (P_K = I - 11^T/K) has own logit
   a(1 - 1/K), the others -a/K, mean 0 and margin a, so
   l_eps = log(1 + (K - 1) e^{-a}) + eps (K - 1) a / K   (symbolic K, and entrywise K = 4).
3. The penalty.  The factorization bound of plain_ufm.py step 1 (d >= rank Z) gives
   min {lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2 : W H = Z} = mu ||Z||_*, and with collapsed
   features ||Z||_* = ||Zbar D^{1/2}||_* = a sqrt(n) (K - 1), so the penalty is (K - 1) s a.
4. The energy.  E_eps(a) = log(1 + (K - 1) e^{-a}) + (K - 1) t a, t = s + eps/K: exactly
   plain_ufm.py's CE energy with s replaced by t (checked against its ``ce_energy``).  No
   constant is left over: l_eps is a cross-entropy against q, not a divergence.  Had the
   loss been written as KL(q || softmax z) = l_eps - H(q), every value would shift by the
   constant -H(q) (``ls_kl_constant`` below), the minimizer would not move.
5. The sign of the margin.  For a <= 0 the data term has derivative
   (K - 1)(eps/K - e^{-a}/(1 + (K - 1) e^{-a})) <= (K - 1)(eps - 1)/K < 0 (since
   e^{-a}/(1 + (K-1) e^{-a}) >= 1/K there), and the penalty (K - 1) s |a| also falls as a
   rises to 0: no minimizer has a < 0.  This is where eps < 1 is needed.
6. The minimizer.  E_eps is convex; E'_eps(a) = 0 gives a* = ln(1/t - (K - 1)), positive
   iff K t < 1, i.e. K s + eps < 1.  E'_eps(0) = (K - 1)(K t - 1)/K >= 0 otherwise, so then
   a* = 0, W = H = 0 and f* = E(0) = ln K.  Inside: f* = -ln(1 - (K - 1) t) + (K - 1) t a*,
   continuous at K t = 1.
7. Global, not only within the ETF family (our argument).  With d >= K - 1 the factorized
   problem has the minimum of the convex problem min_Z L_eps(Z) + mu ||Z||_* over K x N
   logits (step 3 is a lower bound for every W, H and is attained).  Its minimizer is unique:
   L_eps depends on each column only through its projection onto 1-perp, where its Hessian
   diag(p) - p p^T (the same for every eps, checked for K = 3) is positive definite, so the
   projection P_K Z is unique; and for fixed P_K Z, adding 1 c^T adds c c^T |1|^2 to Z^T Z,
   which strictly increases tr (Z^T Z)^{1/2}, so Z = P_K Z.  The problem is invariant under
   relabelling the classes together with their (equal-sized) blocks of columns and under
   permuting columns within a class, so the unique minimizer is too: Z = Zbar Y with
   Zbar = alpha I + beta 11^T, and Z = P_K Z forces beta = -alpha/K: a simplex ETF (or 0),
   whose best margin is step 6's.  By the equality case of the factorization bound the Grams
   W W^T = sqrt(lambda_H/lambda_W) (Z Z^T)^{1/2} and H^T H = sqrt(lambda_W/lambda_H)
   (Z^T Z)^{1/2} are then unique too.
8. The zero solution, independently.  At Z = 0, softmax is uniform, so the logit gradient
   is G = (1 1^T/K - Q)/N = (1 - eps)(1 1^T/K - Y)/N: (1 - eps) times the plain CE one, whose
   Gram is P_K D P_K/N^2 (plain_ufm.py step 9).  For balanced classes ||G||_op =
   (1 - eps)/(K sqrt(n)), and Z = 0 is global iff ||G||_op <= mu, i.e. K s + eps >= 1:
   the threshold of step 6, reached from the convex side (and for any d).
9. Norms.  As in plain_ufm.py step 4 with the new a*: Z = a* P_K Y, so
   ||w_k||^2 = (K - 1)/K sqrt(n lambda_H/lambda_W) a* and
   ||h_{k,i}||^2 = lambda_W/(n lambda_H) ||w_k||^2.

``derive()`` returns the named results in K, n, lambda_W, lambda_H, epsilon.  Run
``python -m derivations.label_smoothing`` to print them and the worked examples, each
compared with a direct numerical minimization of step 4's energy.
"""

import sympy as sp

from derivations import plain_ufm
from derivations._report import print_report

# --- symbols, declared once ------------------------------------------------------------------
K = sp.Symbol("K", positive=True)  # number of classes
n = sp.Symbol("n", positive=True)  # samples per class (balanced)
lam_W = sp.Symbol("lambda_W", positive=True)  # weight decay on W
lam_H = sp.Symbol("lambda_H", positive=True)  # weight decay on H
eps = sp.Symbol("epsilon", nonnegative=True)  # label smoothing, 0 <= eps < 1
a = sp.Symbol("a", real=True)  # CE margin: own logit minus any other
s = sp.Symbol("s", positive=True)  # sqrt(n lambda_W lambda_H)
t = sp.Symbol("t", positive=True)  # s + eps/K
m = sp.Symbol("m", positive=True)  # K - 1, for sign arguments
u = sp.Symbol("u", positive=True)  # -a >= 0, for the sign of the margin
alpha, beta = sp.symbols("alpha beta", real=True)  # class-mean logits alpha I + beta 11^T

S = sp.sqrt(n * lam_W * lam_H)
T = S + eps / K


def _is_zero(expr: sp.Expr) -> bool:
    return sp.simplify(expr) == 0


def _p(k: int) -> sp.Matrix:
    """P_k = I - 11^T/k for a concrete k."""
    return sp.eye(k) - sp.ones(k, k) / k


def _target(k: int, y: int) -> sp.Matrix:
    """q = (1 - eps) e_y + eps/k 1 for a concrete k."""
    return (1 - eps) * sp.eye(k)[:, y] + eps / k * sp.ones(k, 1)


def _smoothed(z: sp.Matrix, y: int) -> sp.Expr:
    """l_eps(z, y) = -sum_j q_j log softmax(z)_j for a concrete column z."""
    k = z.shape[0]
    lse = sp.log(sum(sp.exp(x) for x in z))
    return sum(q * (lse - x) for q, x in zip(_target(k, y), z, strict=True))


def _loss() -> dict[str, sp.Expr]:
    """Steps 1-2: the smoothed loss, and its value at a simplex-ETF column."""
    z = sp.Matrix(sp.symbols("z_1:5", real=True))
    q = _target(4, 0)
    assert _is_zero(sum(q) - 1)
    lse = sp.log(sum(sp.exp(x) for x in z))
    ce = lse - z[0]
    assert _is_zero(_smoothed(z, 0) - (ce + eps * (z[0] - sum(z) / 4)))
    c = sp.Symbol("c", real=True)
    shifted = _smoothed(z + c * sp.ones(4, 1), 0)
    assert _is_zero(sp.expand_log(shifted - _smoothed(z, 0), force=True))  # z -> z + c 1

    # the ETF column a P_K e_k for a symbolic K: own a(1 - 1/K), K - 1 others -a/K, mean 0
    own, other = a * (1 - 1 / K), -a / K
    mean = (own + (K - 1) * other) / K
    assert _is_zero(mean) and _is_zero(own - other - a)
    ce_column = sp.log(sp.exp(own) + (K - 1) * sp.exp(other)) - own
    ce_reduced = sp.log(1 + (K - 1) * sp.exp(-a))
    assert _is_zero(ce_column - ce_reduced)
    column = ce_reduced + eps * (own - mean)
    assert _is_zero(column - (ce_reduced + eps * (K - 1) * a / K))
    # entrywise for K = 4
    col4 = a * _p(4)[:, 0]
    assert _is_zero(sp.expand_log(_smoothed(col4, 0) - column.subs(K, 4), force=True))
    return {"column": column, "ce_column": ce_reduced}


def _energy(loss: dict[str, sp.Expr]) -> dict[str, sp.Expr]:
    """Steps 3-4: the reduced energy, plain_ufm's with s -> t, and the KL constant."""
    penalty = (K - 1) * s * a  # mu ||Zbar D^{1/2}||_* = mu a sqrt(n) (K - 1), mu sqrt(n) = s
    assert _is_zero(penalty.subs(s, S) - sp.sqrt(lam_W * lam_H) * a * sp.sqrt(n) * (K - 1))
    energy = loss["column"] + penalty
    assert _is_zero(energy - (loss["ce_column"] + (K - 1) * (s + eps / K) * a))
    # the plain UFM's CE energy, derived in plain_ufm.py, with s = sqrt(n lW lH) set to t
    plain = plain_ufm._ce(plain_ufm._factorization())
    plain_at_t = plain["ce_energy"].subs(plain_ufm.a, a).subs(lam_H, t**2 / (n * lam_W))
    assert _is_zero(energy.subs(s, t - eps / K) - plain_at_t)
    # a divergence instead of a cross-entropy: KL(q || p) = l_eps + sum_j q_j log q_j
    k4 = 4
    q4 = _target(k4, 0)
    neg_entropy4 = sum(x * sp.log(x) for x in q4)
    own_q, other_q = 1 - eps + eps / K, eps / K
    kl_constant = own_q * sp.log(own_q) + (K - 1) * other_q * sp.log(other_q)
    assert _is_zero(sp.expand_log(neg_entropy4 - kl_constant.subs(K, k4), force=True))
    return {"energy": energy, "kl_constant": kl_constant, "plain": plain}


def _minimizer(energy: sp.Expr) -> dict[str, sp.Expr]:
    """Steps 5-6: a* >= 0, the stationary point, the threshold and the minimum."""
    data = energy - (K - 1) * s * a
    # step 5: on a = -u <= 0, d(data)/da <= (K - 1)(eps - 1)/K, and eps < 1
    slope = sp.diff(data, a).subs(a, -u)
    bound = (K - 1) * (eps - 1) / K
    gap = sp.simplify((slope - bound).subs(K, 1 + m))
    # slope - bound = m (1/(m+1) - e^u/(1 + m e^u)) = -m (e^u - 1)/((m+1)(1 + m e^u)) <= 0
    assert _is_zero(gap + m * (sp.exp(u) - 1) / ((m + 1) * (1 + m * sp.exp(u))))
    # in t: E = log(1 + (K-1) e^{-a}) + (K-1) t a
    e_t = sp.log(1 + (K - 1) * sp.exp(-a)) + (K - 1) * t * a
    assert _is_zero(energy.subs(s, t - eps / K) - e_t)
    d1 = sp.diff(e_t, a)
    d2 = sp.simplify(sp.diff(e_t, a, 2))
    assert d2.subs(K, 1 + m).is_positive  # convex for K > 1
    (a_star,) = sp.solve(d1, a)
    assert _is_zero(a_star - sp.log(1 / t - (K - 1)))
    a_star = sp.log(1 / t - (K - 1))
    (t_threshold,) = sp.solve(a_star, t)
    assert _is_zero(K * t_threshold - 1)  # a* > 0 iff K t < 1
    assert _is_zero(d1.subs(a, 0) - (K - 1) * (K * t - 1) / K)  # >= 0 past the threshold
    f_interior = -sp.log(1 - (K - 1) * t) + (K - 1) * t * a_star
    # both logarithms' arguments are positive inside (K t < 1): compare their exponentials
    assert _is_zero(sp.exp(e_t.subs(a, a_star) - f_interior) - 1)
    f_zero = sp.simplify(e_t.subs(a, 0))
    assert _is_zero(f_zero - sp.log(K))
    assert sp.limit(f_interior - f_zero, t, 1 / K) == 0  # continuous
    assert sp.limit(a_star, t, 1 / K) == 0
    return {"a_star": a_star, "f_interior": f_interior, "f_zero": f_zero}


def _global() -> None:
    """Step 7's checkable pieces: eps-free Hessian, and the loss and nuclear norm of
    alpha I + beta 11^T."""
    z = sp.Matrix(sp.symbols("z_1:4", real=True))
    hess = sp.hessian(_smoothed(z, 0), list(z))
    p = sp.Matrix([sp.exp(x) for x in z]) / sum(sp.exp(x) for x in z)
    assert sp.simplify(hess - (sp.diag(*p) - p * p.T)) == sp.zeros(3, 3)
    # class-mean logits alpha I + beta 11^T (K = 4): the loss sees alpha only ...
    zbar = alpha * sp.eye(4) + beta * sp.ones(4, 4)
    column = _smoothed(zbar[:, 0], 0)
    assert _is_zero(sp.diff(sp.expand_log(column, force=True), beta))
    # ... and the nuclear norm of Zbar D^{1/2} = sqrt(n) Zbar (symmetric) is
    # sqrt(n) (3 |alpha| + |alpha + 4 beta|), smallest over beta at beta = -alpha/4
    # (symmetric: the singular values are the |eigenvalues|; eigenvectors 1-perp and 1)
    ones = sp.ones(4, 1)
    assert zbar * _p(4) == alpha * _p(4)  # alpha on 1-perp (rank 3)
    assert (zbar * ones - (alpha + 4 * beta) * ones).expand() == sp.zeros(4, 1)


def _zero_certificate() -> sp.Expr:
    """Step 8: the logit gradient at Z = 0 and its spectral norm (balanced)."""
    k, per = 3, 2  # K = 3 classes of 2 columns, concrete; the Gram reduces to any K below
    big_n = k * per
    y = sp.kronecker_product(sp.eye(k), sp.ones(1, per))
    q = (1 - eps) * y + eps / k * sp.ones(k, big_n)
    z = sp.Matrix(k, big_n, lambda i, j: sp.Symbol(f"z_{i}_{j}", real=True))
    zcol = [z[:, j] for j in range(big_n)]
    loss = sum(
        sp.log(sum(sp.exp(x) for x in col)) - sum(q[i, j] * col[i] for i in range(k))
        for j, col in enumerate(zcol)
    )
    grad = sp.Matrix(k, big_n, lambda i, j: sp.diff(loss, z[i, j])) / big_n
    at_zero = grad.subs({x: 0 for x in z})
    plain = (sp.ones(k, big_n) / k - y) / big_n
    assert sp.simplify(at_zero - (1 - eps) * plain) == sp.zeros(k, big_n)
    # plain Gram P_K D P_K / N^2 has lambda_max = n/N^2: ||G||_op = (1 - eps) sqrt(n)/(K n)
    gram = (at_zero * at_zero.T).applyfunc(sp.simplify)
    lam_max = max(gram.eigenvals(), key=lambda e: e.subs(eps, 0))
    norm = (1 - eps) / (K * sp.sqrt(n))
    assert _is_zero(lam_max - (norm**2).subs({K: k, n: per}))
    # Z = 0 is global iff norm <= mu  <=>  K s + eps >= 1
    assert _is_zero((norm / sp.sqrt(lam_W * lam_H)) - (1 - eps) / (K * S))
    return norm


def derive() -> dict[str, sp.Expr]:
    """Derive the label-smoothing closed forms; see the module docstring for the steps."""
    loss = _loss()
    energy = _energy(loss)
    found = _minimizer(energy["energy"])
    _global()
    zero_norm = _zero_certificate()
    to_t = {t: T}
    margin = found["a_star"].subs(to_t)
    w_norm2 = (K - 1) / K * sp.sqrt(n * lam_H / lam_W) * margin
    h_norm2 = lam_W / (n * lam_H) * w_norm2
    # at eps = 0 everything is plain_ufm's
    plain = energy["plain"]
    for ours, theirs in (
        (margin, plain["ce_margin"]),
        (found["f_interior"].subs(to_t), plain["ce_loss_collapsed"]),
        (w_norm2, plain["ce_w_norm2"]),
        (h_norm2, plain["ce_h_norm2"]),
    ):
        assert _is_zero(ours.subs(eps, 0) - theirs)
    return {
        "ls_column_loss": loss["column"],
        "ls_energy": energy["energy"].subs(s, S),
        "ls_margin": margin,
        "ls_loss_collapsed": found["f_interior"].subs(to_t),
        "ls_loss_zero": found["f_zero"],
        "ls_threshold": K * T,  # collapse to zero iff >= 1
        "ls_w_norm2": w_norm2,
        "ls_h_norm2": h_norm2,
        "ls_zero_gradient_norm": zero_norm,
        "ls_kl_constant": energy["kl_constant"],
    }


# worked examples: K = 4, n = 5, lambda_W = lambda_H = 0.01, so s = 0.02236 and K s = 0.0894
EXAMPLES = {
    "collapsed (eps = 0.1)": {K: 4, n: 5, lam_W: 0.01, lam_H: 0.01, eps: 0.1},
    "zero (eps = 0.95)": {K: 4, n: 5, lam_W: 0.01, lam_H: 0.01, eps: 0.95},
}


def worked_examples(results: dict[str, sp.Expr]) -> dict[str, float]:
    """The minimum and margin at each example, from the closed forms."""
    out = {}
    for label, point in EXAMPLES.items():
        collapsed = float(results["ls_threshold"].subs(point)) < 1
        loss = results["ls_loss_collapsed"] if collapsed else results["ls_loss_zero"]
        out[f"loss, {label}"] = float(loss.subs(point).evalf(17))
        out[f"margin, {label}"] = float(results["ls_margin"].subs(point)) if collapsed else 0.0
    return out


def numeric_minimum(results: dict[str, sp.Expr]) -> dict[str, float]:
    """The same numbers by minimizing step 4's energy over a >= 0 numerically (scipy)."""
    import scipy.optimize

    out = {}
    for label, point in EXAMPLES.items():
        energy = sp.lambdify(a, results["ls_energy"].subs(point), "math")
        best = scipy.optimize.minimize_scalar(
            energy, bounds=(0.0, 50.0), method="bounded", options={"xatol": 1e-12}
        )
        margin = best.x if best.x > 1e-6 else 0.0
        out[f"loss, {label}"] = min(best.fun, energy(0.0))
        out[f"margin, {label}"] = margin
    return out


if __name__ == "__main__":
    results = derive()
    numeric = numeric_minimum(results)
    print_report(
        results,
        "worked examples (K=4, n=5, lambda_W=lambda_H=0.01; independent: scipy on the energy)",
        worked_examples(results),
        numeric,
        lambda key, value: abs(value - numeric[key]) <= 1e-6 * max(1.0, abs(value)),
    )
