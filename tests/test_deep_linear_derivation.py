"""Deep linear UFM: the sympy derivation (derivations/deep_linear.py), lambdified, against the
package's closed forms (ufm._theory.direction_minimizer, ufm.models.deep_linear) and the worked
examples of derivations/deep_linear.py (``NOTES``)."""

import numpy as np
import pytest
import scipy.optimize
import sympy as sp

import ufm
from derivations import deep_linear as dv
from ufm._theory import direction_minimizer
from ufm.models import deep_linear as dl
from ufm.models import plain as cf

DEPTHS = (1, 2, 3, 4, 5, 6)

NOTES = dv.NOTES  # worked examples: numbers computed independently, not read in a paper


@pytest.fixture(scope="module")
def derived():
    return dv.derive()


@pytest.fixture(scope="module")
def f(derived):
    """The derived expressions as numpy functions of fixed argument lists."""
    args = {
        "psi": (dv.M, dv.N, dv.mu, dv.s, dv.z),
        "gamma": (dv.M, dv.N, dv.mu, dv.s),
        "g": (dv.M, dv.a, dv.gamma),
        "h": (dv.M, dv.a),
        "h_peak": (dv.M,),
        "gamma_max": (dv.M,),
        "g_stationary_minus_1": (dv.M, dv.a),
        "a_switch": (dv.M,),
        "gamma_star": (dv.M,),
        "own_fraction_M1": (dv.gamma,),
        "x_of_a": (dv.M, dv.a),
        "beta_of_gamma": (dv.M, dv.gamma),
        "beta_star": (dv.M,),
        "beta_max": (dv.M,),
        "gamma_k": (dv.M, dv.N, dv.Lam, dv.n_k),
        "minority_threshold": (dv.M, dv.N, dv.Lam),
        "minority_threshold_M1": (dv.N, dv.Lam),
        "dang_b": (dv.M, dv.N, dv.Lam),
        "factor_sv2": (dv.M, dv.z, dv.mu, dv.lam_j),
        "layer_hbar_norm2": (dv.M, dv.m, dv.z, dv.mu, dv.Lam_below, dv.n_k),
        "layer_head_gram": (dv.M, dv.m, dv.z, dv.mu, dv.Lam_above),
        "W_gram": (dv.M, dv.z, dv.mu, dv.lam_H),
        "hbar1_norm2": (dv.M, dv.z, dv.mu, dv.lam_H, dv.n_k),
        "W_gram_dang": (dv.M, dv.N, dv.lam_H, dv.x),
        "hbar1_norm2_dang": (dv.M, dv.N, dv.lam_H, dv.x),
        "layer_lambda_s2_dang": (dv.M, dv.N, dv.Lam, dv.x),
        "balanced_loss": (dv.M, dv.K, dv.n, dv.mu, dv.a),
        "balanced_bias_loss": (dv.M, dv.K, dv.n, dv.mu, dv.a),
        "etf_energy": (dv.M, dv.K, dv.n, dv.mu, dv.a),
        "orthoplex_energy": (dv.M, dv.K, dv.n, dv.mu, dv.a),
    }
    out = {name: sp.lambdify(symbols, derived[name], "numpy") for name, symbols in args.items()}
    out["etf_energy_da"] = sp.lambdify(args["etf_energy"], sp.diff(derived["etf_energy"], dv.a))
    out["orthoplex_energy_da"] = sp.lambdify(
        args["orthoplex_energy"], sp.diff(derived["orthoplex_energy"], dv.a)
    )
    return out


def spread(Lam, depth):
    """(lambda_H, [lambda_W1 .. lambda_WM]), unequal, with product Lam."""
    logs = np.log(Lam) / (depth + 1) + 0.4 * (np.arange(depth + 1) - depth / 2)
    lam = np.exp(logs)
    return float(lam[0]), [float(v) for v in lam[1:]]


# ------------------------------------------------------------------------------------------
# the scalar problem per direction


@pytest.mark.parametrize("depth", DEPTHS)
def test_direction_minimizer_against_derivation(f, depth):
    N, mu = 60, 0.004
    g_star, g_max = f["gamma_star"](depth), f["gamma_max"](depth)
    # gamma/gamma* from far inside to beyond the local-minimum window (gamma*, gamma_max),
    # points inside that window, and 1 -+ 1e-6
    window = 1 + (g_max / g_star - 1) * np.array([0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
    window = window if depth >= 2 else np.array([])  # M = 1: gamma_max = gamma* = 1
    ratios = np.concatenate([np.geomspace(0.05, 4.0, 41), window, [1 - 1e-6, 1 + 1e-6]])
    s = (N * mu / (ratios * g_star)) ** ((depth + 1) / (2 * depth))
    a, psi_min = direction_minimizer(s, N, mu, depth)
    gam = f["gamma"](depth, N, mu, s)
    np.testing.assert_allclose(gam, ratios * g_star, rtol=1e-13)
    on = gam < g_star  # the derived threshold: the nonzero branch is global
    np.testing.assert_array_equal(a > 0, on)
    if depth >= 2:  # the grid has all three regimes: on, off with a local root, off without
        assert on.sum() > 5 and np.sum(~on & (gam < g_max)) > 5 and np.sum(gam > g_max) > 2
    # on: a is the largest stationary root, past the switch, and g(a) < 1
    np.testing.assert_allclose(f["h"](depth, a[on]), gam[on], rtol=1e-10)
    assert np.all(a[on] >= f["h_peak"](depth))
    assert np.all(a[on] > f["a_switch"](depth))
    g_on = f["g"](depth, a[on], gam[on])
    assert np.all(g_on < 1)
    np.testing.assert_allclose(g_on - 1, f["g_stationary_minus_1"](depth, a[on]), atol=1e-12)
    # psi at the returned point, and = s^2/(2N) g(a)
    np.testing.assert_allclose(psi_min, f["psi"](depth, N, mu, s, a * s), rtol=1e-13)
    np.testing.assert_allclose(psi_min, s**2 / (2 * N) * f["g"](depth, a, gam), rtol=1e-12)
    np.testing.assert_allclose(psi_min[~on], s[~on] ** 2 / (2 * N), rtol=1e-15)
    # global: no point of a fine grid of [0, 1] beats it (z > s only loses)
    grid = np.linspace(0.0, 1.0, 4001)
    g_grid = f["g"](depth, grid[None, :], gam[:, None])
    assert np.all(g_grid.min(axis=1) >= f["g"](depth, a, gam) - 1e-12)
    if depth == 1:
        np.testing.assert_allclose(a, np.maximum(0, f["own_fraction_M1"](gam)), atol=1e-15)


def test_m1_is_the_plain_soft_threshold(f):
    s = np.sqrt(np.array([1.0, 3.0, 10.0, 40.0, 100.0]))
    N = 154
    for mu in (1e-4, 0.01, 0.03, 0.08):
        a, psi_min = direction_minimizer(s, N, mu, 1)
        gam = f["gamma"](1, N, mu, s)
        np.testing.assert_allclose(a, np.maximum(0.0, f["own_fraction_M1"](gam)), atol=1e-15)
        z = np.maximum(0.0, s - N * mu)  # derivations/plain_ufm.py step 5: soft threshold
        np.testing.assert_allclose(a * s, z, atol=1e-13)
        alive = s > N * mu
        expect = np.where(alive, mu * s - N * mu**2 / 2, s**2 / (2 * N))
        np.testing.assert_allclose(psi_min, expect, rtol=1e-12)
    assert f["gamma_star"](1) == 1.0 and f["beta_star"](1) == 1.0


# ------------------------------------------------------------------------------------------
# thresholds


@pytest.mark.parametrize("depth", DEPTHS)
def test_thresholds_match_package(f, depth):
    b_star = f["beta_star"](depth)
    assert b_star == pytest.approx(dl.beta_star(depth), rel=1e-14)
    assert f["beta_of_gamma"](depth, f["gamma_star"](depth)) == pytest.approx(b_star, rel=1e-14)
    if depth >= 2:
        assert f["beta_max"](depth) == pytest.approx(
            f["beta_of_gamma"](depth, f["gamma_max"](depth)), rel=1e-14
        )
        assert b_star < f["beta_max"](depth)
    for N in (20, 107, 1000):
        for Lam in (1e-12, 3e-8, 2e-4):
            lam_H, lam_W = spread(Lam ** ((depth + 1) / 2) if depth == 1 else Lam, depth)
            Lam_ = lam_H * float(np.prod(lam_W))
            got = dl.minority_threshold(N, lam_H, lam_W)
            assert f["minority_threshold"](depth, N, Lam_) == pytest.approx(got, rel=1e-12)
            if depth == 1:
                assert f["minority_threshold_M1"](N, Lam_) == pytest.approx(got, rel=1e-12)
            # Dang's beta_k = b/n_k is M gamma_k^{(M+1)/M}; off iff beta_k >= beta*
            n_k = np.array([1.0, 7.0, 50.0])
            beta_k = f["dang_b"](depth, N, Lam_) / n_k
            gk = f["gamma_k"](depth, N, Lam_, n_k)
            np.testing.assert_allclose(beta_k, f["beta_of_gamma"](depth, gk), rtol=1e-12)
    assert dl.beta_star(2) == 0.5
    assert [round(dl.beta_star(M), 5) for M in (3, 4, 6)] == [0.52913, 0.56988, 0.63727]


@pytest.mark.parametrize("depth", DEPTHS)
def test_minority_collapse_switches_exactly_at_threshold(f, depth):
    counts = np.array([60, 30, 12, 5])
    N, target = int(counts.sum()), 2  # put the threshold just above / below n = 12
    for eps, off in ((1e-6, True), (-1e-6, False)):
        T = counts[target] * (1 + eps)
        Lam = (T / f["minority_threshold"](depth, N, 1.0)) ** depth  # threshold ~ Lam^{1/M}
        lam_H, lam_W = spread(Lam, depth)
        assert dl.minority_threshold(N, lam_H, lam_W) == pytest.approx(T, rel=1e-12)
        a, _ = direction_minimizer(np.sqrt(counts), N, dl.mu(lam_H, lam_W), depth)
        assert (a[target] == 0) == off
        np.testing.assert_array_equal(a > 0, counts > T)
        gk = f["gamma_k"](depth, N, lam_H * float(np.prod(lam_W)), counts.astype(float))
        np.testing.assert_array_equal(a > 0, gk < f["gamma_star"](depth))
        problem = ufm.make(
            "deep-linear",
            loss="mse",
            K=4,
            n=[int(c) for c in counts],
            d=4,
            depth=depth,
            lambda_W=lam_W,
            lambda_H=lam_H,
        )
        theory = problem.theory()
        np.testing.assert_allclose(np.diag(theory.quantities["logits"]), a, atol=1e-14)
        assert theory.regime == "minority_collapse"  # class 3 (n = 5) is off either way
        assert int(np.sum(a > 0)) == (2 if off else 3)


# ------------------------------------------------------------------------------------------
# per-layer quantities


@pytest.mark.parametrize(
    "depth, counts, lam_W, lam_H",
    [
        (1, (40, 20, 9, 3), [0.03], 0.03),  # class 3 off (threshold 4.67)
        (2, (40, 20, 9, 3), [0.008, 0.04], 0.012),  # class 3 off (4.79)
        (3, (40, 20, 9, 3), [0.006, 0.03, 0.012], 0.01),  # class 3 off (4.73)
        (5, (30, 30, 30), [0.01, 0.003, 0.02, 0.005, 0.008], 0.004),
    ],
)
def test_per_layer_quantities_match_theory(f, depth, counts, lam_W, lam_H):
    problem = ufm.make(
        "deep-linear",
        loss="mse",
        K=len(counts),
        n=list(counts),
        d=5,
        depth=depth,
        lambda_W=lam_W,
        lambda_H=lam_H,
    )
    theory = problem.theory()
    n_k = np.array(counts, dtype=float)
    N = int(n_k.sum())
    lams = [lam_H, *lam_W]
    mu_ = dl.mu(lam_H, lam_W)
    a, _ = direction_minimizer(np.sqrt(n_k), N, mu_, depth)
    z = a * np.sqrt(n_k)
    on = a > 0
    assert np.sum(~on) == (1 if len(counts) == 4 else 0)  # both branches covered
    q = theory.quantities
    np.testing.assert_allclose(np.diag(q["logits"]), a, atol=1e-14)
    np.testing.assert_allclose(q["w_norm2"], f["W_gram"](depth, z, mu_, lam_H), rtol=1e-11)
    np.testing.assert_allclose(
        q["hbar_norm2"], f["hbar1_norm2"](depth, z, mu_, lam_H, n_k), rtol=1e-11
    )
    # Dang's x-forms hold at the stationary points (the classes that are on)
    x = f["x_of_a"](depth, a[on])
    np.testing.assert_allclose(q["w_norm2"][on], f["W_gram_dang"](depth, N, lam_H, x), rtol=1e-10)
    np.testing.assert_allclose(
        q["hbar_norm2"][on], f["hbar1_norm2_dang"](depth, N, lam_H, x), rtol=1e-10
    )
    Lam = float(np.prod(lams))
    for m, layer in enumerate(theory.layers, start=1):
        below, above = float(np.prod(lams[:m])), float(np.prod(lams[m:]))
        hbar = f["layer_hbar_norm2"](depth, m, z, mu_, below, n_k)
        head = f["layer_head_gram"](depth, m, z, mu_, above)
        np.testing.assert_allclose(layer["Hbar_gram"], np.diag(hbar), rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(layer["head_gram"], np.diag(head), rtol=1e-11, atol=1e-14)
        sv2 = f["factor_sv2"](depth, z, mu_, lams[m])
        np.testing.assert_allclose(layer["W_sv"] ** 2, np.sort(sv2)[::-1], rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(layer["W_norm2"], sv2.sum(), rtol=1e-11)
        np.testing.assert_allclose(
            lams[m] * sv2[on], f["layer_lambda_s2_dang"](depth, N, Lam, x), rtol=1e-10
        )
    assert theory.loss == pytest.approx(
        float(np.sum(f["psi"](depth, N, mu_, np.sqrt(n_k), z))), rel=1e-13
    )


# ------------------------------------------------------------------------------------------
# worked examples (derivations/deep_linear.py, ``NOTES``)


def test_derivation_reproduces_the_worked_examples(derived):
    values = dv.worked_examples(derived)
    assert set(values) == set(NOTES)
    for key, value in values.items():
        digits = len(f"{NOTES[key]:.10g}".replace(".", "").lstrip("0"))
        tol = 0.6 * 10.0 ** (np.floor(np.log10(abs(NOTES[key]))) - digits + 1)
        assert value == pytest.approx(NOTES[key], abs=tol), key


def test_worked_example_mse(f):
    kw = {"loss": "mse", "K": 4, "n": 5, "d": 8, "depth": 3, "lambda_W": 0.005}
    theory = ufm.make("deep-linear", lambda_H=0.005, **kw).theory()
    assert (theory.regime, theory.geometry) == ("collapsed", "orthogonal_frame")
    assert theory.loss == pytest.approx(NOTES["balanced_loss"], abs=1e-9)
    q = theory.quantities
    np.testing.assert_allclose(q["W_gram"], NOTES["W_gram"] * np.eye(4), atol=1e-7)
    np.testing.assert_allclose(q["Hbar_gram"], NOTES["hbar1_norm2"] * np.eye(4), atol=1e-7)
    np.testing.assert_allclose(q["logits"], NOTES["a"] * np.eye(4), atol=1e-8)
    for layer in theory.layers:
        np.testing.assert_allclose(layer["W_sv"] ** 2, NOTES["factor_sv2"], atol=1e-7)
        assert float(layer["W_norm2"]) == pytest.approx(NOTES["W_norm2"], abs=1e-7)
    a = float(q["logits"][0, 0])
    assert float(f["balanced_loss"](3, 4, 5, 0.005, a)) == pytest.approx(theory.loss, rel=1e-13)
    x = float(f["x_of_a"](3, a))
    assert x == pytest.approx(NOTES["x"], abs=1e-7)
    assert float(f["dang_b"](3, 20, 0.005**4)) == pytest.approx(NOTES["dang_b"], abs=1e-8)
    biased = ufm.make("deep-linear", lambda_H=0.005, bias=True, **kw).theory()
    assert biased.geometry == "simplex_etf"
    assert biased.loss == pytest.approx(NOTES["balanced_bias_loss"], abs=1e-9)
    assert float(f["balanced_bias_loss"](3, 4, 5, 0.005, a)) == pytest.approx(
        biased.loss, rel=1e-13
    )
    P = np.eye(4) - 0.25
    np.testing.assert_allclose(biased.quantities["W_gram"], NOTES["W_gram"] * P, atol=1e-7)
    # the equal-lambda threshold: zero past lambda ~ 0.045502
    for lam, regime in ((0.0455, "collapsed"), (0.04551, "zero")):
        kw_lam = kw | {"lambda_W": lam}
        assert ufm.make("deep-linear", lambda_H=lam, **kw_lam).theory().regime == regime


def test_worked_example_ce():
    a_etf, e_etf = dl.etf_best(4, 5, 0.005, 3)
    a_orth, e_orth = dl.orthoplex_best(4, 5, 0.005, 3)
    assert a_etf == pytest.approx(NOTES["etf_margin"], abs=1e-7)
    assert e_etf == pytest.approx(NOTES["etf_loss"], abs=1e-8)
    assert a_orth == pytest.approx(NOTES["orthoplex_a"], abs=1e-7)
    assert e_orth == pytest.approx(NOTES["orthoplex_loss"], abs=1e-8)
    kw = {"loss": "ce", "K": 4, "n": 5, "d": 6, "depth": 3, "lambda_W": 0.005}
    theory = ufm.make("deep-linear", lambda_H=0.005, **kw).theory()
    assert (theory.geometry, theory.loss) == ("orthoplex", pytest.approx(e_orth, rel=1e-14))
    np.testing.assert_allclose(
        theory.quantities["logits_sv"], [2 * a_orth] * 2 + [0] * 2, atol=1e-9
    )


# ------------------------------------------------------------------------------------------
# deep CE energies


@pytest.mark.parametrize("depth", DEPTHS)
def test_ce_energies_match_package(f, depth):
    grid = np.concatenate([[0.0], np.geomspace(1e-3, 60.0, 200)])
    for K in (4, 6, 10):
        for n in (1, 5, 100):
            for mu_ in (1e-4, 5e-3, 0.05):
                args = (depth, K, n, mu_, grid)
                np.testing.assert_allclose(
                    f["etf_energy"](*args), dl.etf_energy(grid, K, n, mu_, depth), rtol=1e-12
                )
                np.testing.assert_allclose(
                    f["orthoplex_energy"](*args),
                    dl.orthoplex_energy(grid, K, n, mu_, depth),
                    rtol=1e-12,
                )
                for name, best in (
                    ("etf_energy", dl.etf_best),
                    ("orthoplex_energy", dl.orthoplex_best),
                ):
                    a, value = best(K, n, mu_, depth)
                    assert value == pytest.approx(float(f[name](depth, K, n, mu_, a)), rel=1e-13)
                    assert value <= f[name](*args).min() + 1e-13  # global on the grid
                    if a > 0:  # interior: stationary
                        slope = f[name + "_da"](depth, K, n, mu_, a)
                        assert abs(slope) < 1e-6 * max(1.0, value)


@pytest.mark.parametrize("K", [4, 6, 8])
def test_ce_energies_are_those_of_the_package_logits(f, K):
    """E(a) = mean CE of the logit columns + (M+1)/2 mu sum sigma_i(Zbar sqrt(n))^{2/(M+1)}."""
    n, mu_, a = 5, 0.003, 2.7
    for logits, name in (
        (dl.etf_logits(K, a), "etf_energy"),
        (dl.orthoplex_logits(K, a), "orthoplex_energy"),
    ):
        shifted = logits - logits.max(axis=0)
        ce = np.mean(np.log(np.exp(shifted).sum(axis=0)) - np.diag(shifted))
        sv = np.linalg.svd(logits * np.sqrt(n), compute_uv=False)
        expect_sv = (
            [a * np.sqrt(n)] * (K - 1) if name == "etf_energy" else [2 * a * np.sqrt(n)] * (K // 2)
        )
        np.testing.assert_allclose(sv[: len(expect_sv)], expect_sv, rtol=1e-13)
        np.testing.assert_allclose(sv[len(expect_sv) :], 0, atol=1e-13)
        for depth in DEPTHS:
            penalty = (depth + 1) / 2 * mu_ * np.sum(sv[: len(expect_sv)] ** (2 / (depth + 1)))
            assert float(f[name](depth, K, n, mu_, a)) == pytest.approx(ce + penalty, rel=1e-13)


def test_m1_etf_minimum_is_the_plain_ce_minimum(f):
    branches = set()
    for K in (2, 4, 10):
        for n in (1, 5, 100):
            for lw, lh in ((1e-4, 3e-4), (5e-3, 1e-3), (0.02, 0.05), (0.1, 0.2)):
                mu_ = float(np.sqrt(lw * lh))
                branches.add(bool(cf.threshold(K, n, lw, lh) < 1))  # c < 1: margin > 0
                plain = float(cf.ce_min_loss(K, n, lw, lh))
                # E_ETF is convex for M = 1: a bounded scalar search finds its minimum
                energy = lambda a, K=K, n=n, mu_=mu_: float(f["etf_energy"](1, K, n, mu_, a))
                best = scipy.optimize.minimize_scalar(
                    energy, bounds=(0.0, 60.0), method="bounded", options={"xatol": 1e-12}
                )
                assert min(best.fun, energy(0.0)) == pytest.approx(plain, rel=1e-10)
                assert dl.etf_best(K, n, mu_, 1)[1] == pytest.approx(plain, rel=1e-12)
    assert branches == {True, False}
