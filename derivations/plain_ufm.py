"""Closed forms of the plain (one-layer) unconstrained features model, derived with sympy.

Canonical convention (docs/convention.md, the only one in ``ufm``):

    f(W, H, b) = (1/N) sum_i loss(W h_i + b, y_i)
                 + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2 (+ lambda_b/2 ||b||^2)

with CE loss -log softmax(z)_y and MSE loss 1/2 ||z - e_y||^2 (data term (1/(2N))||Z - Y||^2).
Shapes: W (K, d), H (d, N), b (K,), Y one-hot (K, N) with columns sorted by class, class
counts n_k, N = sum n_k, D = diag(n_k) = Y Y^T; balanced data has n_k = n and N = K n.
Shorthands: mu = sqrt(lambda_W lambda_H), s = sqrt(n lambda_W lambda_H), c = K s,
P_K = I - 11^T/K.  The results are closed forms in the settings of Zhu et al. 2021 (arXiv
2105.02375, CE), Tirer & Bruna 2022 (arXiv 2202.08087, MSE) and Dang et al. 2023 (arXiv
2301.00437, imbalanced MSE), derived here; how much of each paper was read is stated in the
sources of ufm/models/plain/theory.py.

The argument, step by step:

1. Factorization bound (lemma, standard).
   min {lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2 : W H = Z} = mu ||Z||_*  (d >= rank Z).
   Per singular value z of Z it is the scalar problem min_{w h = z} lambda_W w^2/2 +
   lambda_H h^2/2, which sympy solves: w^2 = sqrt(lambda_H/lambda_W) z,
   h^2 = sqrt(lambda_W/lambda_H) z, value mu z, and the two halves are equal (balancedness).
   Hence at an optimum with Z = U Sigma V^T:  W W^T = sqrt(lambda_H/lambda_W) U Sigma U^T and
   H^T H = sqrt(lambda_W/lambda_H) V Sigma V^T.
2. Within-class collapse: for fixed (W, b) each h_i solves a strictly convex problem, so
   H = Hbar Y and Z = Zbar Y.  Then ||Z||_* = ||Zbar D^{1/2}||_*, and a singular direction u
   of Zbar D^{1/2} with D = n I has right vector v = Y^T u / sqrt(n), so it contributes
   sqrt(lambda_W/lambda_H) z u u^T / n to Hbar^T Hbar (||h_{k,i}|| = ||hbar_k||).  The whole
   problem becomes the convex reduced problem min_Z L(Z + b 1^T) + mu ||Z||_*.
3. CE, balanced.  By Zhu et al. (abstract read; the theorem recalled as their Thm 3.1) the
   minimizer is a simplex ETF, Zbar = a P_K, a >= 0.  Its class-k logit column is a P_K e_k:
   own logit a(1 - 1/K), the K - 1 others -a/K, so the margin is a and the CE of each sample
   is log(1 + (K - 1) e^{-a}) (computed below for a symbolic K, and entrywise for K = 4).
   Zbar D^{1/2} = a sqrt(n) P_K is symmetric PSD, so its nuclear norm is
   a sqrt(n) tr P_K = a sqrt(n)(K - 1).  The reduced energy is
   E(a) = log(1 + (K - 1) e^{-a}) + (K - 1) s a.
4. E''(a) > 0 for K > 1 (convex).  E'(a) = 0 gives a* = log(1/s - (K - 1)), positive iff
   s < 1/K, i.e. c = K s < 1.  E'(0) = (K - 1)(K s - 1)/K >= 0 when c >= 1, so then a* = 0,
   W = H = 0 and f* = E(0) = log K.  The interior value E(a*) tends to log K as s -> 1/K
   (continuous transition).  With step 1, W W^T = sqrt(lambda_H/lambda_W) a* sqrt(n) P_K,
   so ||w_k||^2 = (K-1)/K sqrt(n lambda_H/lambda_W) a*, and
   ||h_{k,i}||^2 = lambda_W/(n lambda_H) ||w_k||^2.
5. MSE per singular direction.  min_Z (1/(2N))||Z - T||^2 + mu ||Z||_* is solved by
   soft-thresholding the singular values of the target T (von Neumann), i.e. per singular
   value sigma of T by min_{z >= 0} (z - sigma)^2/(2N) + mu z:  z* = max(0, sigma - N mu),
   value mu sigma - N mu^2/2 (interior) or sigma^2/(2N) (zero), continuous at sigma = N mu.
6. MSE bias-free balanced: T = Y has sigma = sqrt(n) K times, so f* = c - c^2/2 for c < 1 and
   1/2 for c >= 1; Z = (1 - c) Y, Hbar^T Hbar = rho I with rho = (1 - c) sqrt(lambda_W /
   (n lambda_H)), and ||w_k||^2 = (1 - c) sqrt(n lambda_H/lambda_W).
7. MSE with an unregularized bias, balanced: minimizing over b leaves (1/(2N))||(Z - Y) C||^2
   with C = I - 11^T/N.  Replacing Z by Z C keeps the data term and does not increase
   ||Z||_*, so T = Y_c = Y C = P_K Y with Y_c Y_c^T = D - n n^T/N = n P_K: sigma = sqrt(n)
   (K - 1 times) and 0.  f* = (K-1)/K (c - c^2/2), zero branch (K-1)/(2K); Z = (1 - c) P_K Y,
   Hbar^T Hbar = rho P_K with the same rho, so ||hbar_k||^2 = (K-1)/K rho.
8. MSE bias-free, imbalanced (general orthogonal frame): T = Y has sigma_k = sqrt(n_k) with
   u = e_k, v = Y^T e_k / sqrt(n_k).  Class k is alive iff n_k > N^2 lambda_W lambda_H; its
   contribution to f* is sqrt(n_k lambda_W lambda_H) - N lambda_W lambda_H/2 if alive and
   n_k/(2N) if dead; ||w_k||^2 = sqrt(n_k lambda_H/lambda_W) - N lambda_H,
   ||hbar_k||^2 = sqrt(lambda_W/(n_k lambda_H)) - N lambda_W/n_k, own logit
   1 - N sqrt(lambda_W lambda_H/n_k).
9. Zero thresholds: Z = 0 (with the optimal bias) is global iff
   ||grad_Z L||_op <= mu.  The gradient Grams at Z = 0 are P_K D P_K/N^2 (CE, no bias),
   (D - n n^T/N)/N^2 (CE or MSE with bias, b optimal) and D/N^2 (MSE, no bias); checked for
   K = 4 with symbolic n_k.  For balanced data all three have lambda_max = n, and
   n <= N^2 lambda_W lambda_H is c^2 >= 1, i.e. c >= 1.

10. Width below the rank (d < the number of target directions that would be on).  Step 1
   needs d >= rank Z, so with collapsed features the problem is
   min_{rank Z <= d} (1/(2N))||Z - T||^2 + mu ||Z||_*.  For Z with singular values
   z_1 >= ... >= z_d >= 0, von Neumann's trace inequality <Z, T> <= sum_i z_i sigma_i
   (sigma_1 >= sigma_2 >= ... those of T) holds with equality when Z shares T's singular
   vectors, and ||Z||_F, ||Z||_* depend on the z_i only, so the problem separates:
   min over z_1 >= ... >= z_d >= 0 of sum_{i <= d} [(z_i - sigma_i)^2/(2N) + mu z_i]
   + sum_{i > d} sigma_i^2/(2N).  The per-direction minimizer of step 5,
   z*(sigma) = max(0, sigma - N mu), is nondecreasing in sigma (slope 1 on the interior
   branch), so it already satisfies the ordering constraint.  The gain of keeping a
   direction, sigma^2/(2N) - min_z(...) = (sigma - N mu)^2/(2N) for sigma > N mu (0 below),
   grows with sigma: gain(sigma_a) - gain(sigma_b) = (sigma_a - sigma_b)(sigma_a + sigma_b -
   2 N mu)/(2N) > 0 for sigma_a > sigma_b > N mu.  Hence the optimum keeps the d largest
   singular values of T and the others take their zero-branch value.  If the cut falls
   between equal singular values, any orthonormal choice inside their singular space is
   optimal: the minimizer is not unique beyond rotations, only the singular values of Z
   (and everything unitarily invariant) are.
11. Consequences.  Balanced, bias-free, d < K, c < 1: f* = (d/K)(c - c^2/2) + (K - d)/(2K);
   Zbar = (1 - c) Pi with Pi any rank-d orthogonal projection of R^K, so W Hbar has d
   singular values 1 - c; by step 1 Hbar^T Hbar = rho Pi and Hbar Hbar^T = rho I_d (the
   class means are a tight frame of R^d, generally not equal-norm), rho as in step 6.  With
   an unregularized bias (d < K - 1): f* = (d/K)(c - c^2/2) + (K - 1 - d)/(2K), Pi inside
   the range of P_K.  Imbalanced, bias-free: the d classes with the largest n_k are kept
   (when alive), the others cost n_k/(2N) each ("minority collapse by dimension").

``derive()`` returns the named results; balanced ones are in K, n, lambda_W, lambda_H (N = K n
substituted), the imbalanced per-class ones in n_k, N, lambda_W, lambda_H.  Run
``python -m derivations.plain_ufm`` to print them and the worked examples (``_NOTES``: numbers
computed independently of this derivation, not read in a paper).
"""

import sympy as sp

from derivations._report import print_report

# --- symbols, declared once ------------------------------------------------------------------
K = sp.Symbol("K", positive=True)  # number of classes
n = sp.Symbol("n", positive=True)  # samples per class (balanced)
lam_W = sp.Symbol("lambda_W", positive=True)  # weight decay on W
lam_H = sp.Symbol("lambda_H", positive=True)  # weight decay on H
a = sp.Symbol("a", positive=True)  # CE margin: own logit minus any other
n_k = sp.Symbol("n_k", positive=True)  # samples in class k (imbalanced)
N = sp.Symbol("N", positive=True)  # total samples

s = sp.Symbol("s", positive=True)  # sqrt(n lambda_W lambda_H)
mu = sp.Symbol("mu", positive=True)  # sqrt(lambda_W lambda_H)
z = sp.Symbol("z", positive=True)  # a singular value of the logit matrix Z
w = sp.Symbol("w", positive=True)  # a singular value of W
sigma = sp.Symbol("sigma", positive=True)  # a singular value of the MSE target
m = sp.Symbol("m", positive=True)  # K - 1, for sign arguments
c_ = sp.Symbol("c", positive=True)  # K sqrt(n lambda_W lambda_H), the balanced constant
n_vec = sp.symbols("n_1:5", positive=True)  # class counts of the K = 4 threshold check
d = sp.Symbol("d", positive=True)  # feature dimension, below the number of directions on
sigma_b = sp.Symbol("sigma_b", positive=True)  # a second singular value, sigma_b < sigma

MU = sp.sqrt(lam_W * lam_H)
S = sp.sqrt(n * lam_W * lam_H)
BALANCED = {N: K * n}


def _is_zero(expr: sp.Expr) -> bool:
    return sp.simplify(expr) == 0


def _p(k: int) -> sp.Matrix:
    """P_k = I - 11^T/k for a concrete k."""
    return sp.eye(k) - sp.ones(k, k) / k


def _factorization() -> dict[str, sp.Expr]:
    """Step 1: scalar factorization bound min_{w h = z} lambda_W w^2/2 + lambda_H h^2/2."""
    h_of_w = z / w
    energy = lam_W * w**2 / 2 + lam_H * h_of_w**2 / 2
    (w_opt,) = sp.solve(sp.diff(energy, w), w)
    assert sp.simplify(sp.diff(energy, w, 2).subs(w, w_opt)).is_positive
    value = sp.simplify(energy.subs(w, w_opt))
    assert _is_zero(value - MU * z)
    w2 = sp.simplify(w_opt**2)
    h2 = sp.simplify(h_of_w.subs(w, w_opt) ** 2)
    # balancedness: the two penalty halves are equal, each mu z / 2
    assert _is_zero(lam_W * w2 - lam_H * h2)
    assert _is_zero(lam_W * w2 - MU * z)
    return {"value": value, "w2": w2, "h2": h2}


def _ce(fac: dict[str, sp.Expr]) -> dict[str, sp.Expr]:
    """Steps 3-4: balanced CE within the simplex-ETF family."""
    # CE of the column a P_K e_k for a symbolic K: one own logit, K - 1 equal others
    own, other = a * (1 - 1 / K), -a / K
    assert _is_zero(own - other - a)  # the margin is a
    ce_column = sp.log(sp.exp(own) + (K - 1) * sp.exp(other)) - own
    ce_reduced = sp.log(1 + (K - 1) * sp.exp(-a))
    assert _is_zero(ce_column - ce_reduced)
    # the same, entrywise, for K = 4
    col4 = a * _p(4)[:, 0]
    ce4 = sp.log(sum(sp.exp(x) for x in col4)) - col4[0]
    assert _is_zero(ce4 - ce_reduced.subs(K, 4))
    # nuclear norm of Zbar D^{1/2} = a sqrt(n) P_K: singular values for K = 4, trace for any K
    q4 = a * sp.sqrt(n) * _p(4)
    nuc4 = sum(mult * sp.sqrt(ev) for ev, mult in (q4 * q4.T).eigenvals().items())
    assert _is_zero(nuc4 - 3 * a * sp.sqrt(n))
    nuclear = a * sp.sqrt(n) * (K - K / K)  # tr P_K = K - tr(11^T)/K
    # reduced energy in terms of s = sqrt(n lambda_W lambda_H)
    penalty = sp.factor((MU * nuclear).subs(lam_H, s**2 / (n * lam_W)))  # mu ||Z||_* in s
    energy_s = ce_reduced + penalty
    assert _is_zero(penalty - (K - 1) * s * a)

    d1 = sp.diff(energy_s, a)
    d2 = sp.simplify(sp.diff(energy_s, a, 2))
    assert d2.subs(K, 1 + m).is_positive  # convex for K > 1
    (a_star,) = sp.solve(d1, a)
    assert _is_zero(d1.subs(a, a_star))
    assert _is_zero(a_star - sp.log(1 / s - (K - 1)))
    a_star = sp.log(1 / s - (K - 1))
    # a* = 0 exactly at s = 1/K; E'(0) >= 0 beyond it, so the zero branch is a = 0
    (s_threshold,) = sp.solve(a_star, s)
    assert _is_zero(K * s_threshold - 1)
    assert _is_zero(d1.subs(a, 0) - (K - 1) * (K * s - 1) / K)
    f_interior = sp.expand_log(energy_s.subs(a, a_star), force=True)
    f_interior = sp.simplify(f_interior)
    f_notes = -sp.log(1 - (K - 1) * s) + (K - 1) * s * a_star
    assert _is_zero(sp.expand_log(f_interior - f_notes, force=True))
    f_zero = sp.simplify(energy_s.subs(a, 0))
    assert _is_zero(f_zero - sp.log(K))
    gap = sp.limit(f_notes - f_zero, s, 1 / K)
    assert gap == 0  # continuous transition at c = 1
    assert sp.limit(a_star, s, 1 / K) == 0

    # norms (step 1 per singular direction, singular value z = a* sqrt(n), left space P_K)
    z_star = a_star * sp.sqrt(n)
    diag_pk = 1 - 1 / K  # (P_K)_{kk}
    w_norm2 = sp.factor(fac["w2"].subs(z, z_star) * diag_pk, a_star)
    h_norm2 = sp.factor(fac["h2"].subs(z, z_star) / n * diag_pk, a_star)
    # balancedness of the whole factorization: lambda_W ||W||^2 = lambda_H ||H||^2 = mu ||Z||_*
    assert _is_zero(lam_W * K * w_norm2 - MU * nuclear.subs(a, a_star))
    assert _is_zero(lam_H * K * n * h_norm2 - MU * nuclear.subs(a, a_star))
    assert _is_zero(h_norm2 - lam_W / (n * lam_H) * w_norm2)
    # Zhu's rho = ||w_k||^2 parametrization: a = K/(K-1) sqrt(lambda_W/(n lambda_H)) rho
    assert _is_zero(K / (K - 1) * sp.sqrt(lam_W / (n * lam_H)) * w_norm2 - a_star)

    to_s = {s: S}
    return {
        "ce_energy": energy_s.subs(to_s),
        "ce_margin": a_star.subs(to_s),
        "ce_loss_collapsed": f_notes.subs(to_s),
        "ce_loss_zero": f_zero,
        "ce_threshold": (K * s).subs(to_s),
        "ce_w_norm2": w_norm2.subs(to_s),
        "ce_h_norm2": h_norm2.subs(to_s),
    }


def _mse_direction() -> dict[str, sp.Expr]:
    """Step 5: min_{z >= 0} (z - sigma)^2/(2N) + mu z."""
    energy = (z - sigma) ** 2 / (2 * N) + mu * z
    assert sp.diff(energy, z, 2).is_positive
    (z_interior,) = sp.solve(sp.diff(energy, z), z)
    assert _is_zero(z_interior - (sigma - N * mu))
    # zero branch: E'(0) = mu - sigma/N >= 0 iff sigma <= N mu
    assert _is_zero(sp.diff(energy, z).subs(z, 0) - (mu - sigma / N))
    f_interior = sp.expand(energy.subs(z, z_interior))
    f_zero = energy.subs(z, 0)
    assert _is_zero(f_interior - (mu * sigma - N * mu**2 / 2))
    assert _is_zero(f_zero - sigma**2 / (2 * N))
    assert _is_zero((f_interior - f_zero).subs(sigma, N * mu))  # continuous
    return {"z": z_interior, "alive": f_interior, "dead": f_zero}


def _mse(fac: dict[str, sp.Expr], per: dict[str, sp.Expr]) -> dict[str, sp.Expr]:
    """Steps 6-8: MSE bias-free, with an unregularized bias, and imbalanced bias-free."""
    sub = {mu: MU}
    # balanced: work in c = K sqrt(n) mu (symbol c_), substitute c_ = K s at the end
    sub_c = {mu: c_ / (K * sp.sqrt(n)), N: K * n}
    c = K * S
    to_c = {c_: c}

    # step 6: bias-free balanced, sigma = sqrt(n) (K directions, left vectors e_k)
    sig = {sigma: sp.sqrt(n)}
    z_bal = sp.factor(per["z"].subs(sig).subs(sub_c))
    # alive iff sqrt(n) > N mu, i.e. c > 1 after dividing by sqrt(n)
    assert _is_zero((N * MU / sp.sqrt(n)).subs(BALANCED) - c)
    f_col = sp.factor(K * per["alive"].subs(sig).subs(sub_c)).subs(to_c)
    f_zero = sp.simplify(K * per["dead"].subs(sig).subs(BALANCED))
    assert _is_zero(f_col - (c - c**2 / 2))
    assert _is_zero(f_zero - sp.Rational(1, 2))
    assert _is_zero(z_bal / sp.sqrt(n) - (1 - c_))  # Z = (1 - c) Y
    rho = sp.factor(fac["h2"].subs(z, z_bal) / n, c_).subs(to_c)
    w_norm2 = sp.factor(fac["w2"].subs(z, z_bal), c_).subs(to_c)
    assert _is_zero(rho - (1 - c) * sp.sqrt(lam_W / (n * lam_H)))
    assert _is_zero(w_norm2 - (1 - c) * sp.sqrt(n * lam_H / lam_W))
    assert _is_zero(w_norm2 - (sp.sqrt(n * lam_H / lam_W) - N * lam_H).subs(BALANCED))
    # the generator of the minimizers: W = sqrt(n lambda_H/lambda_W) sqrt(rho) R^T
    assert _is_zero(n * lam_H / lam_W * rho - w_norm2)
    assert _is_zero(sp.sqrt(n * lam_H / lam_W) * rho - (1 - c))  # W H = (1 - c) Y

    # step 7: unregularized bias; Y_c = Y C = P_K Y (checked for K = 3, n = 2)
    k3, n2 = 3, 2
    y = sp.kronecker_product(sp.eye(k3), sp.ones(1, n2))
    center = sp.eye(k3 * n2) - sp.ones(k3 * n2, k3 * n2) / (k3 * n2)
    assert y * center == _p(k3) * y
    g = y.T * _p(k3) * y  # (Z^T Z)^{1/2} = (1 - c) g / sqrt(n) since g^2 = n g
    assert g * g == n2 * g
    # spectrum of Y_c Y_c^T = D - n n^T/N for K = 4 with symbolic n
    ycyc = n * sp.eye(4) - (n * sp.ones(4, 1)) * (n * sp.ones(1, 4)) / (4 * n)
    assert ycyc.eigenvals() == {n: 3, 0: 1}
    assert sp.simplify(ycyc - n * _p(4)) == sp.zeros(4, 4)
    f_bias = sp.factor((K - 1) * per["alive"].subs(sig).subs(sub_c)).subs(to_c)
    f_bias_zero = sp.simplify((K - 1) * per["dead"].subs(sig).subs(BALANCED))
    assert _is_zero(f_bias - (K - 1) / K * (c - c**2 / 2))
    assert _is_zero(f_bias_zero - (K - 1) / (2 * K))
    hbar_bias = (K - 1) / K * rho  # diagonal of Hbar^T Hbar = rho P_K

    # step 8: imbalanced bias-free, sigma_k = sqrt(n_k), right vector Y^T e_k / sqrt(n_k)
    sig_k = {sigma: sp.sqrt(n_k)}
    z_k = per["z"].subs(sig_k).subs(sub)
    (n_threshold,) = sp.solve(z_k, n_k)  # z_k > 0 iff n_k > this
    assert _is_zero(n_threshold - N**2 * lam_W * lam_H)
    gof = {
        "gof_class_loss_alive": sp.expand(per["alive"].subs(sig_k).subs(sub)),
        "gof_class_loss_dead": per["dead"].subs(sig_k),
        "gof_alive_threshold": n_threshold,
        "gof_w_norm2": sp.expand(fac["w2"].subs(z, z_k)),
        "gof_hbar_norm2": sp.expand(fac["h2"].subs(z, z_k) / n_k),
        "gof_own_logit": sp.expand(z_k / sp.sqrt(n_k)),
    }
    assert _is_zero(gof["gof_class_loss_alive"] - (sp.sqrt(n_k) * MU - N * MU**2 / 2))
    assert _is_zero(gof["gof_w_norm2"] - (sp.sqrt(n_k * lam_H / lam_W) - N * lam_H))
    assert _is_zero(gof["gof_hbar_norm2"] - (sp.sqrt(lam_W / (n_k * lam_H)) - N * lam_W / n_k))
    assert _is_zero(gof["gof_own_logit"] - (1 - N * sp.sqrt(lam_W * lam_H / n_k)))
    # balanced GOF is the bias-free balanced solution
    to_bal = {n_k: n, N: K * n}
    assert _is_zero(K * gof["gof_class_loss_alive"].subs(to_bal) - f_col)
    assert _is_zero(gof["gof_w_norm2"].subs(to_bal) - w_norm2)
    assert _is_zero(gof["gof_hbar_norm2"].subs(to_bal) - rho)
    assert _is_zero(gof["gof_own_logit"].subs(to_bal) - (1 - c))

    return {
        "mse_loss_collapsed": f_col,
        "mse_loss_zero": f_zero,
        "mse_threshold": c,
        "mse_rho": rho,
        "mse_w_norm2": w_norm2,
        "mse_bias_loss_collapsed": f_bias,
        "mse_bias_loss_zero": f_bias_zero,
        "mse_bias_hbar_norm2": hbar_bias,
        **gof,
    }


def _narrow(
    fac: dict[str, sp.Expr], per: dict[str, sp.Expr], mse: dict[str, sp.Expr]
) -> dict[str, sp.Expr]:
    """Steps 10-11: width d below the number of switched-on directions."""
    # step 10: the per-direction minimizer is monotone, and the gain of keeping grows
    assert sp.diff(per["z"], sigma) == 1
    gain = sp.factor(per["dead"] - per["alive"])
    assert _is_zero(gain - (sigma - N * mu) ** 2 / (2 * N))
    exchange = sp.factor(gain - gain.subs(sigma, sigma_b))
    assert _is_zero(exchange - (sigma - sigma_b) * (sigma + sigma_b - 2 * N * mu) / (2 * N))
    # positive for sigma > sigma_b > N mu: write sigma_b = N mu + t, sigma = sigma_b + u
    t, u = sp.symbols("t u", positive=True)
    assert sp.expand(exchange.subs(sigma, N * mu + t + u).subs(sigma_b, N * mu + t)).is_positive
    # step 11, balanced: d directions sigma = sqrt(n) alive, the rest of the K (or K - 1) dead
    sub_c = {mu: c_ / (K * sp.sqrt(n)), N: K * n}
    c = K * S
    alive = sp.factor(per["alive"].subs(sigma, sp.sqrt(n)).subs(sub_c)).subs(c_, c)
    dead = sp.simplify(per["dead"].subs(sigma, sp.sqrt(n)).subs(BALANCED))
    f = sp.simplify(d * alive + (K - d) * dead)
    f_bias = sp.simplify(d * alive + (K - 1 - d) * dead)
    assert _is_zero(f - (d / K * (c - c**2 / 2) + (K - d) / (2 * K)))
    assert _is_zero(f_bias - (d / K * (c - c**2 / 2) + (K - 1 - d) / (2 * K)))
    assert _is_zero(f.subs(d, K) - mse["mse_loss_collapsed"])  # d = K: no cut
    assert _is_zero(f_bias.subs(d, K - 1) - mse["mse_bias_loss_collapsed"])
    z_kept = per["z"].subs(sigma, sp.sqrt(n)).subs(sub_c)  # each kept singular value of Z
    sv = sp.factor(z_kept / sp.sqrt(n)).subs(c_, c)
    assert _is_zero(sv - (1 - c))  # the class-mean logits' nonzero singular values
    # Hbar^T Hbar = sqrt(lambda_W/lambda_H) z Pi / n: the tight-frame scale is step 6's rho
    rho = sp.factor(fac["h2"].subs(z, z_kept) / n, c_).subs(c_, c)
    assert _is_zero(rho - mse["mse_rho"])
    return {
        "mse_narrow_gain": gain.subs(mu, MU),
        "mse_narrow_loss_collapsed": f,
        "mse_bias_narrow_loss_collapsed": f_bias,
        "mse_narrow_logit_sv": sv,
        "mse_narrow_frame_scale": rho,  # Hbar Hbar^T = rho I_d
    }


def _zero_thresholds() -> None:
    """Step 9: certificates at Z = 0 for K = 4, and their balanced reduction to c >= 1."""
    k = len(n_vec)
    total = sum(n_vec)
    d = sp.diag(*n_vec)
    nn = sp.Matrix(n_vec)
    ones = sp.ones(k, 1)
    pk = _p(k)
    # Gram G G^T of G = N grad_Z L at Z = 0 from Y Y^T = D, Y 1 = n, 1^T 1 = N:
    # CE, no bias: G = 11^T/K - Y (softmax of zero logits is uniform)
    ce_nobias = total * ones * ones.T / k**2 - ones * nn.T / k - nn * ones.T / k + d
    assert sp.simplify(ce_nobias - pk * d * pk) == sp.zeros(k, k)
    # with an unregularized bias the optimal b at Z = 0 gives softmax(b) = n/N (CE) and
    # b = n/N (MSE), so G = n 1^T/N - Y in both cases
    with_bias = total * nn * nn.T / total**2 - 2 * nn * nn.T / total + d
    assert sp.simplify(with_bias - (d - nn * nn.T / total)) == sp.zeros(k, k)
    # MSE, no bias: G = -Y, Gram D
    grams = {"ce": pk * d * pk, "bias": d - nn * nn.T / total, "mse": d}
    balanced = dict.fromkeys(n_vec, n)
    c2 = (K * S).subs(K, k) ** 2
    for gram in grams.values():
        lam_max = max(gram.subs(balanced).applyfunc(sp.simplify).eigenvals(), key=lambda e: e / n)
        assert _is_zero(lam_max - n)
        # lambda_max <= N^2 lambda_W lambda_H  <=>  N^2 lambda_W lambda_H / lambda_max >= 1
        assert _is_zero((k * n) ** 2 * lam_W * lam_H / lam_max - c2)


def derive() -> dict[str, sp.Expr]:
    """Derive the plain-UFM closed forms; see the module docstring for the steps."""
    fac = _factorization()
    per = _mse_direction()
    _zero_thresholds()
    mse = _mse(fac, per)
    return {**_ce(fac), **mse, **_narrow(fac, per, mse)}


# Worked examples: numbers computed independently of this derivation (and checked with a
# numerical solver), not read in a paper
_CE_EXAMPLE = {K: 4, n: 5, lam_W: 0.01, lam_H: 0.01}
_MSE_EXAMPLE = {K: 4, n: 5, lam_W: 0.05, lam_H: 0.01}
_NOTES = {
    "ce_margin": 3.7310132,
    "ce_w_norm2": 6.2570994,
    "ce_h_norm2": 1.2514199,
    "ce_loss_collapsed": 0.31972199,
    "mse_threshold": 0.2,
    "mse_loss_collapsed": 0.18,
    "mse_bias_loss_collapsed": 0.135,
    "mse_rho": 0.8,
    "mse_w_norm2": 0.8,
    "mse_bias_hbar_norm2": 0.6,  # (K-1)/K * 0.8: diagonal of 0.8 P_4
    "gof_own_logit": 0.8,
}


def worked_examples(results: dict[str, sp.Expr]) -> dict[str, float]:
    """Evaluate the results at the worked examples (CE and MSE, K = 4, n = 5)."""
    out = {}
    for key in _NOTES:
        point = _CE_EXAMPLE if key.startswith("ce_") else _MSE_EXAMPLE
        if key.startswith("gof_"):
            point = {n_k: 5, N: 20, lam_W: 0.05, lam_H: 0.01}
        out[key] = float(results[key].subs(point).evalf(15))
    return out


if __name__ == "__main__":
    results = derive()
    print_report(
        results,
        "worked examples",
        worked_examples(results),
        _NOTES,
        lambda key, value: abs(value - _NOTES[key]) <= 1e-7 * max(1.0, abs(value)),
    )
    lam = sp.Symbol("lambda", positive=True)
    (lam_c,) = sp.solve(results["mse_threshold"].subs({K: 4, n: 5, lam_W: lam, lam_H: lam}) - 1)
    print(f"  equal-lambda threshold c = 1 at lambda = {float(lam_c):.6f} (independent: ~0.1118)")
    print(f"  CE ||W||_F^2 = K ||w_k||^2 = {4 * results['ce_w_norm2'].subs(_CE_EXAMPLE):.8f}")
    print(f"  CE ||H||_F^2 = N ||h||^2   = {20 * results['ce_h_norm2'].subs(_CE_EXAMPLE):.8f}")
    print("  (independent: ||W||_F^2 = ||H||_F^2 = 25.028398)")
