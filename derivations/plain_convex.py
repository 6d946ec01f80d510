"""The plain UFM as a convex program, its dual, the certificate, and the tied-class threshold.

Convention as in derivations/plain_ufm.py:

    f(W, H, b) = (1/N) sum_i loss(W h_i + b, y_i)
                 + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2 (+ lambda_b/2 ||b||^2),

any class counts n_k, N = sum n_k, D = diag(n), w_k = n_k/N, mu = sqrt(lambda_W lambda_H).
Everything below is our derivation (the reduction itself is standard: Zhu et al. 2021 use
it for the landscape, Hong & Ling 2023, arXiv 2309.09725, solve the CE program with a conic
solver; their abstracts read, not their bodies).

The argument, step by step:

1. Factorization bound (plain_ufm.py step 1): for d >= rank Z,
   min {lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2 : W H = Z} = mu ||Z||_*, so
   f(W, H, b) >= g(W H, b) with g(Z, b) = L(Z + b 1^T) + mu ||Z||_* + lambda_b/2 ||b||^2,
   convex, and min f = min g when d >= the rank of g's minimizer.
2. Collapse with counts.  g is convex and invariant under permuting the columns within a
   class, so averaging them (Jensen) gives a minimizer Z = Zbar Y.  Then
   (Zbar Y)(Zbar Y)^T = Zbar D Zbar^T (checked for K = 3, counts 2, 1, 3), so
   ||Zbar Y||_* = ||Zbar D^{1/2}||_* and with Q = Zbar D^{1/2} the program is
       min_{Q, b} sum_k w_k loss(Q e_k/sqrt(n_k) + b, k) + mu ||Q||_* + lambda_b/2 ||b||^2,
   K^2 + K unknowns whatever N is.  b = 0 without a bias, lambda_b = 0 for a free one.
3. Variational form (the same lemma for a square factorization): ||Q||_* =
   min {(||A||^2 + ||B||^2)/2 : A B^T = Q}, A, B in R^{K x K}.  ufm's convex solver
   minimizes the smooth program in (A, B, b) (L-BFGS, then Newton steps) and certifies the
   result with the dual of step 5, so no property of that nonconvex form is relied on.
4. Conjugates.  CE: for p = softmax(z) and g = p - e_y, g.z - CE(z, y) = sum_j p_j log p_j
   (checked for K = 3, symbolic logits), so CE*(g) = sum_j p_j log p_j on {g + e_y in the
   simplex} (+inf elsewhere).  MSE: loss = |z - e|^2/2 has loss*(g) = |g|^2/2 + g.e.  The
   bias penalty lambda_b/2 |b|^2 has conjugate |r|^2/(2 lambda_b); an unregularized bias
   has conjugate 0 at r = 0, +inf elsewhere; no bias: no term.
5. Dual.  Splitting z_k = Q e_k/sqrt(n_k) + b with multipliers u_k and minimizing the
   Lagrangian over z, Q and b gives
       max -sum_k w_k loss*(u_k/w_k) - |sum_k u_k|^2/(2 lambda_b)
       s.t. ||[u_k/sqrt(n_k)]_k||_op <= mu            (the nuclear norm's dual ball),
   with sum_k u_k = 0 instead of the penalty for a free bias.  In sample form (u_i = g_i/N,
   the logit gradient of sample i divided by N) the constraint is ||grad_Z L||_op <= mu.
   Any feasible point is a lower bound on min g, hence on min f for every width d.  From a
   primal point: u from the logit gradients, a free bias's defect sum u removed exactly
   (MSE: subtract the mean; CE: mix each p with one common probability vector, the least
   that removes it), then all scaled by t = min(1, mu/||.||_op) (CE: p -> e_y + t (p - e_y)
   stays in the simplex and keeps sum u = 0).  At the minimizer t = 1 and the gap is 0;
   near it the gap is first order in ||grad_Z L||_op/mu - 1.
6. Certificate.  A stationary point of f with ||grad_Z L||_op <= mu is global (the dual
   point of step 5 needs no scaling and meets the primal value); conversely at a global
   minimum ||grad_Z L||_op = mu on every active singular direction.
7. Tied classes merge at mu = sqrt(n)/N exactly.  Let m >= 2 classes share the count n, and
   let Zbar be symmetric under permuting them (rows and columns together) with their columns
   merged: equal up to that permutation, so their softmax vectors p_j coincide after it and
   p_j's entries on the group agree.  Then for j, k in the group the pair
   u = (e_j - e_k)/sqrt 2 (left), v = (e_j - e_k)/sqrt 2 (right) is a singular pair of the
   reduced gradient G_Q = [w_l (p_l - e_l)/sqrt(n_l)]_l with singular value exactly
   sqrt(n)/N, and it is orthogonal to the rest of G_Q (checked symbolically below for K = 4
   with classes 3, 4 tied, any other entries).  So the merged point (the minimizer of the
   program restricted to symmetric, merged Zbar) meets the certificate of step 6 iff
   mu >= sqrt(n)/N: above it the group's classifier rows and class means coincide (minority
   collapse, exactly, at finite imbalance), below it the merged point is not optimal and
   the minimizer tells them apart.  Independent of the other counts and of the bias
   setting (none, free, regularized).  With a single smallest class there is no tied
   partner and no such threshold: its column shrinks continuously and vanishes at a value
   the program gives numerically (tested, not derived).
8. The zero solution (plain_ufm.py step 9) is step 6 at Z = 0.

``derive()`` returns the symbolic checks; ``python -m derivations.plain_convex`` prints them
and the worked example, recomputed and compared with an independent number.
"""

import numpy as np
import sympy as sp

# --- step 2: the Gram identity with counts --------------------------------------------------


def gram_identity() -> sp.Matrix:
    """(Zbar Y)(Zbar Y)^T - Zbar D Zbar^T for K = 3, counts 2, 1, 3, symbolic Zbar."""
    counts = (2, 1, 3)
    Zbar = sp.Matrix(3, 3, sp.symbols("z0:9", real=True))
    Y = sp.Matrix.hstack(*[sp.Matrix.eye(3)[:, k] for k, c in enumerate(counts) for _ in range(c)])
    D = sp.diag(*counts)
    return sp.simplify((Zbar * Y) * (Zbar * Y).T - Zbar * D * Zbar.T)


# --- step 4: conjugates ---------------------------------------------------------------------


def ce_fenchel_young() -> sp.Expr:
    """g.z - CE(z, y) - sum_j p_j log p_j at p = softmax(z), g = p - e_y (K = 3, y = 0)."""
    z = sp.symbols("z0:3", real=True)
    Z = sum(sp.exp(zj) for zj in z)
    p = [sp.exp(zj) / Z for zj in z]
    ce = sp.log(Z) - z[0]
    g = [p[j] - (1 if j == 0 else 0) for j in range(3)]
    residual = sum(g[j] * z[j] for j in range(3)) - ce - sum(pj * sp.log(pj) for pj in p)
    return sp.simplify(sp.expand_log(residual, force=True))


def mse_conjugate() -> sp.Expr:
    """sup_z g z - (z - e)^2/2 - (g^2/2 + g e), one coordinate: 0."""
    g, z, e = sp.symbols("g z e", real=True)
    inner = g * z - (z - e) ** 2 / 2
    zstar = sp.solve(sp.diff(inner, z), z)[0]
    return sp.simplify(inner.subs(z, zstar) - (g**2 / 2 + g * e))


def bias_conjugate() -> sp.Expr:
    """sup_b r b - lambda_b b^2/2 - r^2/(2 lambda_b), one coordinate: 0."""
    r, b = sp.symbols("r b", real=True)
    lb = sp.Symbol("lambda_b", positive=True)
    inner = r * b - lb * b**2 / 2
    bstar = sp.solve(sp.diff(inner, b), b)[0]
    return sp.simplify(inner.subs(b, bstar) - r**2 / (2 * lb))


# --- step 7: the tied pair's singular value ---------------------------------------------------


def tied_pair() -> tuple[sp.Matrix, sp.Matrix, sp.Expr]:
    """K = 4, classes 2 and 3 (0-based) tied with count n, counts n0, n1 for the others,
    merged symmetric softmax columns. Returns (G_Q v - sigma u, u^T G_Q - sigma v^T, sigma)
    with sigma = sqrt(n)/N: both residuals vanish."""
    n0, n1, n = sp.symbols("n0 n1 n", positive=True)
    N = n0 + n1 + 2 * n
    counts = (n0, n1, n, n)
    # softmax columns: classes 0, 1 give equal mass q_l to the tied rows 2, 3; the tied
    # classes' columns are one vector (a, b, c, c) for both (merged, symmetric)
    a0, b0, q0, a1, b1, q1, a, b, c = sp.symbols("a0 b0 q0 a1 b1 q1 a b c", positive=True)
    P = sp.Matrix([[a0, a1, a, a], [b0, b1, b, b], [q0, q1, c, c], [q0, q1, c, c]])
    w = [ck / N for ck in counts]
    G = sp.Matrix(4, 4, lambda i, k: w[k] * (P[i, k] - (1 if i == k else 0)) / sp.sqrt(counts[k]))
    u = sp.Matrix([0, 0, 1, -1]) / sp.sqrt(2)
    sigma = sp.sqrt(n) / N
    right = sp.simplify(G * u + sigma * u)  # G v = -sigma u with v = u
    left = sp.simplify(u.T * G + sigma * u.T)
    return right, left, sigma


def derive() -> dict[str, sp.Expr]:
    right, left, sigma = tied_pair()
    return {
        "gram_identity": gram_identity(),
        "ce_fenchel_young": ce_fenchel_young(),
        "mse_conjugate": mse_conjugate(),
        "bias_conjugate": bias_conjugate(),
        "tied_right": right,
        "tied_left": left,
        "tied_sigma": sigma,
    }


# worked example: the tied minority pair of counts (50, 50, 10, 10) merges at
# mu = sqrt(10)/120; found by bisection on the convex program (ufm.models.plain.convex),
# an independent number: the rank of its solution drops from 3 to 2 there
EXAMPLE_COUNTS = (50, 50, 10, 10)
EXAMPLE_MERGE = float(np.sqrt(10) / 120)


def main() -> None:
    for name, expr in derive().items():
        print(f"{name} =")
        print(sp.pretty(expr, use_unicode=True))
        print()
    print(
        f"tied pair of counts {EXAMPLE_COUNTS}: merges at mu = sqrt(10)/120 = {EXAMPLE_MERGE:.10f}"
    )


if __name__ == "__main__":
    main()
