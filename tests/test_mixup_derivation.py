"""Mixup UFM: the sympy derivation (derivations/mixup.py), lambdified, against the package's
closed forms (ufm.models.mixup: kappa, ce_logits, same_class_gap, mixed_gaps,
mse_feature_scale, beta_quadrature), its predictions (`ufm.theory`), jax autodiff of its loss,
the solver, scipy's Beta law, and the worked example of derivations/mixup.py.

Reference values come from the derived equations, solved here with scipy root finders that do
not share code with the package, or from the worked example's 7-decimal numbers (``NOTES``:
computed independently, not read in a paper)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.special
import scipy.stats
import sympy as sp

import ufm
from derivations import mixup as dm
from ufm.models import mixup as mx
from ufm.models import plain as cf

NOTES = dm.NOTES  # worked example: numbers computed independently (7 decimals)

KS = (2, 3, 4, 5, 7, 10)
KAPPAS = (0.1, 1.0, 8 / 3, 10.0, 20.0)
LAMS = (0.05, 0.3, 0.5, 0.6, 0.75, 0.95, 1.0)


@pytest.fixture(scope="module")
def derived():
    return dm.derive()


@pytest.fixture(scope="module")
def f(derived):
    """The derived expressions as numpy functions of the named symbols."""
    args = {
        "kappa": (dm.K, dm.r, dm.lam_bar),
        "lambda_bar": (dm.N, dm.lam_H),
        "same_class_equation": (dm.g, dm.K, dm.kappa),
        "same_class_p": (dm.g, dm.K),
        "same_class_feature_scale": (dm.g, dm.K, dm.r),
        "zhu_r2": (dm.K, dm.n, dm.lam_W, dm.lam_H, dm.a_star),
        "zhu_margin": (dm.K, dm.n, dm.lam_W, dm.lam_H),
        "mixed_u_equation": (dm.u, dm.v, dm.K, dm.kappa, dm.lam),
        "mixed_v_equation": (dm.u, dm.v, dm.K, dm.kappa, dm.lam),
        "mixed_feature_scale": (dm.K, dm.r),
        "half_equation": (dm.u, dm.K, dm.kappa),
        "sum_identity": (dm.u, dm.v, dm.K, dm.kappa),
        "binary_equation": (dm.g, dm.kappa, dm.lam),
        "binary_kappa": (dm.r, dm.lam_bar),
        "binary_feature_scale": (dm.r,),
        "calibration_error": (dm.u, dm.v, dm.s, dm.K, dm.kappa, dm.lam),
        "calibration_first_order": (dm.u, dm.v, dm.s, dm.K, dm.kappa, dm.lam),
        "calibration_coefficient": (dm.K, dm.lam),
        "logit_growth_equation": (dm.u, dm.v, dm.s, dm.K, dm.kappa, dm.lam),
        "logit_growth_leading": (dm.s, dm.K, dm.kappa, dm.lam),
        "binary_calibration_error": (dm.g, dm.kappa, dm.lam),
        "binary_calibration_leading": (dm.kappa, dm.lam),
        "mse_feature_scale": (dm.K, dm.r, dm.lam_bar),
        "gram_a": (dm.n, dm.m1, dm.m2),
        "gram_b": (dm.n, dm.K, dm.m1, dm.m2),
        "gram_a_beta": (dm.n, dm.alpha),
        "gram_b_beta": (dm.n, dm.K, dm.alpha),
        "W_gram_one": (dm.n, dm.N, dm.lam_W, dm.lam_H),
        "W_gram_perp": (dm.n, dm.N, dm.lam_W, dm.lam_H, dm.m2),
        "learned_mse_loss": (dm.n, dm.N, dm.K, dm.lam_W, dm.lam_H, dm.m2),
        "full_rank_threshold": (dm.n, dm.m2),
        "beta_moment": (dm.alpha, dm.k_pow),
        "beta_m2": (dm.alpha,),
        "beta_mixing": (dm.alpha,),
        "gauss2_offset": (dm.alpha,),
        "gauss3_offset": (dm.alpha,),
        "gauss3_weight_outer": (dm.alpha,),
        "gauss3_weight_center": (dm.alpha,),
    }
    out = {}
    for name, syms in args.items():
        assert derived[name].free_symbols <= set(syms), name
        fn = sp.lambdify(syms, derived[name], ["scipy", "numpy"])
        out[name] = lambda *a, fn=fn: float(fn(*a))
    return out


# ------------------------------------------------------------------------------------------
# independent solutions of the derived equations (scipy; no package code)


def solve_same(f, K, kap):
    """g* in (0, kappa) from the derived same-class equation."""
    return scipy.optimize.brentq(
        lambda x: f["same_class_equation"](x, K, kap), 0.0, kap, xtol=1e-15, rtol=1e-15
    )


def solve_half(f, K, kap):
    """u = v at lam = 1/2, in (0, kappa/2)."""
    return scipy.optimize.brentq(
        lambda x: f["half_equation"](x, K, kap), 0.0, kap / 2, xtol=1e-15, rtol=1e-15
    )


def solve_mixed(f, K, kap, lam):
    """(u, v) from the derived pair of equations (K >= 3), started at the lam = 1/2 root."""
    u0 = solve_half(f, K, kap)
    eqs = lambda x: [
        f["mixed_u_equation"](x[0], x[1], K, kap, lam),
        f["mixed_v_equation"](x[0], x[1], K, kap, lam),
    ]
    sol = scipy.optimize.root(eqs, [u0, u0], method="hybr", tol=1e-14)
    # (hybr may report "not making good progress" at machine precision: check the residual)
    assert max(abs(e) for e in eqs(sol.x)) < 1e-13 * max(1.0, kap)
    return float(sol.x[0]), float(sol.x[1])


def solve_binary(f, kap, lam):
    """g = z_1 - z_2 for K = 2, between 0 and kappa (2 lam - 1)."""
    hi = kap * (2 * lam - 1)
    if hi == 0:
        return 0.0
    lo, hi = min(0.0, hi), max(0.0, hi)
    return scipy.optimize.brentq(
        lambda x: f["binary_equation"](x, kap, lam), lo, hi, xtol=1e-15, rtol=1e-15
    )


def soft(K, c1, c2, lam):
    y = np.zeros((K, 1))
    y[c1, 0] += lam
    y[c2, 0] += 1 - lam
    return y


def softmax(z):
    return scipy.special.softmax(z, axis=0)


def coefficients(W, h, c1, c2):
    """(a, b) with h = a w_c1 + b w_c2 (least squares), and the residual."""
    basis = np.stack([W[c1], W[c2]], axis=1)
    coef, *_ = np.linalg.lstsq(basis, h, rcond=None)
    return coef, np.linalg.norm(basis @ coef - h)


# ------------------------------------------------------------------------------------------
# step 1: decoupling with multiplicities


def test_loss_decouples_with_one_lambda_bar(f):
    p = ufm.make("mixup", loss="ce", K=3, n=4, d=4, lambda_H=0.01, mix="0.25,0.5,0.75")
    assert p.lambda_bar == pytest.approx(f["lambda_bar"](p.N, 0.01), rel=1e-15)
    W = np.asarray(p.fixed_classifier(np.float64))
    H = np.random.default_rng(0).standard_normal((4, p.counts.size))
    Y, mu = np.asarray(p.targets), np.asarray(p.counts)
    assert mu.sum() == pytest.approx(p.N, rel=1e-14)
    Z = W @ H
    lbar = f["lambda_bar"](p.N, 0.01)
    phi = scipy.special.logsumexp(Z, axis=0) - np.sum(Y * Z, 0) + lbar / 2 * np.sum(H**2, 0)
    assert float(p.loss({"H": jnp.asarray(H)})) == pytest.approx(np.sum(mu / p.N * phi), rel=1e-13)
    grad = np.asarray(jax.grad(p.loss)({"H": jnp.asarray(H)})["H"])
    expect = mu / p.N * (W.T @ (softmax(Z) - Y) + lbar * H)
    np.testing.assert_allclose(grad, expect, rtol=1e-12, atol=1e-15)


def test_mixing_law_does_not_move_the_column_optimum():
    """The lam = 1/2 columns are the same under three laws (all have a node at 1/2 and N = 12)."""
    feats = []
    for mix in ("0.5", "beta:0.3:3", "beta:4:3", "0.2,0.5,0.8"):
        p = ufm.make("mixup", loss="ce", K=3, n=4, d=3, lambda_H=0.02, mix=mix)
        cols = p.columns
        sel = np.flatnonzero(np.isclose(cols["lam"], 0.5, rtol=0, atol=1e-14))
        assert sel.size == 9  # every ordered class pair
        feats.append(np.asarray(ufm.theory(p).quantities["H"])[:, sel])
    for other in feats[1:]:
        np.testing.assert_allclose(other, feats[0], atol=1e-13)


# ------------------------------------------------------------------------------------------
# step 2: the ETF, kappa, the logit problem


@pytest.mark.parametrize("K", KS)
def test_etf_and_kappa(f, K):
    for d, r, lbar in ((K, 1.0, 0.5), (K - 1, 0.7, 0.03), (K + 2, 2.5, 3.0)):
        p = ufm.make("mixup", K=K, n=3, d=d, w_norm=r, lambda_H=lbar / (3 * K))
        W = np.asarray(p.fixed_classifier(np.float64))
        kap = f["kappa"](K, r, lbar)
        assert mx.kappa(K, r, p.lambda_bar) == pytest.approx(kap, rel=1e-14)
        P = np.eye(K) - np.ones((K, K)) / K
        np.testing.assert_allclose(W @ W.T, kap * lbar * P, atol=1e-13 * r**2)
        np.testing.assert_allclose(W.T @ np.ones(K), 0.0, atol=1e-13 * r)
    if K == 2:
        assert f["binary_kappa"](0.7, 0.03) == pytest.approx(f["kappa"](2, 0.7, 0.03), rel=1e-15)


@pytest.mark.parametrize("K", KS)
def test_ce_logits_solve_the_derived_stationarity(f, K):
    rng = np.random.default_rng(K)
    Y = rng.dirichlet(np.full(K, 0.5), size=12).T  # generic soft labels
    for kap in KAPPAS:
        Z = mx.ce_logits(Y, kap)
        np.testing.assert_allclose(Z, kap * (Y - softmax(Z)), atol=1e-12 * max(1.0, kap))
        np.testing.assert_allclose(Z.sum(axis=0), 0.0, atol=1e-12 * max(1.0, kap))
        # the z-problem is strictly convex (Hessian >= I/kappa): a perturbation raises it
        obj = lambda z, y, kap=kap: scipy.special.logsumexp(z) - y @ z + z @ z / (2 * kap)
        for m in range(3):
            dz = rng.standard_normal(K) * 1e-3
            gain = obj(Z[:, m] + dz, Y[:, m]) - obj(Z[:, m], Y[:, m])
            assert gain >= dz @ dz / (2 * kap) * (1 - 1e-6) - 1e-15


def test_ce_logits_converge_for_many_classes_and_weak_regularization():
    for K, kap, lam in ((10, 100.0, 0.75), (6, 1e3, 0.9), (20, 40.0, 1.0)):
        Y = soft(K, 0, 1, lam)
        Z = mx.ce_logits(Y, kap)
        np.testing.assert_allclose(Z, kap * (Y - softmax(Z)), atol=1e-9 * kap)


# ------------------------------------------------------------------------------------------
# step 3: same class


@pytest.mark.parametrize("K", KS)
def test_same_class_gap(f, K):
    for kap in (*KAPPAS, 100.0, 500.0):
        g = mx.same_class_gap(K, kap)
        assert 0 < g < kap
        assert abs(f["same_class_equation"](g, K, kap)) < 1e-12 * kap * K
        assert g == pytest.approx(solve_same(f, K, kap), rel=1e-13)
        if kap <= 20:  # the Newton logits of a same-class column: z_c - z_o = g*, p_c
            for lam in (0.0, 0.3, 1.0):  # y~ = e_c whatever lam is
                z = mx.ce_logits(soft(K, 1, 1, lam), kap)[:, 0]
                assert z[1] - z[0] == pytest.approx(g, rel=1e-12)
                np.testing.assert_allclose(np.delete(z, 1), z[0], atol=1e-12 * kap)
                assert softmax(z)[1] == pytest.approx(f["same_class_p"](g, K), rel=1e-12)


@pytest.mark.parametrize("K", (2, 3, 4, 10))
def test_same_class_is_the_plain_ce_margin(f, K):
    """r^2 = Zhu's ||w_k||^2 and lambda_bar = N lambda_H give g* = a* (derivations/mixup.py
    step 3)."""
    for n, lW, lH in ((5, 0.01, 0.01), (20, 1e-3, 5e-3), (3, 0.02, 1e-3)):
        margin = f["zhu_margin"](K, n, lW, lH)
        assert margin == pytest.approx(cf.ce_margin(K, n, lW, lH), rel=1e-13)
        r2 = f["zhu_r2"](K, n, lW, lH, margin)
        assert r2 == pytest.approx(cf.ce_w_norm2(K, n, lW, lH), rel=1e-13)
        kap = mx.kappa(K, np.sqrt(r2), K * n * lH)
        assert mx.same_class_gap(K, kap) == pytest.approx(margin, rel=1e-12)
        scale = f["same_class_feature_scale"](margin, K, np.sqrt(r2))
        assert scale**2 * r2 == pytest.approx(cf.ce_h_norm2(K, n, lW, lH), rel=1e-12)


# ------------------------------------------------------------------------------------------
# step 4: different classes


@pytest.mark.parametrize("K", [k for k in KS if k >= 3])
def test_mixed_gaps(f, K):
    for kap in KAPPAS:
        g_star = solve_same(f, K, kap)
        u_half = solve_half(f, K, kap)
        for lam in LAMS:
            u, v = mx.mixed_gaps(K, kap, lam)
            assert abs(f["mixed_u_equation"](u, v, K, kap, lam)) < 1e-12 * max(1.0, kap)
            assert abs(f["mixed_v_equation"](u, v, K, kap, lam)) < 1e-12 * max(1.0, kap)
            assert abs(f["sum_identity"](u, v, K, kap)) < 1e-11 * max(1.0, kap) * K
            np.testing.assert_allclose((u, v), solve_mixed(f, K, kap, lam), rtol=1e-11, atol=1e-13)
            # symmetry u(lam) = v(1 - lam)
            u2, v2 = mx.mixed_gaps(K, kap, 1 - lam)
            np.testing.assert_allclose((u2, v2), (v, u), rtol=1e-12, atol=1e-14)
            # the other classes share one logit
            z = mx.ce_logits(soft(K, 0, 1, lam), kap)[:, 0]
            np.testing.assert_allclose(z[2:], z[2], atol=1e-12 * max(1.0, kap))
        # lam = 1/2: on the decision boundary; lam = 1: the same-class solution
        u, v = mx.mixed_gaps(K, kap, 0.5)
        assert u == pytest.approx(u_half, rel=1e-12) and abs(u - v) < 1e-13 * max(1.0, kap)
        assert 0 < u_half < kap / 2
        u, v = mx.mixed_gaps(K, kap, 1.0)
        assert u == pytest.approx(g_star, rel=1e-12) and abs(v) < 1e-13 * max(1.0, kap)


def test_binary_classes(f):
    """K = 2 (no 'other' class; mixed_gaps is K >= 3 only): g = z_1 - z_2 from ce_logits."""
    for kap in KAPPAS:
        for lam in LAMS:
            z = mx.ce_logits(soft(2, 0, 1, lam), kap)[:, 0]
            g = z[0] - z[1]
            assert abs(f["binary_equation"](g, kap, lam)) < 1e-13 * max(1.0, kap)
            assert g == pytest.approx(solve_binary(f, kap, lam), rel=1e-12, abs=1e-15)
            z2 = mx.ce_logits(soft(2, 0, 1, 1 - lam), kap)[:, 0]
            assert z2[0] - z2[1] == pytest.approx(-g, rel=1e-12, abs=1e-15)
        assert abs(np.diff(mx.ce_logits(soft(2, 0, 1, 0.5), kap)[:, 0])[0]) < 1e-15
        assert solve_binary(f, kap, 1.0) == pytest.approx(mx.same_class_gap(2, kap), rel=1e-12)


@pytest.mark.parametrize("K,d", [(2, 2), (3, 3), (3, 5), (4, 3), (5, 6)])
def test_fixed_etf_features_from_theory(f, K, d):
    """ufm.theory's features: same class on the ray, different classes in the span, MSE
    linear in lam; the problem's own mixup properties vanish."""
    n, lH, r, mix = 3, 0.04, 1.3, "0.1,0.5,0.75,1"
    for loss in ("ce", "mse"):
        p = ufm.make("mixup", loss=loss, K=K, n=n, d=d, w_norm=r, lambda_H=lH, mix=mix)
        t = ufm.theory(p)
        H = np.asarray(t.quantities["H"])
        W = np.asarray(p.fixed_classifier(np.float64))
        lbar, cols = f["lambda_bar"](K * n, lH), p.columns
        kap = f["kappa"](K, r, lbar)
        for m in range(cols["lam"].size):
            c1, c2, lam = int(cols["c1"][m]), int(cols["c2"][m]), float(cols["lam"][m])
            if loss == "mse":
                scale = f["mse_feature_scale"](K, r, lbar)
                want = scale * (lam * W[c1] + (1 - lam) * W[c2])
            elif c1 == c2:
                want = f["same_class_feature_scale"](solve_same(f, K, kap), K, r) * W[c1]
            elif K == 2:
                g = solve_binary(f, kap, lam)
                want = f["binary_feature_scale"](r) * g * W[c1]
            else:
                u, v = solve_mixed(f, K, kap, lam)
                want = f["mixed_feature_scale"](K, r) * (u * W[c1] + v * W[c2])
            np.testing.assert_allclose(H[:, m], want, atol=1e-12)
        if K == 2:  # lam = 1/2 between the two classes: h = 0 (CE and MSE)
            half = (cols["c1"] != cols["c2"]) & (cols["lam"] == 0.5)
            np.testing.assert_allclose(H[:, half], 0.0, atol=1e-14)
        props = mx.properties(p, t.params)
        assert props["span_residual"] < 1e-12 and props["same_class_spread"] < 1e-12
        assert props["boundary_gap"] < 1e-12


def test_mse_feature_scale(f):
    for K in KS:
        for r, lbar in ((1.0, 0.5), (0.3, 2.0), (2.0, 1e-3)):
            assert mx.mse_feature_scale(K, r, lbar) == pytest.approx(
                f["mse_feature_scale"](K, r, lbar), rel=1e-15
            )


# ------------------------------------------------------------------------------------------
# step 5: calibration


@pytest.mark.parametrize("K", (3, 4, 5))
def test_calibration_rate(f, K):
    kappas = np.geomspace(1e2, 1e6, 5)
    for lam in (0.6, 0.75, 0.9):
        odds = np.log(lam / (1 - lam))
        C = f["calibration_coefficient"](K, lam)
        assert C == pytest.approx((K - 2) * (2 * lam - 1) / (K * lam * (1 - lam)), rel=1e-14)
        deltas = []
        for kap in kappas:
            u, v = mx.mixed_gaps(K, kap, lam)
            s = u + v
            delta = u - v - odds
            deltas.append(delta)
            # the exact identity, its first order (error O(s^2/kappa^2)), the growth of s
            assert delta == pytest.approx(f["calibration_error"](u, v, s, K, kap, lam), abs=1e-13)
            first = f["calibration_first_order"](u, v, s, K, kap, lam)
            assert abs(delta / first - 1) < 0.5 * s**2 / kap
            assert abs(f["logit_growth_equation"](u, v, s, K, kap, lam)) < 1e-12 * s
            assert abs(f["logit_growth_leading"](s, K, kap, lam)) < 5 * s / kap
        # from kappa = 1e3 on: overshoot (delta > 0 for lam > 1/2) and the rate log(kappa)/kappa
        # up to log log terms: the local log-log slope steepens towards -1
        deltas, big = np.asarray(deltas[1:]), kappas[1:]
        assert np.all(deltas > 0)
        slope = np.diff(np.log(deltas)) / np.diff(np.log(big))
        assert np.all(slope[1:] < -0.5) and -1 < slope[-1] < -0.8
        assert np.all(np.diff(slope) < 0)
        ratio = deltas * big / (C * np.log(big))  # -> 1, slowly (s/(2 log kappa) -> 1)
        assert np.all(np.diff(ratio) > 0) and 0.4 < ratio[-1] < 1
    # lam = 1/2: exactly calibrated; not monotone: under-confident at small kappa
    u, v = mx.mixed_gaps(K, 1e4, 0.5)
    assert abs(u - v) < 1e-10
    u, v = mx.mixed_gaps(K, 1.0, 0.75)
    assert u - v - np.log(3) < -0.5


def test_binary_calibration_rate(f):
    for lam in (0.6, 0.75, 0.9):
        odds = np.log(lam / (1 - lam))
        for kap in (1e2, 1e4, 1e6):
            z = mx.ce_logits(soft(2, 0, 1, lam), kap)[:, 0]
            g = z[0] - z[1]
            delta = g - odds
            assert delta == pytest.approx(f["binary_calibration_error"](g, kap, lam), abs=1e-13)
            lead = f["binary_calibration_leading"](kap, lam)
            assert lead == pytest.approx(-odds / (2 * lam * (1 - lam) * kap), rel=1e-14)
            assert delta < 0 and abs(delta / lead - 1) < 30 / kap  # rate 1/kappa


# ------------------------------------------------------------------------------------------
# worked example (derivations/mixup.py step 9, ``NOTES``)


def test_derivation_reproduces_the_worked_example(derived):
    values = dm.worked_examples(derived)
    assert set(values) == set(NOTES)
    for key, value in values.items():
        assert value == pytest.approx(NOTES[key], abs=dm.NOTES_TOL), key


def test_worked_example_from_the_package():
    K, r, lbar = 4, 1.0, 0.5
    tol = dm.NOTES_TOL
    kap = mx.kappa(K, r, lbar)
    assert kap == pytest.approx(NOTES["kappa"], rel=1e-15)
    g = mx.same_class_gap(K, kap)
    assert g == pytest.approx(NOTES["g_star"], abs=tol)
    z = mx.ce_logits(soft(K, 0, 0, 1.0), kap)[:, 0]
    assert softmax(z)[0] == pytest.approx(NOTES["p_same"], abs=tol)
    u, v = mx.mixed_gaps(K, kap, 0.5)
    assert u == pytest.approx(NOTES["u_half"], abs=tol) and v == pytest.approx(u, abs=1e-15)
    u, v = mx.mixed_gaps(K, kap, 0.75)
    assert (u, v) == pytest.approx((NOTES["u_075"], NOTES["v_075"]), abs=tol)
    assert u - v == pytest.approx(NOTES["gap_075"], abs=tol)
    u, v = mx.mixed_gaps(K, 1e6, 0.75)  # the limit log 3, approached like log(kappa)/kappa
    assert u - v == pytest.approx(NOTES["gap_limit_075"], abs=1e-4)
    n = 5  # lambda_bar = N lambda_H = 0.5
    want = {
        ("ce", 0, 0.5): ("h_same", "h_same"),
        ("ce", 1, 0.5): ("h_half", "h_half"),
        ("ce", 1, 0.75): ("h_075_c", "h_075_c2"),
        ("mse", 1, 0.75): ("mse_075_c", "mse_075_c2"),
    }
    for loss in ("ce", "mse"):
        p = ufm.make(
            "mixup", loss=loss, K=K, n=n, d=K, w_norm=r, lambda_H=lbar / (K * n), mix="0.5,0.75"
        )
        assert p.lambda_bar == pytest.approx(lbar, rel=1e-15)
        H = np.asarray(ufm.theory(p).quantities["H"])
        W = np.asarray(p.fixed_classifier(np.float64))
        cols = p.columns
        for (lo, c2, lam), (ka, kb) in want.items():
            if lo != loss:
                continue
            (m,) = np.flatnonzero((cols["c1"] == 0) & (cols["c2"] == c2) & (cols["lam"] == lam))
            coef, res = coefficients(W, H[:, m], 0, 1)
            if c2 == 0:  # same class: on the ray of w_0 (coefficient of w_1 is zero)
                coef, res = np.linalg.lstsq(W[[0]].T, H[:, m], rcond=None)[:2]
                coef = (coef[0], coef[0])
            assert res < 1e-12
            assert tuple(coef) == pytest.approx((NOTES[ka], NOTES[kb]), abs=tol)


# ------------------------------------------------------------------------------------------
# step 8: Gauss-Jacobi quadrature of Beta(alpha, alpha)


@pytest.mark.parametrize("alpha", (0.2, 1.0, 4.0))
def test_beta_quadrature_moments(f, alpha):
    law = scipy.stats.beta(alpha, alpha)
    assert f["beta_m2"](alpha) == pytest.approx(law.moment(2), rel=1e-13)
    assert f["beta_mixing"](alpha) == pytest.approx(alpha / (2 * (2 * alpha + 1)), rel=1e-14)
    for nodes in (1, 2, 3, 5, 8):
        lam, w = mx.beta_quadrature(alpha, nodes)
        assert np.all((lam > 0) & (lam < 1)) and w.sum() == pytest.approx(1.0, rel=1e-14)
        np.testing.assert_allclose(lam + lam[::-1], 1.0, atol=1e-14)  # symmetric
        for k in range(2 * nodes + 1):
            quad = float(np.sum(w * lam**k))
            exact = f["beta_moment"](alpha, k) if k else 1.0
            assert exact == pytest.approx(law.moment(k), rel=1e-8)  # scipy integrates
            if k < 2 * nodes:
                assert quad == pytest.approx(exact, rel=1e-12), (nodes, k)
            else:  # degree 2 J is the first one it misses
                assert abs(quad - exact) > 1e-11 * exact
    # the closed-form 2- and 3-node rules
    lam, w = mx.beta_quadrature(alpha, 2)
    np.testing.assert_allclose(lam, 0.5 + np.array([-1, 1]) * f["gauss2_offset"](alpha), rtol=1e-13)
    np.testing.assert_allclose(w, 0.5, rtol=1e-13)
    lam, w = mx.beta_quadrature(alpha, 3)
    np.testing.assert_allclose(
        lam, 0.5 + np.array([-1, 0, 1]) * f["gauss3_offset"](alpha), rtol=1e-13
    )
    outer, center = f["gauss3_weight_outer"](alpha), f["gauss3_weight_center"](alpha)
    np.testing.assert_allclose(w, [outer, center, outer], rtol=1e-12)


# ------------------------------------------------------------------------------------------
# step 7: learned MSE


def second_moment(p):
    """E lam and E lam^2 of the problem's law, from its spec (not from its columns)."""
    spec = p.mix
    if spec["kind"] == "fixed":
        lams = np.asarray(spec["lams"])
        return float(lams.mean()), float(np.mean(lams**2))
    law = scipy.stats.beta(spec["alpha"], spec["alpha"])
    return law.moment(1), law.moment(2)


LEARNED = [  # (K, n, d, lambda_W, lambda_H, mix, regime)
    (3, 100, 4, 5e-4, 1e-3, "beta:1:8", "full"),
    (4, 10, 4, 1e-3, 2e-3, "beta:0.2:6", "full"),
    (5, 6, 6, 2e-3, 1e-3, "0.25,0.5,0.75", "full"),
    (3, 10, 4, 0.3 / np.sqrt(10), 0.3 / np.sqrt(10), "beta:1:8", "rank_one"),  # c = 0.9
    (3, 10, 4, 0.4 / np.sqrt(10), 0.4 / np.sqrt(10), "beta:4:5", "zero"),  # c = 1.2
]


@pytest.mark.parametrize("case", LEARNED)
def test_learned_mse_classifier_is_not_an_etf(f, case):
    K, n, d, lW, lH, mix, regime = case
    p = ufm.make(
        "mixup", loss="mse", classifier="learned", K=K, n=n, d=d, lambda_W=lW, lambda_H=lH, mix=mix
    )
    N = K * n
    e1, e2 = second_moment(p)
    if mix.startswith("beta"):
        alpha = p.mix["alpha"]
        assert e2 == pytest.approx(f["beta_m2"](alpha), rel=1e-13)
    # T T^T = sum_m mu_m y~_m y~_m^T = a I + b 1 1^T, a + K b = n
    Y, mu = np.asarray(p.targets), np.asarray(p.counts)
    a, b = f["gram_a"](n, e1, e2), f["gram_b"](n, K, e1, e2)
    np.testing.assert_allclose((Y * mu) @ Y.T, a * np.eye(K) + b * np.ones((K, K)), rtol=1e-12)
    assert a + K * b == pytest.approx(n, rel=1e-14) and b > 0
    if mix.startswith("beta"):
        assert a == pytest.approx(f["gram_a_beta"](n, alpha), rel=1e-12)
        assert b == pytest.approx(f["gram_b_beta"](n, K, alpha), rel=1e-12)
    # W W^T = one 11^T/K + perp P_K
    one, perp = f["W_gram_one"](n, N, lW, lH), f["W_gram_perp"](n, N, lW, lH, e2)
    c = K * np.sqrt(n * lW * lH)
    rank_one_below = f["full_rank_threshold"](n, e2)
    assert regime == ("zero" if c >= 1 else "rank_one" if c >= rank_one_below else "full")
    P = np.eye(K) - np.ones((K, K)) / K
    expect = one * np.ones((K, K)) / K + perp * P
    t = ufm.theory(p)
    got = np.asarray(t.quantities["W_gram"])
    np.testing.assert_allclose(got, expect, rtol=1e-10, atol=1e-13)
    assert t.loss == pytest.approx(f["learned_mse_loss"](n, N, K, lW, lH, e2), rel=1e-12)
    row_sum = np.ones(K) @ got @ np.ones(K)  # ||sum_k w_k||^2
    if regime == "zero":
        assert t.geometry == "zero" and np.all(got == 0)
        return
    # the 1-component survives whenever W != 0: not a simplex ETF, rows at acute angles
    assert row_sum == pytest.approx(K * one, rel=1e-10) and one > perp >= 0
    assert row_sum > 0.01 * np.trace(got)
    assert np.all(got[~np.eye(K, dtype=bool)] > 0)
    assert np.linalg.matrix_rank(got, tol=1e-9 * np.trace(got)) == (
        1 if regime == "rank_one" else K
    )


def test_learned_mse_solver_agrees(f):
    """The solver's W (independent of the closed form) keeps the 1-component too."""
    K, n, lW, lH = 3, 10, 2e-3, 1e-3
    p = ufm.make(
        "mixup",
        loss="mse",
        classifier="learned",
        K=K,
        n=n,
        d=4,
        lambda_W=lW,
        lambda_H=lH,
        mix="beta:1:4",
    )
    sol = ufm.solve(p)
    assert sol.converged
    W = np.asarray(sol.params["W"])
    e2 = scipy.stats.beta(1, 1).moment(2)
    one, perp = f["W_gram_one"](n, K * n, lW, lH), f["W_gram_perp"](n, K * n, lW, lH, e2)
    P = np.eye(K) - np.ones((K, K)) / K
    np.testing.assert_allclose(W @ W.T, one * np.ones((K, K)) / K + perp * P, atol=1e-7)
    assert np.ones(K) @ W @ W.T @ np.ones(K) == pytest.approx(K * one, rel=1e-7)
    assert float(p.loss(sol.params)) == pytest.approx(ufm.theory(p).loss, rel=1e-10)
