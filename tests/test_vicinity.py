"""Perturbed-vicinity UFM (Tirer, Huang, Niles-Weed 2023): the solver, the central path and the
linear response against theory (the paper and derivations/vicinity.py) and independent numpy
computations.

Reference values are computed here from the closed forms (collapsed minimizer, W*(H), grad L:
derivations/vicinity.py steps 1-3; the trace-ratio NC1: the paper's Eq. 3), never copied from
the code under test. The derivation-level checks
(sympy, Schur complement vs the dense Hessian, Thm 4.2) live in test_vicinity_derivation.py.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm.models import vicinity as vc
from ufm.models.vicinity import central_path as cp
from ufm.models.vicinity import linear_response as lr

K, n, d = 4, 5, 6  # the worked example of derivations/vicinity.py; most tests share these shapes
N = K * n
LW, LH = 0.05, 0.01  # c = 0.2, rho = 0.8


# --- independent references ------------------------------------------------------------------
def labels_of(K, n):
    return np.repeat(np.arange(K), n)


def one_hot(K, n):
    return np.eye(K)[:, labels_of(K, n)]


def c_of(K, n, lW, lH):
    return K * np.sqrt(n * lW * lH)


def collapsed(K, n, d, lW, lH, seed=0):
    """The plain MSE UFM minimizer (derivations/vicinity.py step 3) with a random rotation R
    (d x K, R^T R = I): H* = sqrt(rho) R (x) 1_n^T, W* = sqrt(n lH / lW) sqrt(rho) R^T."""
    c = c_of(K, n, lW, lH)
    assert c < 1 and d >= K
    rho = (1 - c) * np.sqrt(lW / (n * lH))
    R, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, K)))
    H = np.sqrt(rho) * R[:, labels_of(K, n)]
    W = np.sqrt(n * lH / lW) * np.sqrt(rho) * R.T
    return H, W, R


def w_star(H, K, n, lW):
    """W*(H) = Y H^T (H H^T + N lW I)^{-1} (derivations/vicinity.py step 1)."""
    A = H @ H.T + K * n * lW * np.eye(H.shape[0])
    return np.linalg.solve(A, H @ one_hot(K, n).T).T


def grad_L(H, K, n, lW, lH):
    """Envelope gradient of the reduced loss: W*^T (W* H - Y)/N + lH H."""
    W = w_star(H, K, n, lW)
    return W.T @ (W @ H - one_hot(K, n)) / (K * n) + lH * H


def trace_nc1(H, K, n):
    """Tr Sigma_W / Tr Sigma_B with divisors 1/N and 1/K (the paper's Eq. 3)."""
    H = np.asarray(H)
    means = H.reshape(H.shape[0], K, n).mean(axis=2)
    within = np.sum((H - means[:, labels_of(K, n)]) ** 2) / (K * n)
    between = np.sum((means - H.mean(axis=1, keepdims=True)) ** 2) / K
    return within / between


def unit(shape, seed):
    E = np.random.default_rng(seed).standard_normal(shape)
    return E / np.linalg.norm(E)


def noisy(K, n, d, lW, lH, noise, seed, base_seed=0):
    """H* + noise ||H*|| E with a random unit E."""
    H, _, _ = collapsed(K, n, d, lW, lH, base_seed)
    return H + noise * np.linalg.norm(H) * unit(H.shape, seed)


def within_class(E, K, n):
    """E minus its class means: zero mean within every class."""
    means = E.reshape(E.shape[0], K, n).mean(axis=2)
    return E - means[:, labels_of(K, n)]


def vicinity(H0, lW=LW, lH=LH, beta=5.0, K=K, **kw):
    return ufm.make("vicinity", H0=H0, K=K, lambda_W=lW, lambda_H=lH, beta=beta, **kw)


def relative(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


# backward_step builds a new closure per call (a fresh compile each time); under filter_jit
# the problem is an argument and problems of the same shapes share one compile.
backward_step = eqx.filter_jit(cp.backward_step)


# --- 1. closed-form partial minimizers and the reduced gradient ---------------------------
def test_optimal_features_minimize_over_H():
    problem = vicinity(noisy(K, n, d, LW, LH, 0.5, seed=3))
    W = jnp.asarray(np.random.default_rng(4).standard_normal((K, d)))
    H = problem.optimal_features({"W": W})
    grad = jax.grad(problem.loss)({"W": W, "H": H})["H"]
    # the H-gradient of the full objective vanishes; scale: the beta term's gradient at H0
    scale = float(problem.beta) * float(jnp.linalg.norm(H - problem.H0))
    assert float(jnp.linalg.norm(grad)) < 1e-12 * max(scale, 1.0)
    # a strictly convex quadratic in H: any other H is worse
    other = H + 1e-3 * jnp.asarray(unit((d, N), 5))
    assert float(problem.loss({"W": W, "H": other})) > float(problem.loss({"W": W, "H": H}))


def test_optimal_classifier_minimizes_beta_free_loss_over_W():
    problem = vicinity(noisy(K, n, d, LW, LH, 0.5, seed=3))
    H = jnp.asarray(np.random.default_rng(6).standard_normal((d, N)))
    W = problem.optimal_classifier(H)
    np.testing.assert_allclose(np.asarray(W), w_star(np.asarray(H), K, n, LW), rtol=1e-12)
    grad_free = jax.grad(problem.beta_free_loss)({"W": W, "H": H})["W"]
    grad_full = jax.grad(problem.loss)({"W": W, "H": H})["W"]  # no beta term in W
    assert float(jnp.linalg.norm(grad_free)) < 1e-13
    assert float(jnp.linalg.norm(grad_full)) < 1e-13


@pytest.mark.parametrize("seed", [0, 1])
def test_reduced_gradient_is_gradient_of_reduced_loss(seed):
    problem = vicinity(noisy(K, n, d, LW, LH, 1.0, seed=seed))
    H = jnp.asarray(np.random.default_rng(10 + seed).standard_normal((d, N)))
    by_autodiff = jax.grad(problem.reduced_loss)(H)
    np.testing.assert_allclose(
        np.asarray(problem.reduced_gradient(H)), np.asarray(by_autodiff), rtol=1e-10, atol=1e-14
    )
    np.testing.assert_allclose(
        np.asarray(problem.reduced_gradient(H)), grad_L(np.asarray(H), K, n, LW, LH), rtol=1e-10
    )
    # L(H) = min_W f_0(W, H): W*(H) beats nearby classifiers
    W = problem.optimal_classifier(H)
    nearby = W + 1e-4 * jnp.asarray(unit((K, d), seed))
    assert float(problem.beta_free_loss({"W": nearby, "H": H})) > float(problem.reduced_loss(H))


# --- 2. Cor 2.2: H0 a collapsed minimizer is a fixed point for every beta --------------------
COR22_CASES = [
    pytest.param(4, 5, 6, 0.05, 0.01, 5.0, id="notes-example"),
    pytest.param(4, 5, 6, 0.05, 0.01, 0.05, id="beta-small"),
    pytest.param(4, 5, 6, 0.02, 0.04, 200.0, id="beta-large"),
    pytest.param(3, 4, 3, 0.03, 0.02, 1.0, id="d-equals-K"),
    pytest.param(2, 10, 5, 0.01, 0.1, 2.0, id="K2", marks=pytest.mark.slow),  # new shapes: ~5 s
]


@pytest.mark.parametrize("K_, n_, d_, lW, lH, beta", COR22_CASES)
def test_cor_2_2_collapsed_H0_is_the_minimizer(K_, n_, d_, lW, lH, beta):
    H_star, W_star, _ = collapsed(K_, n_, d_, lW, lH, seed=K_ + d_)
    problem = vicinity(H_star, lW, lH, beta, K=K_)
    assert (problem.K, problem.counts, problem.d) == (K_, (n_,) * K_, d_)
    theory = ufm.theory(problem)
    assert theory.applicable and "Cor 2.2" in theory.reason
    sol = ufm.solve(problem)
    assert sol.converged, sol.status
    report = ufm.check(problem, sol)
    assert report.verdict == "agrees", report.reason
    H, W = np.asarray(sol.params["H"]), np.asarray(sol.params["W"])
    assert relative(H, H_star) < 1e-8
    assert relative(W, w_star(H_star, K_, n_, lW)) < 1e-8
    assert relative(W, W_star) < 1e-8  # W*(H*) is the plain UFM's classifier
    c = c_of(K_, n_, lW, lH)
    assert float(sol.loss) == pytest.approx(c - c**2 / 2, rel=1e-10)
    assert theory.loss == pytest.approx(c - c**2 / 2, rel=1e-12)


def test_cor_2_2_with_generated_H0():
    problem = ufm.make("vicinity", K=K, n=n, d=d, lambda_W=LW, lambda_H=LH, beta=5.0, noise=0.0)
    H0 = np.asarray(problem.H0)
    # the generated H0 is an orthogonal-frame minimizer of the plain UFM
    means = H0.reshape(d, K, n).mean(axis=2)
    rho = (1 - c_of(K, n, LW, LH)) * np.sqrt(LW / (n * LH))
    np.testing.assert_allclose(means.T @ means, rho * np.eye(K), atol=1e-13)
    assert trace_nc1(H0, K, n) == pytest.approx(0.0, abs=1e-25)
    sol = ufm.solve(problem)
    report = ufm.check(problem, sol)
    assert report.verdict == "agrees", report.reason
    assert relative(sol.params["H"], H0) < 1e-8
    assert float(sol.loss) == pytest.approx(0.2 - 0.2**2 / 2, rel=1e-10)


# --- 3. H0 = 0: the plain MSE UFM with lambda_H + beta ----------------------------------------
@pytest.mark.parametrize("beta", [0.002, 0.01, 0.1, 0.5])
def test_zero_H0_is_plain_ufm_with_lambda_H_plus_beta(beta):
    problem = vicinity(np.zeros((d, N)), beta=beta)
    c = c_of(K, n, LW, LH + beta)
    expected = c - c**2 / 2 if c < 1 else 0.5
    theory = ufm.theory(problem)
    assert theory.loss == pytest.approx(expected, rel=1e-12)
    assert theory.regime == ("collapsed" if c < 1 else "zero")
    sol = ufm.solve(problem)
    assert sol.converged, sol.status
    assert float(sol.loss) == pytest.approx(expected, rel=1e-9)
    H = np.asarray(sol.params["H"])
    if c < 1:  # collapsed, orthogonal frame of scale rho(lambda_H + beta)
        rho = (1 - c) * np.sqrt(LW / (n * (LH + beta)))
        means = H.reshape(d, K, n).mean(axis=2)
        np.testing.assert_allclose(means.T @ means, rho * np.eye(K), atol=1e-8)
        assert trace_nc1(H, K, n) < 1e-14
    else:
        assert np.linalg.norm(H) < 1e-6


@pytest.mark.parametrize(
    "beta",
    [
        pytest.param(0.01, id="collapsed"),
        pytest.param(0.5, id="zero-branch"),
    ],
)
def test_zero_H0_check_agrees(beta):
    """With H0 = 0 every rotation of the collapsed minimizer is a global minimizer."""
    problem = vicinity(np.zeros((d, N)), beta=beta)
    sol = ufm.solve(problem)
    assert sol.converged
    assert float(sol.loss) == pytest.approx(ufm.theory(problem).loss, rel=1e-9)
    # a rotated copy of the solution has the same loss: H is not determined
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((d, d)))
    rotated = {"W": sol.params["W"] @ jnp.asarray(Q.T), "H": jnp.asarray(Q) @ sol.params["H"]}
    assert float(problem.loss(rotated)) == pytest.approx(float(sol.loss), rel=1e-12)
    report = ufm.check(problem, sol)
    assert report.verdict == "agrees", report.reason


# --- 4. noisy H0: no closed form; the minimizer is one backward-Euler step --------------------
@pytest.mark.parametrize("noise, seed, beta", [(0.5, 1, 5.0), (2.0, 2, 0.3)])
def test_noisy_H0_minimizer_is_backward_euler_step(noise, seed, beta):
    H0 = noisy(K, n, d, LW, LH, noise, seed)
    problem = vicinity(H0, beta=beta)
    theory = ufm.theory(problem)
    assert theory.regime == "not_applicable"
    assert "not a collapsed minimizer" in theory.reason
    sol = ufm.solve(problem)
    assert sol.converged, sol.status
    report = ufm.check(problem, sol)
    assert report.verdict == "inconclusive" and "not applicable" in report.reason
    H, W = np.asarray(sol.params["H"]), np.asarray(sol.params["W"])
    # H = H0 - grad L(H) / beta, with grad L computed here
    residual = H - H0 + grad_L(H, K, n, LW, LH) / beta
    assert np.linalg.norm(residual) < 1e-8 * np.linalg.norm(H0)
    assert relative(W, w_star(H, K, n, LW)) < 1e-8
    # ... and it is the root found by Newton's method
    assert relative(H, backward_step(problem)) < 1e-8
    # and it beats the starting point H0 (with W*(H0)) on the full objective
    start = {"W": jnp.asarray(w_star(H0, K, n, LW)), "H": jnp.asarray(H0)}
    assert float(sol.loss) < float(problem.loss(start))


# --- 5. the flow vs the implicit step: O(beta^-2) -------------------------------------------
def test_flow_and_explicit_step_match_implicit_step_to_second_order():
    H0 = noisy(K, n, d, LW, LH, 0.5, seed=1)
    betas = (2.0, 20.0, 200.0)
    flow_err, explicit_err = [], []
    for beta in betas:
        problem = vicinity(H0, beta=beta)
        sol = ufm.solve(problem)
        assert sol.converged, sol.status
        implicit = np.asarray(sol.params["H"])
        path = cp.flow(problem, jnp.asarray([0.0, 1.0 / beta]))
        np.testing.assert_allclose(np.asarray(path.H[0]), H0, atol=1e-15)
        flow_err.append(np.linalg.norm(np.asarray(path.H[-1]) - implicit))
        explicit = H0 - grad_L(H0, K, n, LW, LH) / beta
        np.testing.assert_allclose(np.asarray(lr.explicit_step(problem)), explicit, atol=1e-13)
        explicit_err.append(np.linalg.norm(explicit - implicit))
    for errors in (flow_err, explicit_err):
        ratios = [errors[i] / errors[i + 1] for i in range(len(errors) - 1)]
        assert all(80 < r < 120 for r in ratios), ratios
    # leading terms: implicit - H0 = -h g + h^2 J g, flow = -h g + h^2/2 J g, explicit = -h g
    assert explicit_err[-1] / flow_err[-1] == pytest.approx(2.0, rel=2e-2)


# --- 6. Theorem 3.1 along the flow --------------------------------------------------------------
MONOTONE_CASES = [
    pytest.param(0.5, 0, LW, LH, id="noise0.5"),
    pytest.param(2.0, 1, LW, LH, id="noise2"),
    pytest.param(10.0, 2, LW, LH, id="noise10"),
    pytest.param(2.0, 3, 0.2, 0.002, id="noise2-lW-large"),
    pytest.param(0.5, 4, 0.01, 0.05, id="noise0.5-lH-large"),
]


@pytest.mark.parametrize("noise, seed, lW, lH", MONOTONE_CASES)
def test_theorem_3_1_monotonicity(noise, seed, lW, lH):
    problem = vicinity(noisy(K, n, d, lW, lH, noise, seed), lW=lW, lH=lH)
    taus = jnp.linspace(0.0, 40.0, 81)
    path = cp.flow(problem, taus)
    checks = cp.monotonicity(path)
    assert all(v["holds"] for v in checks.values()), checks
    # the recorded series, recomputed here from the recorded H
    H = np.asarray(path.H)
    nc1 = np.array([trace_nc1(h, K, n) for h in H])
    np.testing.assert_allclose(np.asarray(path.nc1), nc1, rtol=1e-10)
    within = np.array(
        [np.sum((h - h.reshape(d, K, n).mean(2)[:, labels_of(K, n)]) ** 2) for h in H]
    )
    grow = np.exp(2 * lH * np.asarray(taus))
    np.testing.assert_allclose(np.asarray(path.scaled_within), grow * within / N, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(path.scaled_between), grow * within / N / nc1, rtol=1e-10)
    # strictly: NC1 falls by a visible amount over the horizon, and every step goes down
    assert np.all(np.diff(nc1) < 0)
    assert nc1[-1] < 0.95 * nc1[0]
    # the flow is the gradient flow of L: L decreases
    L = np.array([float(problem.reduced_loss(jnp.asarray(h))) for h in H[::10]])
    assert np.all(np.diff(L) < 0)


def test_monotonicity_detects_violations():
    taus = jnp.asarray([0.0, 1.0, 2.0, 3.0])
    H = jnp.zeros((4, 2, 4))
    down = jnp.asarray([4.0, 3.0, 2.0, 1.0])
    up_step = jnp.asarray([4.0, 3.0, 3.3, 1.0])  # one increase, by 10%
    good = cp.FlowPath(taus, down, down, down[::-1], H, jnp.asarray(3))
    assert all(v["holds"] for v in cp.monotonicity(good).values())
    bad = cp.FlowPath(taus, up_step, down, down[::-1], H, jnp.asarray(3))
    result = cp.monotonicity(bad)
    assert not result["nc1_decreasing"]["holds"]
    assert result["nc1_decreasing"]["worst_violation"] == pytest.approx(0.1, rel=1e-12)
    assert result["scaled_within_decreasing"]["holds"]
    assert result["scaled_between_increasing"]["holds"]
    # between must increase: a decreasing series fails, and a flat one is no violation
    bad_between = cp.FlowPath(taus, down, down, down, H, jnp.asarray(3))
    result = cp.monotonicity(bad_between)
    assert not result["scaled_between_increasing"]["holds"]
    # largest relative fall: 2 -> 1
    assert result["scaled_between_increasing"]["worst_violation"] == pytest.approx(0.5)
    flat = jnp.ones(4)
    result = cp.monotonicity(cp.FlowPath(taus, flat, flat, flat, H, jnp.asarray(3)))
    assert all(v["holds"] and v["worst_violation"] == 0.0 for v in result.values())


# --- 7. first-order accuracy of the linear response ------------------------------------------
def test_linear_response_is_first_order_accurate():
    beta = 0.5
    H_star, _, _ = collapsed(K, n, d, LW, LH, seed=7)
    base_problem = vicinity(H_star, beta=beta)
    F, base = lr.at_base(base_problem)
    np.testing.assert_allclose(np.asarray(base), H_star, atol=1e-13)
    E = unit((d, N), 8)
    errors, moves = [], []
    for s in (1e-2, 1e-3, 1e-4):
        eps = s * np.linalg.norm(H_star)
        problem = vicinity(H_star + eps * E, beta=beta)
        sol = ufm.solve(problem)
        assert sol.converged, sol.status
        moved = np.asarray(sol.params["H"]) - H_star
        predicted = np.asarray(F(jnp.asarray(eps * E)))
        errors.append(np.linalg.norm(moved - predicted))
        moves.append(np.linalg.norm(moved))
        # F is not the identity here: it is not a trivial prediction
        assert np.linalg.norm(predicted - eps * E) > 0.05 * eps
    ratios = [errors[i] / errors[i + 1] for i in range(2)]
    assert all(50 < r < 200 for r in ratios), ratios
    assert errors[-1] < 2e-5 * moves[-1]  # relative error O(eps) = O(1e-4)


def test_eq5_and_exact_response_differ_at_second_order():
    H_star, _, _ = collapsed(K, n, d, LW, LH, seed=7)
    E = jnp.asarray(unit((d, N), 9))
    gaps, firsts = [], []
    for beta in (10.0, 100.0, 1000.0):
        problem = vicinity(H_star, beta=beta)
        exact, _ = lr.at_base(problem, "exact")
        eq5, _ = lr.at_base(problem, "eq5")
        gaps.append(float(jnp.linalg.norm(exact(E) - eq5(E))))
        firsts.append(float(jnp.linalg.norm(eq5(E) - E)))
    gap_ratios = [gaps[i] / gaps[i + 1] for i in range(2)]
    first_ratios = [firsts[i] / firsts[i + 1] for i in range(2)]
    assert all(80 < r < 120 for r in gap_ratios), gap_ratios
    assert all(r == pytest.approx(10.0, rel=1e-10) for r in first_ratios), first_ratios  # O(1/b)
    assert gaps[-1] < 1e-3 * firsts[-1]


# --- 8. within-class noise: NC1 shrink factors -----------------------------------------------
@pytest.mark.parametrize(
    "mix, beta",
    [
        pytest.param((1.0, 1.0), 0.05, id="isotropic"),
        pytest.param((1.0, 0.0), 0.05, id="in-span"),
        pytest.param((0.0, 1.0), 0.05, id="orthogonal"),
        pytest.param((3.0, 1.0), 0.2, id="mostly-in-span"),
    ],
)
def test_within_class_noise_nc1_ratio(mix, beta):
    H_star, _, R = collapsed(K, n, d, LW, LH, seed=11)
    E = within_class(unit((d, N), 12), K, n)
    P = R @ R.T  # projector on the span of the class means
    E = mix[0] * P @ E + mix[1] * (E - P @ E)
    E /= np.linalg.norm(E)
    np.testing.assert_allclose(E.reshape(d, K, n).mean(axis=2), 0.0, atol=1e-15)
    e_par = np.linalg.norm(P @ E) ** 2
    H0 = H_star + 1e-4 * np.linalg.norm(H_star) * E
    problem = vicinity(H0, beta=beta)
    sol = ufm.solve(problem)
    assert sol.converged, sol.status
    ratio = trace_nc1(sol.params["H"], K, n) / trace_nc1(H0, K, n)
    # gamma's of derivations/vicinity.py step 6, canonical units
    g_par = beta / (beta + np.sqrt(n * LH / LW) / N)
    g_perp = beta / (beta + LH)
    by_hand = g_par**2 * e_par + g_perp**2 * (1 - e_par)
    assert vc.nc1_ratio(K, n, LW, LH, beta, e_par) == pytest.approx(by_hand, rel=1e-12)
    assert ratio == pytest.approx(by_hand, rel=5e-4)
    assert ratio < 1  # Cor 3.2: closer to collapse than H0


# --- 9. regularizers along nc1_curve -------------------------------------------------------------
@pytest.fixture(scope="module")
def curve_problem():
    return ufm.make("vicinity", K=K, n=n, d=d, lambda_W=LW, lambda_H=LH, beta=0.2, noise=0.01)


@pytest.mark.parametrize(
    "name, values, direction",
    [
        ("lambda_H", (0.005, 0.01, 0.02, 0.04), -1),
        ("lambda_W", (0.02, 0.05, 0.1, 0.2), +1),
        ("beta", (0.02, 0.1, 0.5, 2.5), +1),
    ],
)
def test_nc1_curve_regularizers(curve_problem, name, values, direction):
    curve = lr.nc1_curve(curve_problem, name, values)
    assert curve["parameter"] == name
    np.testing.assert_array_equal(curve["values"], np.asarray(values, dtype=float))
    assert np.all(curve["converged"])
    ratio = curve["nc1"] / curve["nc1_H0"]
    assert np.all(ratio < 1)
    assert np.all(direction * np.diff(ratio) > 0), ratio
    # the linear response predicts it (noise 1%: first order, observed ~1e-4)
    np.testing.assert_allclose(curve["nc1"], curve["linear_response"], rtol=1e-3)
    # and the hand formula with the noise's within-class split agrees on the trend
    hand = []
    for value in values:
        p = curve_problem.with_parameter(name, float(value))
        base, _ = p.collapsed_base()
        H0 = np.asarray(p.H0)
        means = base.reshape(d, K, n).mean(axis=2)
        Q, _ = np.linalg.qr(means)
        E = within_class(H0 - base, K, n)
        e_par = np.linalg.norm(Q.T @ E) ** 2 / np.linalg.norm(E) ** 2
        lW, lH, beta = (float(p.lambda_W), float(p.lambda_H), float(p.beta))
        g_par = beta / (beta + np.sqrt(n * lH / lW) / N)
        g_perp = beta / (beta + lH)
        hand.append(g_par**2 * e_par + g_perp**2 * (1 - e_par))
    np.testing.assert_allclose(ratio, hand, rtol=1e-2)
    assert np.all(direction * np.diff(hand) > 0)


# --- 10. H0 input handling -----------------------------------------------------------------------
def test_H0_from_npy(tmp_path):
    H0 = noisy(K, n, d, LW, LH, 0.3, seed=1)
    path = tmp_path / "h0.npy"
    np.save(path, H0)
    problem = ufm.make("vicinity", H0=str(path), K=K)
    assert (problem.K, problem.counts, problem.d) == (K, (n,) * K, d)
    np.testing.assert_array_equal(np.asarray(problem.H0), H0)
    assert problem.origin["H0"] == str(path)
    # a pathlib.Path works too; n can be given explicitly
    same = ufm.make("vicinity", H0=path, K=K, n=n, d=d)
    np.testing.assert_array_equal(np.asarray(same.H0), H0)


def test_H0_from_npz_key(tmp_path):
    H0 = noisy(3, 4, 5, LW, LH, 0.3, seed=2)
    path = tmp_path / "h0.npz"
    np.savez(path, H0=H0)
    problem = ufm.make("vicinity", H0=str(path), K=3)
    assert (problem.K, problem.counts, problem.d) == (3, (4, 4, 4), 5)
    np.testing.assert_array_equal(np.asarray(problem.H0), H0)


def test_H0_from_npz_features_and_shuffled_labels(tmp_path):
    classes = np.array([3, 7, 9, 12])
    rng = np.random.default_rng(5)
    features = rng.standard_normal((N, d))  # N x d
    labels = np.repeat(classes, n)
    rng.shuffle(labels)
    path = tmp_path / "feats.npz"
    np.savez(path, features=features, labels=labels)
    problem = ufm.make("vicinity", H0=str(path))
    assert (problem.K, problem.counts, problem.d, problem.N) == (K, (n,) * K, d, N)
    expected = np.concatenate([features[labels == c] for c in classes]).T  # stable, by class
    np.testing.assert_array_equal(np.asarray(problem.H0), expected)
    np.testing.assert_array_equal(problem.labels, labels_of(K, n))
    assert problem.origin == {"H0": str(path), "labels": tuple(int(c) for c in classes)}
    assert problem.hyperparameters()["H0"] == str(path)  # make(**hyperparameters()) rebuilds
    rebuilt = ufm.make("vicinity", **problem.hyperparameters())
    np.testing.assert_array_equal(np.asarray(rebuilt.H0), expected)
    # explicit K and d that agree are accepted
    again = ufm.make("vicinity", H0=str(path), K=K, d=d, n=n)
    np.testing.assert_array_equal(np.asarray(again.H0), expected)


def test_H0_labels_give_imbalanced_counts(tmp_path):
    labels = np.array([1, 0, 2, 2, 0, 1, 2, 0, 0])
    features = np.arange(9.0 * 2).reshape(9, 2)
    path = tmp_path / "imb.npz"
    np.savez(path, features=features, labels=labels)
    problem = ufm.make("vicinity", H0=path)
    assert problem.counts == (4, 2, 3)
    np.testing.assert_array_equal(np.asarray(problem.H0)[:, :4], features[[1, 4, 7, 8]].T)
    theory = ufm.theory(problem)
    assert theory.regime == "not_applicable" and "imbalanced" in theory.reason


def _npz(tmp_path, name, **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def test_H0_errors(tmp_path):
    good = np.ones((d, N))
    cases = [
        (dict(H0=good, K=K, d=5), r"H0 has shape \(6, 20\); expected d=5"),
        (dict(H0=np.ones((N, d)), K=2, d=d), r"expected d=6 rows \(transposed\?"),
        (dict(H0=np.ones(N), K=K), "H0 must be a real 2-D array"),
        (dict(H0=np.ones((d, 21)), K=K), "H0 has N=21 columns, not a multiple of K=4"),
        (dict(H0=good, K=K, n=4), "H0 has N=20 columns, but n=4"),
        (dict(H0=good), "K is needed"),
        (dict(H0=good, K=K, noise=0.1), "noise=0.1 only applies to a generated H0"),
        (dict(H0=good, K=K, beta=-1.0), "beta must be a finite number > 0"),
        (dict(H0=good, K=K, beta=0.0), "beta must be a finite number > 0"),
        (dict(H0=good, K=K, lambda_H=float("nan")), "lambda_H must be"),
        (dict(H0=np.full((d, N), "a"), K=K), "H0 must be a real 2-D array"),
        (dict(H0=str(tmp_path / "missing.npy"), K=K), "H0: file .*missing.npy.* does not exist"),
        (dict(H0=_npz(tmp_path, "wrong.npz", X=good), K=K), r"H0: .*\['X'\].*expected 'H0'"),
        (
            dict(H0=_npz(tmp_path, "lab.npz", features=good.T, labels=labels_of(3, 7)[:N]), K=4),
            "3 classes but K=4",
        ),
        (
            dict(H0=_npz(tmp_path, "short.npz", features=good.T, labels=np.arange(5))),
            "H0: labels must have one entry per column",
        ),
        (
            dict(H0=_npz(tmp_path, "float.npz", features=good.T, labels=np.zeros(N))),
            "H0: labels must be integers",
        ),
        (
            dict(H0=_npz(tmp_path, "cnt.npz", features=good.T, labels=labels_of(K, n)), n=4),
            "class counts",
        ),
        (dict(units="imperial"), "units must be one of"),
        (dict(K=5, d=3), "d=3 < K=5"),
    ]
    bad_file = tmp_path / "junk.npy"
    bad_file.write_text("not numpy")
    cases.append((dict(H0=str(bad_file), K=K), "H0: cannot read"))
    for hyper, message in cases:
        with pytest.raises(ValueError, match=message):
            ufm.make("vicinity", **hyper)


@pytest.mark.parametrize("column", [0, 7, 19])
def test_H0_nan_names_the_column(column):
    H0 = np.ones((d, N))
    H0[2, column] = np.nan
    with pytest.raises(ValueError, match=f"H0 has a non-finite entry .* in column {column}$"):
        vicinity(H0)
    H0[2, column] = np.inf
    with pytest.raises(ValueError, match=f"column {column}$"):
        vicinity(H0)


def test_paper_units():
    lWT, lHT, betaT = 0.2, 0.2, 100.0
    problem = ufm.make(
        "vicinity", K=K, n=n, d=d, lambda_W=lWT, lambda_H=lHT, beta=betaT, units="paper"
    )
    assert float(problem.lambda_W) == pytest.approx(lWT / K, rel=1e-15)
    assert float(problem.lambda_H) == pytest.approx(lHT / N, rel=1e-15)
    assert float(problem.beta) == pytest.approx(betaT / N, rel=1e-15)
    # the worked example of derivations/vicinity.py: canonical 0.05, 0.01, 5
    assert (float(problem.lambda_W), float(problem.lambda_H), float(problem.beta)) == (
        pytest.approx(0.05),
        pytest.approx(0.01),
        pytest.approx(5.0),
    )
    assert vc.from_paper(K, n, lWT, lHT, betaT) == pytest.approx(
        {"lambda_W": 0.05, "lambda_H": 0.01, "beta": 5.0}
    )
    # the generated H0 uses the converted lambdas: it is the canonical problem's H0
    canonical = ufm.make("vicinity", K=K, n=n, d=d, lambda_W=0.05, lambda_H=0.01, beta=5.0)
    np.testing.assert_allclose(np.asarray(problem.H0), np.asarray(canonical.H0), atol=1e-14)
    # the same loss function (f is the same in both conventions)
    params = {"W": jnp.ones((K, d)), "H": jnp.ones((d, N))}
    assert float(problem.loss(params)) == pytest.approx(float(canonical.loss(params)), rel=1e-13)
    with pytest.raises(ValueError, match="balanced"):
        ufm.make("vicinity", K=2, n=[3, 4], d=3, units="paper")


def test_loss_matches_definition():
    H0 = noisy(K, n, d, LW, LH, 0.7, seed=1)
    problem = vicinity(H0, beta=1.5)
    rng = np.random.default_rng(0)
    W, H = rng.standard_normal((K, d)), rng.standard_normal((d, N))
    Y = one_hot(K, n)
    expected = (
        np.sum((W @ H - Y) ** 2) / (2 * N)
        + LW / 2 * np.sum(W**2)
        + LH / 2 * np.sum(H**2)
        + 1.5 / 2 * np.sum((H - H0) ** 2)
    )
    params = {"W": jnp.asarray(W), "H": jnp.asarray(H)}
    assert float(problem.loss(params)) == pytest.approx(expected, rel=1e-13)
    free = expected - 1.5 / 2 * np.sum((H - H0) ** 2)
    assert float(problem.beta_free_loss(params)) == pytest.approx(free, rel=1e-13)


def test_with_parameter():
    H0 = noisy(K, n, d, LW, LH, 0.3, seed=1)
    given = vicinity(H0)
    changed = given.with_parameter("lambda_H", 0.02)
    assert float(changed.lambda_H) == 0.02 and float(changed.lambda_W) == LW
    np.testing.assert_array_equal(np.asarray(changed.H0), H0)  # a given H0 is kept
    generated = ufm.make("vicinity", K=K, n=n, d=d, noise=0.1, noise_seed=3)
    moved = generated.with_parameter("lambda_W", 0.1)
    # regenerated for the new lambdas: same direction, scale sqrt(rho'/rho)
    rho = lambda lW, lH: (1 - c_of(K, n, lW, lH)) * np.sqrt(lW / (n * lH))
    scale = np.sqrt(rho(0.1, 0.01) / rho(0.05, 0.01))
    np.testing.assert_allclose(np.asarray(moved.H0), scale * np.asarray(generated.H0), rtol=1e-12)
    with pytest.raises(ValueError, match="name must be"):
        given.with_parameter("K", 3.0)
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        given.with_parameter("beta", -1.0)


def test_theory_not_applicable_when_d_below_K():
    problem = vicinity(np.ones((3, N)) + np.arange(N)[None, :].astype(float))
    theory = ufm.theory(problem)
    assert theory.regime == "not_applicable" and "d=3 < K=4" in theory.reason


# --- 11. extra_report --------------------------------------------------------------------------
def test_extra_report():
    H0 = noisy(K, n, d, LW, LH, 0.01, seed=2)
    beta = 0.5
    problem = vicinity(H0, beta=beta)
    sol = ufm.solve(problem)
    report = problem.extra_report(sol.params)["vicinity"]
    assert {"nc1_trace_H0", "nc1_trace", "first_order"} <= set(report)
    assert report["nc1_trace_H0"] == pytest.approx(trace_nc1(H0, K, n), rel=1e-12)
    assert report["nc1_trace"] == pytest.approx(trace_nc1(sol.params["H"], K, n), rel=1e-12)
    first = report["first_order"]
    assert set(first) == {"explicit_step", "linear_response"}
    explicit = H0 - grad_L(H0, K, n, LW, LH) / beta
    assert first["explicit_step"]["nc1_trace"] == pytest.approx(
        trace_nc1(explicit, K, n), rel=1e-10
    )
    # 1% noise: the linear response (first order in the distance) is accurate to ~1e-4
    assert first["linear_response"]["nc1_trace"] == pytest.approx(report["nc1_trace"], rel=1e-3)
    # distance to the nearest collapsed minimizer: rotation by orthogonal Procrustes
    U, _, Vt = np.linalg.svd(H0.reshape(d, K, n).mean(axis=2), full_matrices=False)
    rho = (1 - c_of(K, n, LW, LH)) * np.sqrt(LW / (n * LH))
    nearest = np.sqrt(rho) * (U @ Vt)[:, labels_of(K, n)]
    distance = relative(H0, nearest)
    assert first["linear_response"]["distance"] == pytest.approx(distance, rel=1e-10)
    assert 0.005 < distance <= 0.01  # at most the noise added to H*
    assert report["nc1_trace"] < report["nc1_trace_H0"]
    # past the threshold the collapsed base is zero: no linear response, explicit step only
    beyond = vicinity(H0, lW=0.3, lH=0.3, beta=beta)
    assert c_of(K, n, 0.3, 0.3) > 1
    beyond_report = beyond.extra_report({"W": jnp.zeros((K, d)), "H": jnp.asarray(H0)})
    beyond_report = beyond_report["vicinity"]
    assert set(beyond_report["first_order"]) == {"explicit_step"}
