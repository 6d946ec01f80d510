"""The next-token UFM: its convex lower bound, the dual of soft-label CE, the one-hot case.

Convention (ufm/models/next_token/problem.py): M contexts, frequencies pi_m (sum 1), targets
p_m (probability vectors over K tokens), D = diag(pi), mu = sqrt(lambda_W lambda_H),

    f(W, H) = sum_m pi_m CE(W h_m, p_m) + lambda_W/2 ||W||^2 + lambda_H/2 sum_m pi_m ||h_m||^2,

CE(z, p) = logsumexp(z) - p.z. Everything below is our derivation (it follows
derivations/plain_convex.py with soft targets and column weights).

1. Factorization bound with weights.  lambda_H/2 sum_m pi_m ||h_m||^2 = lambda_H/2
   ||H D^{1/2}||^2, so with Q = W H D^{1/2} the penalty is at least mu ||Q||_* (AM-GM on the
   variational form of the nuclear norm; equality for balanced factors, which exist when
   d >= rank Q). Checked below: the balanced factors of a 2 x 2 Q with singular values
   s1, s2 cost exactly mu (s1 + s2).  Hence f >= g(Q) = sum_m pi_m CE(Q e_m/sqrt(pi_m), p_m)
   + mu ||Q||_*, convex; min f = min g when d >= rank(argmin g), a lower bound otherwise.
2. Conjugate of soft-label CE.  For q = softmax(z) and g = q - p: g.z - CE(z, p) =
   sum_j q_j log q_j (checked for K = 3, symbolic z and p), so CE(., p)*(g) = sum_j q_j log q_j
   on {g + p in the simplex}; the plain model's conjugate sum (`_conjugate_sum`) applies with
   soft p, and p + t g = (1 - t) p + t q stays in the simplex for t in [0, 1].
3. Dual.  As in plain_convex.py step 5: max -sum_m pi_m CE*(u_m/pi_m) s.t.
   ||[u_m/sqrt(pi_m)]_m||_op <= mu; the logit gradients u_m = pi_m (q_m - p_m), scaled by
   t = min(1, mu/||.||_op), give a certified lower bound for every width d.  With targets Y
   and weights pi, ufm.models.plain.convex.solve(pi, mu, targets=Y) solves and certifies it.
4. One-hot balanced reduction.  If pi_m = 1/K and p_m = e_sigma(m) (sigma a permutation), f
   is the plain CE UFM with one sample per class: (1/K) sum_k CE(W h_k, e_k) + lambda_W/2
   ||W||^2 + lambda_H(plain)/2 sum_k ||h_k||^2 with lambda_H(plain) = lambda_H/K (checked
   below: the two penalties agree term by term). So its minimizer is the plain model's
   simplex ETF (d >= K - 1) with mu(plain) = sqrt(lambda_W lambda_H / K), and the next-token
   mu = sqrt(lambda_W lambda_H) equals sqrt(K) mu(plain) = N mu(plain)/sqrt(n) with N = K, n = 1:
   the plain threshold c = K sqrt(n lambda_W lambda_H(plain)) < 1 reads sqrt(K) mu < 1.
5. Mixup is this model with pi = counts/N and lambda_H = N lambda_H(mixup)
   (derivations/mixup.py step 1): one soft-label objective (ufm/models/_soft_labels.py).

``derive()`` returns the symbolic residuals (all zero); ``python -m derivations.next_token``
prints them.
"""

import sympy as sp


def balanced_factor_cost() -> sp.Expr:
    """Step 1: W = U S^{1/2} c_W, H' = c_H S^{1/2} V^T with c_W^2 = mu/lambda_W,
    c_H^2 = mu/lambda_H: lambda_W/2 ||W||^2 + lambda_H/2 ||H'||^2 - mu (s1 + s2) = 0."""
    s1, s2, lw, lh = sp.symbols("s1 s2 lambda_W lambda_H", positive=True)
    mu = sp.sqrt(lw * lh)
    trace_S = s1 + s2  # ||U S^{1/2}||^2 = ||S^{1/2} V^T||^2 = tr S
    cost = lw / 2 * (mu / lw) * trace_S + lh / 2 * (mu / lh) * trace_S
    return sp.simplify(cost - mu * (s1 + s2))


def soft_ce_fenchel_young() -> sp.Expr:
    """Step 2: g.z - CE(z, p) - sum_j q_j log q_j at q = softmax(z), g = q - p, K = 3,
    p = (p0, p1, 1 - p0 - p1)."""
    z = sp.symbols("z0:3", real=True)
    p0, p1 = sp.symbols("p0 p1", positive=True)
    p = (p0, p1, 1 - p0 - p1)
    total = sum(sp.exp(zj) for zj in z)
    q = [sp.exp(zj) / total for zj in z]
    ce = sp.log(total) - sum(pj * zj for pj, zj in zip(p, z, strict=True))
    g = [q[j] - p[j] for j in range(3)]
    residual = sum(g[j] * z[j] for j in range(3)) - ce - sum(qj * sp.log(qj) for qj in q)
    return sp.simplify(sp.expand_log(residual, force=True))


def one_hot_penalty_map() -> sp.Expr:
    """Step 4: lambda_H/2 sum_m (1/K) |h_m|^2 - lambda_H(plain)/2 sum_m |h_m|^2 at
    lambda_H(plain) = lambda_H / K (K = 4, symbolic squared norms)."""
    K = 4
    lh = sp.Symbol("lambda_H", positive=True)
    norms = sp.symbols("r0:4", nonnegative=True)
    ours = lh / 2 * sum(r / K for r in norms)
    plain = (lh / K) / 2 * sum(norms)
    return sp.simplify(ours - plain)


def mu_map() -> sp.Expr:
    """Step 4: sqrt(lambda_W lambda_H) - sqrt(K) sqrt(lambda_W lambda_H / K)."""
    lw, lh, K = sp.symbols("lambda_W lambda_H K", positive=True)
    return sp.simplify(sp.sqrt(lw * lh) - sp.sqrt(K) * sp.sqrt(lw * lh / K))


def derive() -> dict[str, sp.Expr]:
    return {
        "balanced_factor_cost": balanced_factor_cost(),
        "soft_ce_fenchel_young": soft_ce_fenchel_young(),
        "one_hot_penalty_map": one_hot_penalty_map(),
        "mu_map": mu_map(),
    }


def main() -> None:
    for name, expr in derive().items():
        print(f"{name} =")
        print(sp.pretty(expr, use_unicode=True))
        print()


if __name__ == "__main__":
    main()
