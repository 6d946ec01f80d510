"""Closed forms of the deep linear unconstrained features model, derived with sympy.

Canonical convention (docs/convention.md, the only one in ``ufm``):

    f = (1/N) sum_i loss(W_M ... W_1 h_i (+ b), y_i)
        + sum_m lambda_Wm/2 ||W_m||_F^2 + lambda_H/2 ||H_1||_F^2

with MSE loss 1/2 ||z - e_y||^2 (data term (1/(2N))||Z - Y||^2) or CE loss -log softmax(z)_y.
M weight matrices, M + 1 factors X_0 = H_1, X_j = W_j; lambda_0 = lambda_H, lambda_j =
lambda_Wj.  Class counts n_k, N = sum n_k; balanced data has n_k = n, N = K n.  Shorthands:
Lambda = lambda_H prod_m lambda_Wm (the product of all M + 1 penalties), mu = Lambda^{1/(M+1)},
p = (M-1)/(M+1), P_K = I - 11^T/K.  The results are closed forms in the settings of Dang et
al. 2023 (arXiv 2301.00437) and, for deep CE, Garrod & Keating 2024 (arXiv 2410.23169),
derived here; how much of each paper was read is stated in the sources of
ufm/models/deep_linear/theory.py.

The argument, step by step:

1. Factorization bound for one singular value.
   min {sum_{j=0}^M lambda_j/2 s_j^2 : prod_j s_j = z} = (M+1)/2 mu z^{2/(M+1)}.
   Lagrange with the constraint sum_j log s_j = log z: lambda_j s_j = nu/s_j, so every
   lambda_j s_j^2 equals the same nu; the constraint gives nu^{M+1} = Lambda z^2, so
   nu = mu z^{2/(M+1)}, s_j^2 = z^{2/(M+1)} mu/lambda_j and the value is (M+1) nu/2.
   It is the global minimum for every M by AM-GM: the mean of the M + 1 terms lambda_j s_j^2
   is at least their geometric mean (Lambda z^2)^{1/(M+1)} = mu z^{2/(M+1)}, with equality
   iff all terms are equal.  For M = 2, 3 it is checked again without AM-GM: in log
   coordinates u_j = log s_j^2 (s_M eliminated) the energy is a sum of exponentials of
   affine functions, hence convex, and sympy finds the gradient zero and the Hessian positive
   definite at the point above.  Applied to every singular value of Z = X_M ... X_0 with
   chained singular vectors (von Neumann), the bound is the Schatten-2/(M+1) quasi-norm
   term (M+1)/2 mu sum_i sigma_i(Z)^{2/(M+1)}.
2. The scalar problem per singular direction.  With a target of singular value s the MSE
   problem decouples (von Neumann, as in derivations/plain_ufm.py step 5) into
       psi(z) = (s - z)^2/(2N) + (M+1)/2 mu z^{2/(M+1)},  z >= 0.
   With a = z/s and gamma = N mu s^{-2M/(M+1)}: psi = s^2/(2N) g(a),
   g(a) = (1 - a)^2 + (M+1) gamma a^{2/(M+1)}.  g'(a) = 2 a^{-p} (gamma - h(a)) with
   h(a) = (1 - a) a^p, so the stationary points are the roots of h(a) = gamma.  For M >= 2
   (0 < p < 1) h vanishes at 0 and 1 and h'(a) = a^{p-1} (1+p)(a_m - a) with
   a_m = (M-1)/(2M): h rises on [0, a_m] and falls on [a_m, 1].  So for gamma < h(a_m) there
   are two roots a_1 < a_m < a_2: g rises on (0, a_1), falls on (a_1, a_2) and rises after
   a_2; the only candidates for the minimum are a = 0 (g = 1) and the largest root a_2.  For
   gamma > gamma_max = h(a_m) only a = 0 is left.  M = 1: p = 0, h = 1 - a, g is convex and
   a = max(0, 1 - gamma) (the plain soft threshold, z = s - N mu).
3. Root selection.  At a stationary point substitute gamma = h(a):
   g(a) - 1 = a((M-1) - M a), so the nonzero root wins iff a > (M-1)/M (>= a_m).  As h falls
   on [a_m, 1], a_2 > (M-1)/M iff gamma < gamma* = h((M-1)/M) = (1/M)((M-1)/M)^p; at
   gamma = gamma* both a = 0 and a = (M-1)/M are global (first-order transition for M >= 2).
   Dang et al.'s parametrization: a = x^M/(1 + x^M), beta = M gamma^{(M+1)/M}.  Then
   h(a) = gamma becomes beta (1 + x^M)^2 = M x^{M-1} (their stationarity), beta* =
   M gamma*^{(M+1)/M} = (M-1)^{(M-1)/M}/M, beta_max = M gamma_max^{(M+1)/M} =
   (M+1)^2/(4M) ((M-1)/(M+1))^{(M-1)/M}, and with F_M(x; beta) = 1/(1 + x^M) + beta x,
   F_M - 1 = x^M (M-1-x^M)/(1+x^M)^2 = g(a) - 1 at stationarity (symbolic M, and M = 2..6).
   The switch a = (M-1)/M is x^M = M - 1, the peak a_m is x^M = (M-1)/(M+1).
4. Minority collapse (bias-free MSE).  The target Y has s_k = sqrt(n_k) along e_k,
   so gamma_k = N mu n_k^{-M/(M+1)}, decreasing in n_k.  Class k is off
   iff gamma_k >= gamma*, i.e. n_k <= (N mu/gamma*)^{(M+1)/M}
   = M^2 N (N Lambda)^{1/M}/(M-1)^{(M-1)/M}; M = 1 (0^0 = 1): n_k <= N^2 lambda_W lambda_H.
   Dang's beta_k = b/n_k with b = M N (N Lambda)^{1/M} is M gamma_k^{(M+1)/M}.
5. Per-layer quantities.  Factor j has singular value z^{1/(M+1)} (mu/lambda_j)^{1/2} on
   each direction (step 1), with chained singular vectors, so partial products multiply the
   singular values.  Class k (bias-free, z_k = a_k sqrt(n_k), right vector Y^T e_k/sqrt(n_k)):
   the layer-m features H_m = W_{m-1} ... W_1 H_1 have class means of squared norm
   ||hbar_{m,k}||^2 = z_k^{2m/(M+1)} mu^m / (Lambda_below n_k), Lambda_below =
   prod_{j<m} lambda_j, and the head W_M ... W_m has Gram entry z_k^{2(M+1-m)/(M+1)}
   mu^{M+1-m}/Lambda_above, Lambda_above = prod_{j>=m} lambda_j (so Lambda_below
   Lambda_above = Lambda and n_k ||hbar_{m,k}||^2 head_kk = z_k^2).  m = 1: W W^T has
   lambda_H z^{2M/(M+1)}/mu = N lambda_H x^M (Dang's form) and ||hbar_{1,k}||^2
   = x^M/(N lambda_H (1+x^M)^2); their product is a^2 (own logit a).  Checked entrywise with
   diagonal factors for M = 3.  Balanced bias-free: N = K n, K directions s = sqrt(n), loss
   K psi = g(a)/2; with an unregularized bias the target is Y_c with Y_c Y_c^T =
   D - n n^T/N = n P_K (K = 4 with symbolic n): K - 1 directions, loss (K-1) psi.
6. Deep CE, balanced.  Within-class collapse reduces the problem
   to min over Zbar of CE(Zbar) + (M+1)/2 mu sum_i sigma_i(Zbar D^{1/2})^{2/(M+1)}, D = n I.
   ETF: Zbar = a P_K, Zbar D^{1/2} = a sqrt(n) P_K has K - 1 singular values a sqrt(n) (K = 4,
   6 by eigenvalues; trace for any K), per-sample CE ln(1 + (K-1) e^{-a}), so
       E_ETF(a) = ln(1 + (K-1) e^{-a}) + (M+1)/2 (K-1) mu (a sqrt n)^{2/(M+1)}.
   Orthoplex (even K): Zbar = a [[I, -I], [-I, I]] (blocks K/2) has singular values 2a
   (K/2 times) and 0, own logit a, antipode -a, the rest 0, so per-sample CE
   ln(1 + (K-2) e^{-a} + e^{-2a}) (K = 4, 6 entrywise) and
       E_orth(a) = ln(1 + (K-2) e^{-a} + e^{-2a}) + (M+1)/2 (K/2) mu (2 a sqrt n)^{2/(M+1)}.
   M = 1 gives the plain ETF energy ln(1 + (K-1) e^{-a}) + (K-1) sqrt(n lambda_W lambda_H) a.

``derive()`` returns the named results (expressions in the module's symbols; M symbolic).
Run ``python -m derivations.deep_linear`` to print them and the worked examples (``NOTES``:
numbers computed independently of this derivation, not read in a paper).
"""

import sympy as sp

from derivations._report import print_report

# --- symbols, declared once ------------------------------------------------------------------
M = sp.Symbol("M", positive=True, integer=True)  # number of weight matrices (depth)
m = sp.Symbol("m", positive=True, integer=True)  # layer index 1..M
j = sp.Symbol("j", integer=True, nonnegative=True)  # factor index 0..M (0 = H_1)
lam = sp.IndexedBase("lambda", positive=True)  # lambda[j]: penalty of factor j
lam_j = sp.Symbol("lambda_j", positive=True)  # one factor's penalty
lam_H = sp.Symbol("lambda_H", positive=True)  # penalty of H_1 (lambda_0)
Lam = sp.Symbol("Lambda", positive=True)  # lambda_H prod_m lambda_Wm = mu^{M+1}
Lam_below = sp.Symbol("Lambda_below", positive=True)  # prod_{j<m} lambda_j
Lam_above = sp.Symbol("Lambda_above", positive=True)  # prod_{j>=m} lambda_j
mu = sp.Symbol("mu", positive=True)  # Lambda^{1/(M+1)}
nu = sp.Symbol("nu", positive=True)  # Lagrange multiplier: the common lambda_j s_j^2
z = sp.Symbol("z", positive=True)  # a singular value of the logits Z
s_j = sp.Symbol("s_j", positive=True)  # a singular value of factor j
s = sp.Symbol("s", positive=True)  # a singular value of the MSE target
N = sp.Symbol("N", positive=True)  # total samples
a = sp.Symbol("a", positive=True)  # own fraction z/s (MSE) or margin (CE)
gamma = sp.Symbol("gamma", positive=True)  # N mu s^{-2M/(M+1)}
x = sp.Symbol("x", positive=True)  # Dang et al.'s variable, ||w_k||^2 = N lambda_H x^M
beta = sp.Symbol("beta", positive=True)  # Dang et al.'s beta = M gamma^{(M+1)/M}
n_k = sp.Symbol("n_k", positive=True)  # samples in class k
K = sp.Symbol("K", positive=True)  # number of classes
n = sp.Symbol("n", positive=True)  # samples per class (balanced)

P = (M - 1) / (M + 1)  # the exponent p
Q = 2 / (M + 1)  # the quasi-norm exponent


def _is_zero(expr: sp.Expr) -> bool:
    return sp.simplify(expr) == 0


def _forced(expr: sp.Expr) -> sp.Expr:
    """Combine powers of positive quantities ((u^r)^t = u^{rt}, (u v)^r = u^r v^r)."""
    return sp.simplify(sp.powdenest(sp.expand_power_base(expr, force=True), force=True))


def _p(k: int) -> sp.Matrix:
    """P_k = I - 11^T/k for a concrete k."""
    return sp.eye(k) - sp.ones(k, k) / k


def _factorization() -> dict[str, sp.Expr]:
    """Step 1: min sum_j lambda_j s_j^2/2 subject to prod_j s_j = z."""
    # Lagrange: d/ds_j [lambda_j s_j^2/2 - nu log s_j] = 0
    (s_opt,) = sp.solve(sp.diff(lam_j * s_j**2 / 2 - nu * sp.log(s_j), s_j), s_j)
    sv2 = sp.simplify(s_opt**2)
    assert _is_zero(lam_j * sv2 - nu)  # every term lambda_j s_j^2 is nu
    # constraint prod_j s_j^2 = z^2: nu^{M+1}/prod_j lambda_j = z^2
    prod = sp.Product(sv2.subs(lam_j, lam[j]), (j, 0, M)).doit()
    prod = prod.subs(sp.Product(1 / lam[j], (j, 0, M)), 1 / Lam)
    assert _is_zero(prod - nu ** (M + 1) / Lam)
    nu_opt = mu * z**Q
    assert _is_zero(_forced((nu_opt ** (M + 1) / Lam).subs(Lam, mu ** (M + 1))) - z**2)
    value = sp.Sum(lam[j] * sv2.subs(lam_j, lam[j]) / 2, (j, 0, M)).doit().subs(nu, nu_opt)
    bound = (M + 1) / 2 * mu * z**Q
    assert _is_zero(value - bound)
    # AM-GM: mean of the M+1 terms >= geometric mean (Lambda z^2)^{1/(M+1)} = mu z^{2/(M+1)}
    geo = (Lam * z**2) ** (1 / (M + 1))
    assert _is_zero(_forced(geo.subs(Lam, mu ** (M + 1))) - nu_opt)
    factor_sv2 = sp.simplify(sv2.subs(nu, nu_opt))
    assert _is_zero(factor_sv2 - z**Q * mu / lam_j)

    # explicit M = 2, 3: convex in u_j = log s_j^2 (j < M), stationary at the claimed point
    for depth in (2, 3):
        lams = sp.symbols(f"l0:{depth + 1}", positive=True)
        us = sp.symbols(f"u0:{depth}", real=True)
        free = sum(lams[i] * sp.exp(us[i]) / 2 for i in range(depth))
        energy = free + lams[depth] * z**2 * sp.exp(-sum(us)) / 2
        mu_d = sp.prod(lams) ** sp.Rational(1, depth + 1)
        point = {
            us[i]: sp.log(z ** sp.Rational(2, depth + 1) * mu_d / lams[i]) for i in range(depth)
        }
        grad = [sp.diff(energy, u).subs(point) for u in us]
        assert all(_is_zero(_forced(gi)) for gi in grad)
        hess = sp.hessian(energy, us).subs(point).applyfunc(_forced)
        minors = [_forced(hess[:k, :k].det()) for k in range(1, depth + 1)]
        assert all(mi.is_positive for mi in minors)
        val = _forced(energy.subs(point))
        assert _is_zero(val - bound.subs(M, depth).subs(mu, mu_d))
        # the last factor's s_M^2 = z^2 / prod_{j<M} s_j^2 has the same form
        last = _forced(z**2 * sp.exp(-sum(us)).subs(point))
        assert _is_zero(last - z ** sp.Rational(2, depth + 1) * mu_d / lams[depth])
    return {"factor_bound": bound, "factor_sv2": factor_sv2}


def _scalar(bound: sp.Expr) -> dict[str, sp.Expr]:
    """Steps 2-3: the scalar problem, its stationary points and the root selection."""
    psi = (s - z) ** 2 / (2 * N) + bound
    gamma_s = N * mu * s ** (-2 * M / (M + 1))
    g = (1 - a) ** 2 + (M + 1) * gamma * a**Q
    assert _is_zero(psi.subs(z, a * s) - s**2 / (2 * N) * g.subs(gamma, gamma_s))
    h = (1 - a) * a**P
    assert _is_zero(sp.diff(g, a) - 2 * a ** (-P) * (gamma - h))
    # h' = a^{p-1} (1+p) (a_m - a): rises below a_m, falls above
    (a_m,) = sp.solve(sp.diff(h, a), a)
    assert _is_zero(a_m - (M - 1) / (2 * M))
    assert _is_zero(sp.diff(h, a) - a ** (P - 1) * (1 + P) * (a_m - a))
    assert h.subs(a, 1) == 0
    gamma_max = sp.simplify(h.subs(a, a_m))
    # M = 1: soft threshold
    assert _is_zero(h.subs(M, 1) - (1 - a))
    (a_plain,) = sp.solve(h.subs(M, 1) - gamma, a)
    assert _is_zero(a_plain - (1 - gamma))
    assert sp.diff(g.subs(M, 1), a, 2) == 2  # convex
    assert _is_zero((a_plain * s).subs(gamma, gamma_s.subs(M, 1)) - (s - N * mu))

    # step 3: g - 1 at a stationary point, gamma eliminated
    g_stat = sp.simplify(g.subs(gamma, h) - 1)
    g_stat_notes = a * ((M - 1) - M * a)
    assert _is_zero(g_stat - g_stat_notes)
    assert set(sp.solve(g_stat_notes, a)) == {(M - 1) / M}  # a > 0: the only root
    a_switch = (M - 1) / M
    assert _is_zero(g_stat_notes.subs(a, a_switch))
    assert _is_zero(a_switch - a_m - (M - 1) / (2 * M))  # a_switch >= a_m, on the falling side
    gamma_star = h.subs(a, a_switch)
    assert _is_zero(gamma_star - (1 / M) * ((M - 1) / M) ** P)
    gamma_star = (1 / M) * ((M - 1) / M) ** P
    return {
        "psi": psi,
        "gamma": gamma_s,
        "g": g,
        "h": h,
        "h_peak": a_m,
        "gamma_max": gamma_max,
        "g_stationary_minus_1": g_stat_notes,
        "a_switch": a_switch,
        "gamma_star": gamma_star,
        "own_fraction_M1": 1 - gamma,
    }


def _dang(sc: dict[str, sp.Expr]) -> dict[str, sp.Expr]:
    """Step 3 (continued): Dang et al.'s x-parametrization."""
    a_of_x = x**M / (1 + x**M)
    x_of_a = (a / (1 - a)) ** (1 / M)
    assert _is_zero(_forced(a_of_x.subs(x, x_of_a)) - a)
    beta_of_gamma = M * gamma ** ((M + 1) / M)
    stat_x = M * x ** (M - 1) / (1 + x**M) ** 2  # beta at a stationary point
    F = 1 / (1 + x**M) + beta * x
    F_stat = x**M * (M - 1 - x**M) / (1 + x**M) ** 2
    beta_star = (M - 1) ** ((M - 1) / M) / M
    beta_max = (M + 1) ** 2 / (4 * M) * ((M - 1) / (M + 1)) ** ((M - 1) / M)
    h_x = sc["h"].subs(a, a_of_x)
    # symbolic M
    assert _is_zero(_forced(beta_of_gamma.subs(gamma, h_x)) - stat_x)
    assert _is_zero(F.subs(beta, stat_x) - 1 - F_stat)
    assert _is_zero(sc["g_stationary_minus_1"].subs(a, a_of_x) - F_stat)
    assert _is_zero(_forced(beta_of_gamma.subs(gamma, sc["gamma_star"])) - beta_star)
    assert _is_zero(_forced(x_of_a.subs(a, sc["a_switch"]) ** M) - (M - 1))
    assert _is_zero(_forced(x_of_a.subs(a, sc["h_peak"]) ** M) - (M - 1) / (M + 1))
    # explicit M = 2..6 (M = 1 for the parts that hold there)
    for depth in range(1, 7):
        at = {M: depth}
        if depth >= 2:
            assert _is_zero((beta_of_gamma.subs(gamma, h_x) - stat_x).subs(at))
            assert _is_zero((beta_of_gamma.subs(gamma, sc["gamma_max"]) - beta_max).subs(at))
        assert _is_zero((F.subs(beta, stat_x) - 1 - F_stat).subs(at))
        assert _is_zero((sc["g_stationary_minus_1"].subs(a, a_of_x) - F_stat).subs(at))
        assert _is_zero((beta_of_gamma.subs(gamma, sc["gamma_star"]) - beta_star).subs(at))
    assert beta_star.subs(M, 1) == 1  # 0^0 = 1: the M = 1 threshold beta < 1
    assert _is_zero(beta_star.subs(M, 2) - sp.Rational(1, 2))
    assert _is_zero(beta_max.subs(M, 2) - 9 / (8 * sp.sqrt(3)))
    return {
        "a_of_x": a_of_x,
        "x_of_a": x_of_a,
        "beta_of_gamma": beta_of_gamma,
        "beta_stationary": stat_x,
        "dang_F": F,
        "dang_F_stationary_minus_1": F_stat,
        "beta_star": beta_star,
        "beta_max": beta_max,
    }


def _minority(sc: dict[str, sp.Expr], dang: dict[str, sp.Expr]) -> dict[str, sp.Expr]:
    """Step 4: the class-count threshold of bias-free MSE."""
    mu_lam = Lam ** (1 / (M + 1))
    gamma_k = sc["gamma"].subs(s, sp.sqrt(n_k)).subs(mu, mu_lam)
    assert _is_zero(_forced(gamma_k - N * mu_lam * n_k ** (-M / (M + 1))))
    assert sp.diff(gamma_k, n_k).is_negative  # off iff n_k <= the threshold
    from_gamma = (N * mu_lam / sc["gamma_star"]) ** ((M + 1) / M)  # gamma_k = gamma* here
    threshold = M**2 * N * (N * Lam) ** (1 / M) / (M - 1) ** ((M - 1) / M)
    assert _is_zero(_forced(from_gamma) - threshold)
    for depth in range(1, 7):
        at = {M: depth}
        assert _is_zero((from_gamma - threshold).subs(at))
        assert _is_zero(
            _forced(gamma_k.subs(at).subs(n_k, threshold.subs(at))) - sc["gamma_star"].subs(at)
        )
    threshold_m1 = N**2 * Lam  # Lambda = lambda_W lambda_H
    assert _is_zero(threshold.subs(M, 1) - threshold_m1)  # the general form with 0^0 = 1
    b = M * N * (N * Lam) ** (1 / M)
    assert _is_zero(_forced(dang["beta_of_gamma"].subs(gamma, gamma_k) - b / n_k))
    return {
        "gamma_k": gamma_k,
        "minority_threshold": threshold,
        "minority_threshold_M1": threshold_m1,
        "dang_b": b,
    }


def _layers(sc: dict[str, sp.Expr], fac: dict[str, sp.Expr]) -> dict[str, sp.Expr]:
    """Step 5: per-layer singular values, class-mean Grams and head Grams."""
    sv2 = fac["factor_sv2"].subs(lam_j, lam[j])
    below = sp.Product(sv2, (j, 0, m - 1)).doit()  # features H_m: factors 0..m-1
    above = sp.Product(sv2, (j, m, M)).doit()  # head W_M ... W_m: factors m..M
    below = below.subs(sp.Product(1 / lam[j], (j, 0, m - 1)), 1 / Lam_below)
    above = above.subs(sp.Product(1 / lam[j], (j, m, M)), 1 / Lam_above)
    hbar_m = sp.simplify(below / n_k)
    head_m = sp.simplify(above)
    assert _is_zero(hbar_m - z ** (2 * m / (M + 1)) * mu**m / (Lam_below * n_k))
    assert _is_zero(head_m - z ** (2 * (M + 1 - m) / (M + 1)) * mu ** (M + 1 - m) / Lam_above)
    full = {Lam_above: mu ** (M + 1) / Lam_below}
    assert _is_zero(_forced(n_k * hbar_m * head_m.subs(full)) - z**2)
    # m = 1: Lambda_below = lambda_H, Lambda_above = mu^{M+1}/lambda_H
    first = {m: 1, Lam_below: lam_H}
    hbar_1 = sp.simplify(hbar_m.subs(first))
    W_gram = _forced(head_m.subs(first).subs(Lam_above, mu ** (M + 1) / lam_H))
    assert _is_zero(W_gram - lam_H * z ** (2 * M / (M + 1)) / mu)
    own = {z: a * sp.sqrt(n_k)}
    assert _is_zero(_forced((hbar_1 * W_gram).subs(own)) - a**2)  # (W hbar_k)_k = a

    # Dang's forms at stationarity: s = sqrt(n_k) with gamma = h(a), a = x^M/(1+x^M)
    a_x = x**M / (1 + x**M)
    n_stat = (N * mu / sc["h"].subs(a, a_x)) ** ((M + 1) / M)  # s^2 from gamma = h(a)
    at_stat = {z: a_x * sp.sqrt(n_k)}
    W_gram_dang = N * lam_H * x**M
    hbar_1_dang = x**M / (N * lam_H * (1 + x**M) ** 2)
    per_layer_dang = (N * Lam) ** (1 / M) * x  # lambda_j s_j^2 = b/(M N) x
    for depth in range(2, 5):
        at = {M: depth}
        sub = {n_k: n_stat.subs(at)}
        assert _is_zero(_forced(W_gram.subs(at_stat).subs(at).subs(sub)) - W_gram_dang.subs(at))
        assert _is_zero(_forced(hbar_1.subs(at_stat).subs(at).subs(sub)) - hbar_1_dang.subs(at))
        lam_s2 = (lam_j * fac["factor_sv2"]).subs(at_stat).subs(at).subs(sub)
        lam_s2 = _forced(lam_s2.subs(mu, Lam ** sp.Rational(1, depth + 1)))
        assert _is_zero(lam_s2 - _forced(per_layer_dang.subs(at)))

    # entrywise for M = 3, two classes: diagonal balanced factors X_0 = Hbar, X_1, X_2, X_3
    depth = 3
    zs = sp.symbols("z1:3", positive=True)
    ns = sp.symbols("n1:3", positive=True)
    lams = sp.symbols("l0:4", positive=True)
    mu3 = sp.prod(lams) ** sp.Rational(1, 4)
    root = [sp.diag(*[(zk ** sp.Rational(1, 4)) * sp.sqrt(mu3 / li) for zk in zs]) for li in lams]
    hbar = root[0] * sp.diag(*[1 / sp.sqrt(nk) for nk in ns])  # v = Y^T e_k / sqrt(n_k)
    factors = [hbar, *root[1:]]
    logits = factors[3] * factors[2] * factors[1] * factors[0]
    assert (logits - sp.diag(*[zk / sp.sqrt(nk) for zk, nk in zip(zs, ns, strict=True)])).applyfunc(
        _forced
    ) == sp.zeros(2, 2)
    for layer in range(1, depth + 1):
        feats = factors[0]
        for X in factors[1:layer]:
            feats = X * feats
        head = factors[depth]
        for X in reversed(factors[layer:depth]):
            head = head * X
        sub = {M: depth, m: layer, mu: mu3}
        sub[Lam_below] = sp.prod(lams[:layer])
        sub[Lam_above] = sp.prod(lams[layer:])
        for k in range(2):
            at = {**sub, z: zs[k], n_k: ns[k]}
            assert _is_zero(_forced((feats.T * feats)[k, k] - hbar_m.subs(at)))
            assert _is_zero(_forced((head * head.T)[k, k] - head_m.subs(at)))
        assert _is_zero(_forced((feats.T * feats)[0, 1])) and _is_zero((head * head.T)[0, 1])

    # balanced totals: bias-free K directions s = sqrt(n); bias: Y_c Y_c^T = n P_K
    psi_a = sc["psi"].subs(z, a * s).subs({s: sp.sqrt(n), N: K * n})
    loss = K * psi_a
    assert _is_zero(loss - sc["g"].subs(gamma, sc["gamma"].subs({s: sp.sqrt(n), N: K * n})) / 2)
    ycyc = n * sp.eye(4) - (n * sp.ones(4, 1)) * (n * sp.ones(1, 4)) / (4 * n)
    assert ycyc.eigenvals() == {n: 3, 0: 1}
    assert sp.simplify(ycyc - n * _p(4)) == sp.zeros(4, 4)
    return {
        "layer_hbar_norm2": hbar_m,
        "layer_head_gram": head_m,
        "W_gram": W_gram,
        "hbar1_norm2": hbar_1,
        "W_gram_dang": W_gram_dang,
        "hbar1_norm2_dang": hbar_1_dang,
        "layer_lambda_s2_dang": per_layer_dang,
        "balanced_loss": sp.simplify(loss),
        "balanced_bias_loss": sp.simplify((K - 1) * psi_a),
    }


def _ce(fac: dict[str, sp.Expr]) -> dict[str, sp.Expr]:
    """Step 6: the ETF and orthoplex energies of deep CE."""

    def quasi(svs: dict[sp.Expr, int]) -> sp.Expr:
        """(M+1)/2 mu sum_i sigma_i^{2/(M+1)} over {sigma: multiplicity}."""
        return sum(mult * fac["factor_bound"].subs(z, sv) for sv, mult in svs.items() if sv != 0)

    def singular_values(q: sp.Matrix) -> dict[sp.Expr, int]:
        return {sp.sqrt(ev): mult for ev, mult in (q * q.T).eigenvals().items()}

    def ce_columns(zbar: sp.Matrix) -> list[sp.Expr]:
        k = zbar.shape[0]
        return [sp.log(sum(sp.exp(zbar[i, c]) for i in range(k))) - zbar[c, c] for c in range(k)]

    ce_etf = sp.log(1 + (K - 1) * sp.exp(-a))
    ce_orth = sp.log(1 + (K - 2) * sp.exp(-a) + sp.exp(-2 * a))
    etf = ce_etf + quasi({a * sp.sqrt(n): K - 1})
    orth = ce_orth + quasi({2 * a * sp.sqrt(n): K / 2})
    # symbolic K: the ETF column a P_K e_k (own a(1 - 1/K), K - 1 others -a/K); tr P_K = K - 1
    own, other = a * (1 - 1 / K), -a / K
    assert _is_zero(sp.log(sp.exp(own) + (K - 1) * sp.exp(other)) - own - ce_etf)
    # orthoplex column: own a, antipode -a, K - 2 zeros
    assert _is_zero(sp.expand(sp.exp(sp.log(sp.exp(a) + sp.exp(-a) + (K - 2)) - a - ce_orth)) - 1)
    for k in (4, 6):
        half = sp.eye(k // 2)
        zetf = a * _p(k)
        zorth = a * sp.Matrix(sp.BlockMatrix([[half, -half], [-half, half]]))
        at = {K: k}
        for zbar, ce, energy in ((zetf, ce_etf, etf), (zorth, ce_orth, orth)):
            cols = ce_columns(zbar)
            assert all(_is_zero(sp.expand(sp.exp(c)) - sp.exp(ce.subs(at))) for c in cols)
            svs = singular_values(zbar * sp.sqrt(n))  # D^{1/2} = sqrt(n) I
            penalty = quasi(svs)
            assert _is_zero(penalty - (energy - ce).subs(at))  # the quasi-norm term
        assert singular_values(zetf * sp.sqrt(n)) == {a * sp.sqrt(n): k - 1, 0: 1}
        assert singular_values(zorth * sp.sqrt(n)) == {2 * a * sp.sqrt(n): k // 2, 0: k // 2}
        assert zorth.rank() == k // 2 and zetf.rank() == k - 1
    # M = 1: the plain ETF energy with mu = sqrt(lambda_W lambda_H)
    lam_W = sp.Symbol("lambda_W", positive=True)
    plain = ce_etf + (K - 1) * sp.sqrt(n * lam_W * lam_H) * a
    assert _is_zero(etf.subs(M, 1).subs(mu, sp.sqrt(lam_W * lam_H)) - plain)
    return {"etf_energy": etf, "orthoplex_energy": orth}


def derive() -> dict[str, sp.Expr]:
    """Derive the deep linear UFM closed forms; see the module docstring for the steps."""
    fac = _factorization()
    sc = _scalar(fac["factor_bound"])
    dang = _dang(sc)
    return {**fac, **sc, **dang, **_minority(sc, dang), **_layers(sc, fac), **_ce(fac)}


# Worked examples: numbers computed independently of this derivation (and checked with a
# numerical solver), not read in a paper.  K = 4, n = 5, M = 3, all lambdas 0.005
_K, _N_PER, _DEPTH, _LAMBDA = 4, 5, 3, sp.Rational(5, 1000)
NOTES = {
    "dang_b": 0.13924767,
    "beta": 0.02784953,
    "x": 3.1723308,
    "a": 0.96962825,
    "W_gram": 3.1925330,
    "hbar1_norm2": 0.2944931,
    "factor_sv2": 1.4724655,
    "W_norm2": 5.8898620,
    "balanced_loss": 0.059359842,
    "balanced_bias_loss": 0.044519882,
    "equal_lambda_threshold": 0.045502,
    "etf_margin": 5.7622323,
    "etf_loss": 0.11707402,
    "orthoplex_a": 5.3867932,
    "orthoplex_loss": 0.10729646,
}


def _largest_root(results: dict[str, sp.Expr], gam: sp.Expr, depth: int) -> sp.Float:
    """The largest root of h(a) = gamma on [a_m, 1] (bisection; needs gamma < gamma_max)."""
    h = results["h"].subs(M, depth)
    a_m = results["h_peak"].subs(M, depth)
    assert (h.subs(a, a_m) - gam).evalf(30) > 0
    return sp.nsolve(h - gam, a, (a_m, 1), solver="bisect", prec=30)


def _minimize_energy(energy: sp.Expr) -> tuple[sp.Float, sp.Float]:
    """Global minimum on a >= 0: a grid, then Newton on E'(a) = 0, compared with a = 0."""
    f = sp.lambdify(a, energy, "mpmath")
    grid = [0.01 * i for i in range(1, 3001)]
    a0 = min(grid, key=f)
    a_opt = sp.nsolve(sp.diff(energy, a), a, a0, prec=30)
    value = energy.subs(a, a_opt).evalf(30)
    return (a_opt, value) if value < energy.subs(a, 0) else (sp.Float(0), energy.subs(a, 0))


def worked_examples(results: dict[str, sp.Expr]) -> dict[str, float]:
    """Evaluate the results at the worked examples (balanced MSE and deep CE)."""
    N_ = _K * _N_PER
    at = {M: _DEPTH, N: N_, mu: _LAMBDA, Lam: _LAMBDA ** (_DEPTH + 1), lam_H: _LAMBDA}
    at |= {lam_j: _LAMBDA, K: _K, n: _N_PER, n_k: _N_PER, s: sp.sqrt(_N_PER)}
    gam = results["gamma"].subs(at)
    assert gam < results["gamma_star"].subs(at)  # the nonzero branch is global
    a_ = _largest_root(results, gam, _DEPTH)
    x_ = results["x_of_a"].subs(at).subs(a, a_)
    at_a = {**at, a: a_, z: a_ * sp.sqrt(_N_PER), x: x_}
    out = {
        "dang_b": results["dang_b"].subs(at),
        "beta": results["beta_of_gamma"].subs(at).subs(gamma, gam),
        "x": x_,
        "a": a_,
        "W_gram": results["W_gram"].subs(at_a),
        "hbar1_norm2": results["hbar1_norm2"].subs(at_a),
        "factor_sv2": results["factor_sv2"].subs(at_a),
        "W_norm2": _K * results["factor_sv2"].subs(at_a),
        "balanced_loss": results["balanced_loss"].subs(at_a),
        "balanced_bias_loss": results["balanced_bias_loss"].subs(at_a),
    }
    # equal lambda: mu = lambda, and gamma = gamma* there
    no_mu = {key: value for key, value in at.items() if key != mu}
    (lam_c,) = sp.solve(results["gamma"].subs(no_mu) - results["gamma_star"].subs(at), mu)
    out["equal_lambda_threshold"] = lam_c
    energy = {M: _DEPTH, K: _K, n: _N_PER, mu: _LAMBDA}
    out["etf_margin"], out["etf_loss"] = _minimize_energy(results["etf_energy"].subs(energy))
    out["orthoplex_a"], out["orthoplex_loss"] = _minimize_energy(
        results["orthoplex_energy"].subs(energy)
    )
    return {key: float(sp.N(value, 20)) for key, value in out.items()}


if __name__ == "__main__":
    results = derive()
    print_report(
        results,
        "worked examples",
        worked_examples(results),
        NOTES,
        lambda key, value: abs(value - NOTES[key]) <= 5e-7 * max(1.0, abs(value)),
    )
    for depth in range(2, 7):
        print(f"  beta*_{depth} = {float(results['beta_star'].subs(M, depth)):.5f}")
