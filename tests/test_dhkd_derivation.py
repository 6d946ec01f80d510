"""DHKD UFM: the sympy derivation (derivations/dhkd.py), lambdified, against jax autodiff of the
package's logit losses (ufm/models/dhkd/losses.py), finite differences, numpy's SVD, brute-force
1-D minimization, optimizers run here on the full (unreduced) problems, and the worked example
(``NOTES``: cvxpy on the full convex problem, computed independently of the derivation)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import sympy as sp

from derivations import dhkd as dd
from ufm.models.dhkd import losses

NOTES = dd.NOTES
TEMPERATURES = (0.5, 2.0, 4.0)
NAMES = {"kd": "kd", "binary_kl": "binary-kl", "binary_kl_norm": "binary-kl-norm"}
EX = {str(k): float(v) for k, v in dd.EXAMPLE.items()}  # the worked example's numbers
K4, N5, LW, LH, AT, MT, T2 = (EX[s] for s in ("K", "n", "lambda_W", "lambda_H", "a_t", "m", "T"))


@pytest.fixture(scope="module")
def derived():
    return dd.derive()


@pytest.fixture(scope="module")
def examples(derived):
    return dd.worked_examples(derived)


def lam(derived, name, syms):
    assert derived[name].free_symbols <= set(syms), name
    return sp.lambdify(syms, derived[name], "numpy")


@functools.cache
def per_sample(name, Kc):
    """One sample's loss from losses.py with its jax gradient and Hessian in z, jitted:
    (z, zt, T) -> (value, gradient, Hessian); CE has label 0 and ignores zt and T."""
    y = jnp.eye(Kc)[:, :1]

    def f(zv, ztv, T):
        if name == "ce":
            return losses.cross_entropy(zv[:, None], y)[0]
        return losses.logit_loss(NAMES[name], zv[:, None], ztv[:, None], T)[0]

    return jax.jit(lambda *a: (f(*a), jax.grad(f)(*a), jax.hessian(f)(*a)))


def collapsed(Kc, n, A, M):
    """Logits M + A([k = y_i] - 1/K), n samples per class (sorted), built directly (numpy)."""
    return M + A * (np.eye(Kc)[:, np.repeat(np.arange(Kc), n)] - 1 / Kc)


# ------------------------------------------------------------------------------------------
# step 1: gradients and Hessians


@pytest.mark.parametrize("name", ["ce", "kd", "binary_kl", "binary_kl_norm"])
def test_gradients_and_hessians_match_jax_and_finite_differences(derived, name):
    Kc = dd.K_EX
    syms = (*dd.Z_EX, *dd.ZT_EX, dd.T)
    grad = lam(derived, f"{name}_gradient", syms)
    hess = lam(derived, f"{name}_hessian", syms)
    fgh = per_sample(name, Kc)
    rng = np.random.default_rng(1)
    for T in TEMPERATURES:
        zs, zt = 3 * rng.normal(size=Kc), 3 * rng.normal(size=Kc)
        g, H = grad_ravel(grad, zs, zt, T), np.asarray(hess(*zs, *zt, T), float)
        _, jg, jh = fgh(zs, zt, T)
        np.testing.assert_allclose(g, jg, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(H, jh, rtol=1e-10, atol=1e-13)
        h, steps = 1e-5, np.eye(Kc)
        f = lambda x, zt=zt, T=T: float(fgh(x, zt, T)[0])
        fd = [(f(zs + h * e) - f(zs - h * e)) / (2 * h) for e in steps]
        np.testing.assert_allclose(g, fd, atol=1e-8)
        fd_h = [
            (grad_ravel(grad, zs + h * e, zt, T) - grad_ravel(grad, zs - h * e, zt, T)) / (2 * h)
            for e in steps
        ]
        np.testing.assert_allclose(H, np.array(fd_h).T, atol=1e-8)
        assert np.linalg.eigvalsh(H).min() > -1e-14  # convex
        shift_free = name in ("ce", "kd")
        assert (abs(g.sum()) < 1e-12) == shift_free
        assert (np.abs(H.sum(axis=1)).max() < 1e-12) == shift_free
        if not shift_free:
            assert np.count_nonzero(H - np.diag(np.diag(H))) == 0 and np.diag(H).min() > 0


def grad_ravel(grad, zs, zt, T):
    return np.asarray(grad(*zs, *zt, T), float).ravel()


CODE = jax.jit(losses.code_form, static_argnums=0)


def test_binary_kl_norm_is_the_bernoulli_kl_in_log_cosh_form(derived):
    """T^2 log cosh((z - zt)/(2T)) against the code's clamped KL(Bern(1/2) || Bern(d))."""
    entry = lam(derived, "binary_kl_norm_entry", (dd.z, dd.zt, dd.T))
    kl = lam(derived, "binary_kl_entry", (dd.z, dd.zt, dd.T))
    rng = np.random.default_rng(2)
    zs, zt = 2 * rng.normal(size=(2, 5, 1))  # |z - zt|/T < 18.4: the clamp is inactive
    for T in TEMPERATURES:
        code = CODE("binary-kl-norm", zs, zt, T)
        np.testing.assert_allclose(entry(zs, zt, T).sum(), code[0], rtol=1e-9)
        code = CODE("binary-kl", zs, zt, T)
        np.testing.assert_allclose(kl(zs, zt, T).sum(), code[0], rtol=1e-9)


# ------------------------------------------------------------------------------------------
# step 2: the gradient example, against the theory note's 6-digit numbers and jax


def test_gradient_example(derived):
    zs, zt = jnp.array([3.0, -1.0, -1.0, -1.0]), jnp.array([4.0, 0.0, 0.0, 0.0])
    note = {  # the theory note's numbers (6 digits)
        "ce": (-0.052085, 0.017362),
        "binary_kl": (-0.126445, -0.244919),
        "binary_kl_norm": (-0.244919, -0.244919),
        "kd": (0.0, 0.0),
    }
    mine = {
        "ce": ("example_ce_target", "example_ce_other"),
        "binary_kl": ("example_binary_kl_target", "example_binary_kl_other"),
        "binary_kl_norm": ("example_binary_kl_norm", "example_binary_kl_norm"),
        "kd": ("example_kd", "example_kd"),
    }
    for name, (target, other) in note.items():
        g = np.asarray(per_sample(name, 4)(zs, zt, 2.0)[1])
        np.testing.assert_allclose(g, [target, other, other, other], atol=5e-7)
        got = [float(derived[key]) for key in mine[name]]
        np.testing.assert_allclose(got, g[:2], atol=1e-12)


# ------------------------------------------------------------------------------------------
# step 3: the factorization bound


def test_factorization_bound_and_balanced_factors(derived):
    rng = np.random.default_rng(3)
    mu = float(derived["factorization_constant"].subs({dd.lam_W: 0.02, dd.lam_H: 0.005}))
    assert mu == pytest.approx(np.sqrt(0.02 * 0.005))
    t = float(derived["balanced_scale_W"].subs({dd.lam_W: 0.02, dd.lam_H: 0.005}))
    for d in (2, 4, 7):
        W, H = rng.normal(size=(4, d)), rng.normal(size=(d, 9))
        pen = 0.01 * np.sum(W**2) + 0.0025 * np.sum(H**2)
        assert pen >= mu * np.linalg.svd(W @ H, compute_uv=False).sum() - 1e-12
    Z = rng.normal(size=(4, 9))
    U, S, Vt = np.linalg.svd(Z, full_matrices=False)
    W, H = U * np.sqrt(S) * t, (np.sqrt(S)[:, None] * Vt) / t
    np.testing.assert_allclose(W @ H, Z, atol=1e-12)
    pen = 0.01 * np.sum(W**2) + 0.0025 * np.sum(H**2)
    assert pen == pytest.approx(mu * S.sum(), rel=1e-12)
    ratio = float(derived["W_gram_over_sqrt_ZZt"].subs({dd.lam_W: 0.02, dd.lam_H: 0.005}))
    np.testing.assert_allclose(W @ W.T, ratio * U @ np.diag(S) @ U.T, atol=1e-12)


# ------------------------------------------------------------------------------------------
# step 4: the symmetric reduction


@pytest.mark.parametrize("Kc", [3, 4, 5])
def test_singular_values_of_collapsed_logits(derived, Kc):
    single = lam(derived, "nuclear_single", (dd.n, dd.K, dd.A, dd.M))
    dual = lam(derived, "nuclear_dual", (dd.n, dd.K, dd.A1, dd.A2, dd.M1, dd.M2))
    rng = np.random.default_rng(Kc)
    n = 3
    for _ in range(3):
        A, M, A1, A2, M1, M2 = 3 * rng.normal(size=6)
        sv = np.linalg.svd(collapsed(Kc, n, A, M), compute_uv=False)
        want = sorted([np.sqrt(n) * abs(A)] * (Kc - 1) + [np.sqrt(n) * Kc * abs(M)])
        np.testing.assert_allclose(sorted(sv[:Kc]), want, rtol=1e-10)
        assert sv.sum() == pytest.approx(single(n, Kc, A, M), rel=1e-10)
        stacked = np.vstack([collapsed(Kc, n, A1, M1), collapsed(Kc, n, A2, M2)])
        sv = np.linalg.svd(stacked, compute_uv=False)
        assert sv[Kc:].max() < 1e-10  # rank K
        assert sv.sum() == pytest.approx(dual(n, Kc, A1, A2, M1, M2), rel=1e-10)


LOGIT = jax.jit(losses.logit_loss, static_argnums=0)


def test_reduced_losses_against_the_package_losses(derived):
    rng = np.random.default_rng(5)
    syms = (dd.A, dd.M, dd.a_t, dd.m, dd.T, dd.K)
    ce = lam(derived, "reduced_ce", (dd.A, dd.K))
    fns = {name: lam(derived, f"reduced_{name}", syms) for name in ("binary_kl", "binary_kl_norm")}
    for Kc in (5,):  # any K: the derived forms are symbolic in K
        A, M, at, mt = 3 * rng.normal(size=4)
        at = abs(at)
        Z, Zt = collapsed(Kc, 2, A, M), collapsed(Kc, 2, at, mt)
        Y = np.eye(Kc)[:, np.repeat(np.arange(Kc), 2)]
        np.testing.assert_allclose(losses.cross_entropy(Z, Y), ce(A, Kc), rtol=1e-12)
        for name, fn in fns.items():
            for T in (0.5, 2.0):
                want = LOGIT(NAMES[name], Z, Zt, T)
                np.testing.assert_allclose(want, fn(A, M, at, mt, T, Kc), rtol=1e-10)
        # kd against a collapsed teacher does not see M
        kd = [LOGIT("kd", collapsed(Kc, 2, A, shift), Zt, 2.0) for shift in (0.0, M)]
        np.testing.assert_allclose(kd[0], kd[1], rtol=1e-12)


# ------------------------------------------------------------------------------------------
# step 5: the Huber split


def test_bias_split_against_brute_force(derived):
    split = lam(derived, "bias_split", (dd.M, dd.c, dd.lam_W))
    huber = lam(derived, "common_mode_huber", (dd.M, dd.c, dd.lam_W))
    Kc, c, lw = 4, 0.011180339887, 0.005  # c/lambda_W = 2.236
    for M in (-5.0, -2.0, -0.3, 0.0, 0.7, 2.2, 2.3, 9.0):
        cost = lambda b, M=M: c * Kc * abs(M - b) + lw * Kc * b**2 / 2
        lo, hi = min(0.0, M) - 1, max(0.0, M) + 1
        res = scipy.optimize.minimize_scalar(
            cost, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}
        )
        beta, value = float(split(M, c, lw)), Kc * float(huber(M, c, lw))
        assert beta == pytest.approx(res.x, abs=1e-6) and value == pytest.approx(
            cost(beta), abs=1e-15
        )
        assert res.fun - 1e-9 <= value <= res.fun + 1e-15  # never worse than brute force


# ------------------------------------------------------------------------------------------
# step 6: row sums at critical points


@functools.cache
def _head_objective(name):
    """(W, b) -> (1/N) sum [gamma CE + alpha l] + lambda_W/2 (|W|^2 + decay |b|^2), H fixed;
    jitted value and gradient (one compile per logit loss)."""

    def f(x, H, Y, Zt, gamma, alpha, lw, decay):
        Kc, d = Y.shape[0], H.shape[0]
        W, b = x[: Kc * d].reshape(Kc, d), x[Kc * d :]
        Z = W @ H + b[:, None]
        data = gamma * losses.cross_entropy(Z, Y) + alpha * losses.logit_loss(name, Z, Zt, 2.0)
        pen = jnp.sum(W**2) + decay * jnp.sum(b**2)
        return jnp.sum(data) / H.shape[1] + lw / 2 * pen

    return jax.jit(jax.value_and_grad(f))


def _head_optimum(name, H, Y, Zt, alpha, lw, bias):
    """argmin over W (and b if bias = "free" or "decayed") with H fixed: L-BFGS; the W part
    and the largest gradient entry left."""
    Kc, d = Y.shape[0], H.shape[0]
    fg = _head_objective(name)
    decay = 1.0 if bias == "decayed" else 0.0

    def fun(x):
        x = np.concatenate([x, np.zeros(Kc)]) if bias == "none" else x
        v, g = fg(x, H, Y, Zt, 1.0, alpha, lw, decay)
        return float(v), np.asarray(g)[: x.size if bias != "none" else Kc * d]

    size = Kc * d + (0 if bias == "none" else Kc)
    opts = {"gtol": 1e-12, "ftol": 1e-16, "maxiter": 10000, "maxcor": 30}
    res = scipy.optimize.minimize(fun, np.zeros(size), jac=True, method="L-BFGS-B", options=opts)
    return res.x[: Kc * d].reshape(Kc, d), res.x[Kc * d :], np.abs(res.jac).max()


def test_row_sums_at_critical_points(derived):
    """1^T grad_W f = lambda_W 1^T W + (1/N) 1^T G H^T, so at a point with gradient entries
    <= g_max: |1^T W - (-(1/(N lambda_W)) 1^T G H^T)| <= K g_max/lambda_W."""
    rng = np.random.default_rng(6)
    Kc, d, N, lw = 4, 6, 12, 0.01
    y = rng.integers(0, Kc, size=N)
    Y, H = np.eye(Kc)[:, y], rng.normal(size=(d, N))
    Zt = 2.0 + 3 * rng.normal(size=(Kc, N))
    for bias in ("none", "free", "decayed"):  # the dual CE head (alpha = 0: CE only on W1)
        W1, b1, gmax = _head_optimum("binary-kl", H, Y, Zt, 0.0, lw, bias)
        assert gmax < 1e-8 and np.abs(W1).max() > 0.1
        assert np.abs(W1.sum(axis=0)).max() <= Kc * gmax / lw + 1e-12
        if bias == "decayed":
            assert abs(b1.sum()) <= Kc * gmax / lw + 1e-12
    # single head, bias-free, binary-kl: the per-sample logit gradients g_i from jax
    coef = lam(derived, "single_row_sum_coefficient", (dd.alpha, dd.N, dd.lam_W))
    W, _, gmax = _head_optimum("binary-kl", H, Y, Zt, 1.0, lw, "none")
    assert gmax < 1e-8
    Z, fgh = W @ H, per_sample("binary_kl", Kc)
    ones_g = np.array([np.sum(fgh(Z[:, i], Zt[:, i], 2.0)[1]) for i in range(N)])
    want = coef(1.0, N, lw) * (H @ ones_g)
    assert np.abs(W.sum(axis=0) - want).max() <= Kc * gmax / lw + 1e-12
    assert np.linalg.norm(want) > 0.1  # nonzero


# ------------------------------------------------------------------------------------------
# step 7: the common-mode fraction of balanced factors


def test_common_mode_fraction_of_a_realization(derived):
    frac = lam(derived, "common_mode_fraction", (dd.A, dd.M, dd.K))
    row = lam(derived, "W_row_norm2", (dd.A, dd.M, dd.K, dd.n, dd.lam_W, dd.lam_H))
    rng = np.random.default_rng(7)
    for Kc in (3, 4, 5):
        A, M = 3 * rng.normal(size=2)
        U, S, Vt = np.linalg.svd(collapsed(Kc, 4, A, M), full_matrices=False)
        W = U * np.sqrt(S) * (0.002 / 0.008) ** 0.25  # lambda_W = 0.008, lambda_H = 0.002
        norms = np.linalg.norm(W, axis=1)
        np.testing.assert_allclose(norms**2, row(A, M, Kc, 4, 0.008, 0.002), rtol=1e-10)
        np.testing.assert_allclose(
            np.linalg.norm(W.mean(axis=0)) / norms, frac(A, M, Kc), rtol=1e-9
        )


# ------------------------------------------------------------------------------------------
# step 9: the worked example


def test_worked_example_matches_notes(examples):
    values, _ = examples
    assert values.keys() == NOTES.keys()
    for key, value in values.items():
        assert value == pytest.approx(NOTES[key], abs=dd.NOTES_TOL), key


@functools.cache
def _data_gradient(name):
    """Z = [Z1; Z2] (2K x N) -> (1/N) sum_i [CE(z1_i) + l(z2_i, zt_i)] at the worked example and
    its gradient, jitted.  The single head is Z1 = Z2 = Z; its gradient is the sum of blocks."""
    Kc, n = int(K4), int(N5)
    Y = np.eye(Kc)[:, np.repeat(np.arange(Kc), n)]
    Zt = collapsed(Kc, n, AT, MT)

    def data(Z):
        total = losses.cross_entropy(Z[:Kc], Y) + losses.logit_loss(name, Z[Kc:], Zt, T2)
        return jnp.sum(total) / (Kc * n)

    return jax.jit(jax.value_and_grad(data))


@pytest.mark.parametrize("name", ["binary_kl", "binary_kl_norm"])
@pytest.mark.parametrize("heads", ["single", "dual"])
def test_reduced_optimum_is_a_critical_point_of_the_full_ufm(examples, name, heads):
    """Balanced factors of the reduced optimum (d = K): the gradient of the full bias-free UFM
    vanishes there (chain rule through losses.py's logit gradients), its value is the reduced
    minimum, and the nuclear-norm subgradient certifies the convex problem's optimum."""
    values, _ = examples
    Kc, n = int(K4), int(N5)
    if heads == "single":
        blocks = [(values[f"{name}_single_A"], values[f"{name}_single_M"])]
    else:
        v = [values[f"{name}_dual_{key}"] for key in ("A1", "A2", "M2")]
        blocks = [(v[0], 0.0), (v[1], v[2])]
    Z = np.vstack([collapsed(Kc, n, A, M) for A, M in blocks])
    data, G = _data_gradient(NAMES[name])(Z if heads == "dual" else np.vstack([Z, Z]))
    G = np.asarray(G) if heads == "dual" else np.asarray(G[:Kc] + G[Kc:])
    U, S, Vt = np.linalg.svd(Z, full_matrices=False)
    assert S[Kc:].max(initial=0.0) < 1e-10  # rank K: d = K suffices
    U, S, Vt = U[:, :Kc], S[:Kc], Vt[:Kc]
    t = (LH / LW) ** 0.25
    Wall, H = U * np.sqrt(S) * t, (np.sqrt(S)[:, None] * Vt) / t
    grad_W, grad_H = G @ H.T + LW * Wall, Wall.T @ G + LH * H  # the UFM gradients
    assert max(np.abs(grad_W).max(), np.abs(grad_H).max()) < 1e-9
    ufm = float(data) + LW / 2 * np.sum(Wall**2) + LH / 2 * np.sum(H**2)
    assert ufm == pytest.approx(values[f"{name}_{heads}_value"], abs=1e-12)
    # -grad_Z data/mu = U V^T + R with U^T R = 0, R V = 0, ||R||_op <= 1
    R = -G / np.sqrt(LW * LH) - U @ Vt
    assert np.abs(U.T @ R).max() < 1e-8 and np.abs(R @ Vt.T).max() < 1e-8
    assert np.linalg.norm(R, 2) <= 1 + 1e-8


def test_linearized_residuals_predict_the_exact_ones(examples):
    values, predictions = examples
    for name, tol in (("binary_kl", 0.01), ("binary_kl_norm", 1e-3)):
        for side in ("target", "other"):
            exact = values[f"{name}_shape_residual_{side}"]
            assert predictions[f"{name}_linear_residual_{side}"] == pytest.approx(exact, rel=tol)
    # binary-kl-norm: mean residual M - m = -4c/alpha (linearized)
    c = np.sqrt(N5 * LW * LH)
    assert values["binary_kl_norm_single_M"] - MT == pytest.approx(-4 * c, rel=1e-3)


@pytest.mark.slow
def test_notes_reproduce_with_cvxpy():
    """Two NOTES rows recomputed: cvxpy (Clarabel) on the full N = 20 convex problem."""
    cp = pytest.importorskip("cvxpy")
    Kc, n = int(K4), int(N5)
    N, mu = Kc * n, np.sqrt(LW * LH)
    Y = np.eye(Kc)[:, np.repeat(np.arange(Kc), n)]
    Zt = collapsed(Kc, n, AT, MT)
    q = 1 / (1 + np.exp(-Zt / T2))
    const = np.sum(q * np.log(q) + (1 - q) * np.log(1 - q))

    def ce(Z):
        return cp.sum(cp.log_sum_exp(Z, axis=0)) - cp.sum(cp.multiply(Y, Z))

    Z1, Z2 = cp.Variable((Kc, N)), cp.Variable((Kc, N))
    bkl = T2**2 * (
        const
        + cp.sum(cp.multiply(q, cp.logistic(-Z1 / T2)) + cp.multiply(1 - q, cp.logistic(Z1 / T2)))
    )
    single = cp.Problem(cp.Minimize((ce(Z1) + bkl) / N + mu * cp.normNuc(Z1)))
    single.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    assert single.value == pytest.approx(NOTES["binary_kl_single_value"], abs=1e-8)
    R = (Z2 - Zt) / (2 * T2)
    bkln = T2**2 * (cp.sum(cp.logistic(2 * R) - R) - np.log(2) * Kc * N)
    dual = cp.Problem(cp.Minimize((ce(Z1) + bkln) / N + mu * cp.normNuc(cp.vstack([Z1, Z2]))))
    dual.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    assert dual.value == pytest.approx(NOTES["binary_kl_norm_dual_value"], abs=1e-8)
    assert np.abs(Z1.value.sum(axis=0)).max() < 1e-6  # the dual CE head is centred
