"""Plain UFM: closed forms against the sympy derivation, its worked examples, the
closed-form minimizer against the loss, and the solver against all of them."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from helpers import IMB, SOLVER_CASES, plain

import ufm
from derivations import plain_ufm as dv
from ufm._theory import spectral_mse
from ufm.check import found_quantities, found_regime
from ufm.models import plain as cf

GRID = [
    (K, n, lw, lh)
    for K in (2, 4, 10)
    for n in (1, 5, 100)
    for lw, lh in ((1e-4, 3e-4), (5e-3, 1e-3), (0.02, 0.05), (0.1, 0.2), (0.3, 0.5))
]


@pytest.fixture(scope="module")
def derived():
    return dv.derive()


def lambdified(expr, *symbols):
    return sp.lambdify(symbols, expr, "numpy")


@pytest.mark.parametrize(
    "name, formula",
    [
        ("ce_margin", cf.ce_margin),
        ("ce_w_norm2", cf.ce_w_norm2),
        ("ce_h_norm2", cf.ce_h_norm2),
        ("mse_rho", cf.mse_rho),
        ("mse_w_norm2", cf.mse_w_norm2),
        ("ce_threshold", cf.threshold),
    ],
)
def test_balanced_formulas_match_derivation(derived, name, formula):
    f = lambdified(derived[name], dv.K, dv.n, dv.lam_W, dv.lam_H)
    for K, n, lw, lh in GRID:
        if cf.threshold(K, n, lw, lh) >= 1:
            continue  # interior-branch formulas
        np.testing.assert_allclose(formula(K, n, lw, lh), f(K, n, lw, lh), rtol=1e-13)


def test_min_losses_match_derivation_on_both_branches(derived):
    args = (dv.K, dv.n, dv.lam_W, dv.lam_H)
    ce_in, mse_in, mse_b_in = (
        lambdified(derived[k], *args)
        for k in ("ce_loss_collapsed", "mse_loss_collapsed", "mse_bias_loss_collapsed")
    )
    ce_0, mse_0, mse_b_0 = (
        lambdified(derived[k], *args)
        for k in ("ce_loss_zero", "mse_loss_zero", "mse_bias_loss_zero")
    )
    branches = {True: 0, False: 0}
    for K, n, lw, lh in GRID:
        inside = bool(cf.threshold(K, n, lw, lh) < 1)
        branches[inside] += 1
        expect = [
            f(K, n, lw, lh)
            for f in ((ce_in, mse_in, mse_b_in) if inside else (ce_0, mse_0, mse_b_0))
        ]
        got = [
            cf.ce_min_loss(K, n, lw, lh),
            cf.mse_min_loss(K, n, lw, lh, False),
            cf.mse_min_loss(K, n, lw, lh, True),
        ]
        np.testing.assert_allclose(got, expect, rtol=1e-13)
    assert branches[True] > 3 and branches[False] > 3  # the grid straddles c = 1


def test_gof_formulas_match_derivation(derived):
    args = (dv.n_k, dv.N, dv.lam_W, dv.lam_H)
    alive_loss = lambdified(derived["gof_class_loss_alive"], *args)
    dead_loss = lambdified(derived["gof_class_loss_dead"], *args)
    threshold = lambdified(derived["gof_alive_threshold"], *args)
    n = np.array(IMB, float)
    N = n.sum()
    for lam in (0.005, 0.013, 0.016, 0.05):
        alive = n > threshold(n, N, lam, lam)
        np.testing.assert_array_equal(cf.gof_alive(n, N, lam, lam), alive)
        expect = np.where(alive, alive_loss(n, N, lam, lam), dead_loss(n, N, lam, lam))
        np.testing.assert_allclose(cf.gof_class_loss(n, N, lam, lam), expect, rtol=1e-13)
        for name, formula in (
            ("gof_w_norm2", cf.gof_w_norm2),
            ("gof_hbar_norm2", cf.gof_hbar_norm2),
            ("gof_own_logit", cf.gof_own_logit),
        ):
            f = lambdified(derived[name], *args)
            np.testing.assert_allclose(
                formula(n, N, lam, lam)[alive], f(n, N, lam, lam)[alive], rtol=1e-13
            )


def test_worked_examples_of_the_notes():
    # the worked examples of derivations/plain_ufm.py (``_NOTES``): numbers computed
    # independently of the package, not read in a paper
    assert cf.ce_margin(4, 5, 0.01, 0.01) == pytest.approx(3.7310132, abs=1e-7)
    assert cf.ce_w_norm2(4, 5, 0.01, 0.01) == pytest.approx(6.2570994, abs=1e-7)
    assert cf.ce_h_norm2(4, 5, 0.01, 0.01) == pytest.approx(1.2514199, abs=1e-7)
    assert cf.ce_min_loss(4, 5, 0.01, 0.01) == pytest.approx(0.31972199, abs=1e-8)
    assert cf.mse_min_loss(4, 5, 0.05, 0.01, False) == pytest.approx(0.18, abs=1e-15)
    assert cf.mse_min_loss(4, 5, 0.05, 0.01, True) == pytest.approx(0.135, abs=1e-15)
    th = ufm.theory(ufm.make("plain", **plain("mse", bias=True, lambda_W=0.05, lambda_H=0.01)))
    P = np.eye(4) - 0.25
    np.testing.assert_allclose(th.quantities["W_gram"], 0.8 * P, atol=1e-14)
    np.testing.assert_allclose(th.quantities["Hbar_gram"], 0.8 * P, atol=1e-14)
    np.testing.assert_allclose(th.quantities["b"], 0.25, atol=1e-15)


@pytest.mark.parametrize("hyper", SOLVER_CASES)
def test_closed_form_minimizer_attains_predicted_loss(hyper):
    """The realized closed-form minimizer, plugged into the loss, gives theory.loss."""
    problem = ufm.make("plain", **hyper)
    th = ufm.theory(problem)
    assert th.applicable
    params = {k: jnp.asarray(v) for k, v in th.params.items()}
    assert float(problem.loss(params)) == pytest.approx(th.loss, rel=1e-12, abs=1e-15)
    # and it is stationary: the gradient of the full objective vanishes there
    grad = jax.grad(problem.loss)(params)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grad)) < 1e-10


def logit_gradient(problem, params):
    Z = problem.logits(params)
    Y = jax.nn.one_hot(problem.labels, problem.K, dtype=Z.dtype).T
    P = jax.nn.softmax(Z, axis=0) if problem.loss_name == "ce" else Z
    return (P - Y) / problem.N


@pytest.mark.parametrize("hyper", SOLVER_CASES)
def test_solver_reaches_closed_form(hyper):
    problem = ufm.make("plain", **hyper)
    sol = ufm.solve(problem)
    assert sol.converged, sol.status
    th = ufm.theory(problem)
    assert float(sol.loss) == pytest.approx(th.loss, rel=1e-9)
    report = ufm.check(problem, sol)
    assert report.verdict == "agrees", report.reason
    # exact NC1. Only where all class means differ: at W = H = 0 the scale-free NC1 is a
    # ratio of round-off, and coinciding dead-class means make the pinv blow up
    if th.regime == "collapsed":
        assert report.metrics["nc1"] == pytest.approx(0, abs=1e-12)
    # independent certificate of global optimality (standard: a stationary point of the factored
    # loss solves the convex problem of derivations/plain_ufm.py step 2 if this holds; step 9
    # uses it at Z = 0): ||grad_Z L||_op <= mu
    mu = np.sqrt(float(problem.lambda_W * problem.lambda_H))
    G = np.asarray(logit_gradient(problem, sol.params))
    assert np.linalg.norm(G, 2) <= mu * (1 + 1e-6)


@pytest.mark.parametrize(
    "hyper, regime, geometry",
    [
        (plain("ce", lambda_W=0.01, lambda_H=0.01), "collapsed", "simplex_etf"),
        (plain("ce", lambda_W=0.12, lambda_H=0.12), "zero", "zero"),
        (plain("mse", lambda_W=0.05, lambda_H=0.01), "collapsed", "orthogonal_frame"),
        (plain("mse", bias=True, lambda_W=0.05, lambda_H=0.01), "collapsed", "simplex_etf"),
        (
            plain("mse", n=IMB, lambda_W=0.005, lambda_H=0.005),
            "collapsed",
            "general_orthogonal_frame",
        ),
        (
            plain("mse", n=IMB, lambda_W=0.016, lambda_H=0.016),
            "minority_collapse",
            "general_orthogonal_frame",
        ),
        (
            plain("mse", n=IMB, bias=True, lambda_W=0.02, lambda_H=0.02),
            "minority_collapse",
            "general_frame",
        ),
    ],
)
def test_regime_and_geometry(hyper, regime, geometry):
    th = ufm.theory(ufm.make("plain", **hyper))
    assert (th.regime, th.geometry) == (regime, geometry)
    W, Hbar = th.quantities["W_gram"], th.quantities["Hbar_gram"]
    if geometry == "simplex_etf":
        assert ufm.geometry.gram_distance(W, ufm.geometry.centering(4)) < 1e-12
        assert ufm.geometry.gram_distance(Hbar, ufm.geometry.centering(4)) < 1e-12
    if geometry in ("orthogonal_frame", "general_orthogonal_frame"):
        np.testing.assert_allclose(W, np.diag(np.diag(W)), atol=1e-12)
        np.testing.assert_allclose(Hbar, np.diag(np.diag(Hbar)), atol=1e-12)
    if geometry == "general_orthogonal_frame":  # Dang et al.: closed-form norms per class
        n = np.array(IMB, float)
        lam = hyper["lambda_W"]
        np.testing.assert_allclose(np.diag(W), cf.gof_w_norm2(n, n.sum(), lam, lam), atol=1e-12)
        np.testing.assert_allclose(
            np.diag(Hbar), cf.gof_hbar_norm2(n, n.sum(), lam, lam), atol=1e-12
        )
        assert (regime == "minority_collapse") == bool(np.any(np.diag(W)[2:] == 0))


def test_not_applicable_is_inconclusive():
    for hyper, why in [
        (plain("ce", d=2, lambda_W=0.01, lambda_H=0.01), "d=2"),
        (plain("mse", bias=True, lambda_W=0.05, lambda_H=0.01, lambda_b=0.1), "regularized bias"),
    ]:
        problem = ufm.make("plain", **hyper)
        th = ufm.theory(problem)
        assert th.regime == "not_applicable" and th.loss is None and why in th.reason
        if why == "d=2":  # one solve shows the verdict; each case would compile its own shapes
            report = ufm.check(problem, ufm.solve(problem, max_steps=50))
            assert report.verdict == "inconclusive"


def test_imbalanced_ce_is_globally_solved_where_theory_is_silent():
    """No closed form, but the convex certificate still proves the solver's minimum global."""
    problem = ufm.make("plain", **plain("ce", n=IMB, bias=True, lambda_W=0.01, lambda_H=0.01))
    sol = ufm.solve(problem, restarts=2)
    assert sol.converged
    mu = 0.01
    G = np.asarray(logit_gradient(problem, sol.params))
    s = np.linalg.svd(G, compute_uv=False)
    assert s[0] <= mu * (1 + 1e-6)
    assert np.sum(s > mu * (1 - 1e-6)) >= 1  # active directions sit exactly at mu


def test_non_converged_run_is_reported_and_never_agrees():
    problem = ufm.make("plain", **plain("ce", lambda_W=0.01, lambda_H=0.01))
    sol = ufm.solve(problem, max_steps=3)
    assert not sol.converged and "max_steps" in sol.status
    assert float(sol.grad_norm) > 1e-10
    assert ufm.check(problem, sol).verdict == "inconclusive"
    with pytest.raises(RuntimeError, match="max_steps"):
        ufm.solve(problem, max_steps=3, throw=True)


def test_wrong_prediction_is_a_disagreement():
    """check must catch a solution that is off: a non-optimal point at a converged flag."""
    problem = ufm.make("plain", **plain("mse", lambda_W=0.05, lambda_H=0.01))
    sol = ufm.solve(problem)
    other = ufm.make("plain", **plain("mse", lambda_W=0.05, lambda_H=0.012))
    report = ufm.check(other, sol)  # minimizer of a neighbouring problem
    assert report.verdict == "disagrees" and "loss gap" in report.reason


def test_restarts_are_batched_and_best_is_kept():
    problem = ufm.make("plain", **plain("ce", lambda_W=0.01, lambda_H=0.01))
    sol = ufm.solve(problem, restarts=4, seed=3)
    losses = np.asarray(sol.restart_losses)
    assert losses.shape == (4,) and np.asarray(sol.restart_converged).all()
    assert float(sol.loss) == losses.min()
    assert sol.loss_spread < 1e-12  # benign landscape: every restart finds the global value
    assert sol.params["W"].shape == (4, 8) and sol.params["H"].shape == (8, 20)


def test_other_optax_methods_are_selectable():
    problem = ufm.make("plain", **plain("mse", lambda_W=0.05, lambda_H=0.01))
    sol = ufm.solve(problem, method="adam", learning_rate=1e-2, gtol=1e-6, max_steps=20_000)
    assert sol.converged and sol.method == "adam"
    assert float(sol.loss) == pytest.approx(0.18, rel=1e-8)  # gtol 1e-6: loss error ~ g^2


def test_second_opinion_optimistix_bfgs():
    optx = pytest.importorskip("optimistix")
    problem = ufm.make("plain", **plain("ce", bias=True, lambda_W=0.01, lambda_H=0.01))
    y0 = problem.init(jax.random.PRNGKey(1), jnp.asarray(1.0))
    out = optx.minimise(
        lambda y, _: problem.loss(y), optx.BFGS(rtol=1e-12, atol=1e-12), y0, max_steps=2000
    )
    assert float(problem.loss(out.value)) == pytest.approx(
        float(ufm.solve(problem).loss), rel=1e-10
    )


def test_float32_in_float32_out():
    problem = ufm.make("plain", **plain("mse", lambda_W=0.05, lambda_H=0.01))
    problem32 = jax.tree.map(lambda x: x.astype(jnp.float32), problem)
    sol = ufm.solve(problem32, gtol=1e-4)
    assert sol.params["W"].dtype == jnp.float32 and sol.loss.dtype == jnp.float32
    assert float(sol.loss) == pytest.approx(0.18, rel=1e-5)


@pytest.mark.parametrize(
    "hyper, match",
    [
        ({"K": 1}, "K must be an integer >= 2"),
        ({"K": 2.5}, "K must be an integer >= 2"),
        ({"n": 0}, "n must be an integer >= 1"),
        ({"K": 3, "n": (5, 5)}, "n must have K=3 entries"),
        ({"K": 2, "n": (5, 0)}, r"n\[1\] must be an integer >= 1"),
        ({"d": 0}, "d must be an integer >= 1"),
        ({"lambda_W": -1.0}, "lambda_W must be a finite number > 0"),
        ({"lambda_H": float("nan")}, "lambda_H must be a finite number > 0"),
        ({"lambda_H": float("inf")}, "lambda_H must be a finite number > 0"),
        ({"bias": True, "lambda_b": -0.1}, "lambda_b must be a finite number >= 0"),
        ({"lambda_b": 0.1}, "needs bias=True"),
        ({"loss": "hinge"}, "loss must be one of 'ce', 'mse'"),
        ({"lam": 0.1}, "unknown parameter 'lam'"),
    ],
)
def test_bad_input_names_the_parameter(hyper, match):
    with pytest.raises(ValueError, match=match):
        ufm.make("plain", **hyper)


def test_bad_model_and_solver_options():
    with pytest.raises(ValueError, match="model must be one of 'plain'"):
        ufm.make("resnet")
    problem = ufm.make("plain", K=3, n=2, d=4)
    for kw, match in [
        ({"restarts": 0}, "restarts"),
        ({"gtol": -1.0}, "gtol"),
        ({"method": "newton"}, "method"),
        ({"max_steps": 0}, "max_steps"),
    ]:
        with pytest.raises(ValueError, match=match):
            ufm.solve(problem, **kw)


def test_problem_is_a_pytree_with_array_hyperparameters():
    problem = ufm.make("plain", **plain("mse", lambda_W=0.05, lambda_H=0.01))
    leaves = jax.tree.leaves(problem)
    assert len(leaves) == 3 and all(isinstance(x, jax.Array) for x in leaves)
    assert eqx.tree_equal(problem, ufm.make("plain", **problem.hyperparameters()))


# --- MSE with d below the number of label directions (derivations/plain_ufm.py 10-11) ------
NARROW_IMB = (8, 8, 8, 3, 2)  # N = 29: class k alive at any width iff n_k > 841 lW lH


def test_narrow_mse_losses_match_derivation(derived):
    args = (dv.K, dv.n, dv.d, dv.lam_W, dv.lam_H)
    no_bias = lambdified(derived["mse_narrow_loss_collapsed"], *args)
    bias = lambdified(derived["mse_bias_narrow_loss_collapsed"], *args)
    sv = lambdified(derived["mse_narrow_logit_sv"], dv.K, dv.n, dv.lam_W, dv.lam_H)
    checked = 0
    for K, n, lw, lh in GRID:
        if K < 4 or cf.threshold(K, n, lw, lh) >= 1:
            continue  # interior branch, and room for d < K - 1
        for d in range(1, K - 1):
            np.testing.assert_allclose(
                cf.mse_min_loss(K, n, lw, lh, False, d), no_bias(K, n, d, lw, lh), rtol=1e-13
            )
            np.testing.assert_allclose(
                cf.mse_min_loss(K, n, lw, lh, True, d), bias(K, n, d, lw, lh), rtol=1e-13
            )
            checked += 1
        # and the package's spectral route (ufm.theory) for one width
        for has_bias in (False, True):
            problem = ufm.make(
                "plain", loss="mse", K=K, n=n, d=2, bias=has_bias, lambda_W=lw, lambda_H=lh
            )
            th = ufm.theory(problem)
            assert (th.regime, th.geometry) == ("collapsed", "tight_frame")
            expect = (bias if has_bias else no_bias)(K, n, 2, lw, lh)
            assert th.loss == pytest.approx(expect, rel=1e-13)
            np.testing.assert_allclose(
                th.quantities["logits_sv"], [sv(K, n, lw, lh)] * 2 + [0] * (K - 2), atol=1e-13
            )
    assert checked > 20
    # beyond the zero threshold the width changes nothing: r directions at 1/(2K) each
    assert cf.mse_min_loss(4, 5, 0.2, 0.2, False, 2) == pytest.approx(0.5, abs=1e-15)
    assert cf.mse_min_loss(4, 5, 0.2, 0.2, True, 2) == pytest.approx(3 / 8, abs=1e-15)


def test_narrow_imbalanced_keeps_the_largest_classes(derived):
    """Bias-free: the gain (sqrt(n_k) - N mu)^2/(2N) of keeping a class grows with n_k, so the
    d largest are kept; the package's loss is the derivation's per-class sum."""
    args = (dv.n_k, dv.N, dv.lam_W, dv.lam_H)
    alive = lambdified(derived["gof_class_loss_alive"], *args)
    dead = lambdified(derived["gof_class_loss_dead"], *args)
    gain = lambdified(derived["mse_narrow_gain"], dv.sigma, *args[1:])
    n = np.array(NARROW_IMB, float)
    N = n.sum()
    for lam, d, off in [(5e-3, 3, [3, 4]), (5e-3, 4, [4]), (0.055, 3, [3, 4]), (0.07, 3, [3, 4])]:
        on = n > N**2 * lam * lam
        g = np.where(on, gain(np.sqrt(n), N, lam, lam), 0.0)
        kept = np.argsort(-g, kind="stable")[:d]
        assert sorted(set(range(5)) - set(kept)) == off
        keep = np.isin(np.arange(5), kept) & on
        expect = np.sum(np.where(keep, alive(n, N, lam, lam), dead(n, N, lam, lam)))
        problem = ufm.make("plain", loss="mse", K=5, n=NARROW_IMB, d=d, lambda_W=lam, lambda_H=lam)
        th = ufm.theory(problem)
        assert th.loss == pytest.approx(expect, rel=1e-13)
        own = np.diag(th.quantities["logits"])
        np.testing.assert_array_equal(own == 0, ~keep)
        np.testing.assert_allclose(own[keep], cf.gof_own_logit(n, N, lam, lam)[keep], rtol=1e-13)
        # rank d when the width binds (regime read off the rank, as check.found_regime does)
        assert th.geometry == "general_orthogonal_frame"
        assert th.regime == ("collapsed" if on.sum() >= d else "minority_collapse")


@pytest.mark.parametrize(
    "hyper",
    [
        plain("mse", d=3, lambda_W=0.05, lambda_H=0.01),
        plain("mse", K=6, n=4, d=3, bias=True, lambda_W=0.01, lambda_H=0.01),
        plain("mse", K=5, n=NARROW_IMB, d=3, lambda_W=5e-3, lambda_H=5e-3),
        plain("mse", K=5, n=(8, 8, 3, 3, 2), d=3, lambda_W=5e-3, lambda_H=5e-3),
        plain("mse", K=5, n=NARROW_IMB, d=3, bias=True, lambda_W=5e-3, lambda_H=5e-3),
    ],
    ids=["balanced", "free-bias", "imbalanced", "imbalanced-tie", "imbalanced-free-bias"],
)
def test_narrow_closed_form_minimizer(hyper):
    """The realized minimizer attains theory.loss and is stationary; non-unique predictions
    carry only invariant quantities; balanced class means form a tight frame of R^d."""
    problem = ufm.make("plain", **hyper)
    th = ufm.theory(problem)
    params = {k: jnp.asarray(v) for k, v in th.params.items()}
    assert float(problem.loss(params)) == pytest.approx(th.loss, rel=1e-12)
    grad = jax.grad(problem.loss)(params)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grad)) < 1e-10
    tie = "not determined" in th.reason
    assert tie == (set(th.quantities) <= {"logits_sv", "b"})
    assert tie == (problem.balanced or hyper["n"] == (8, 8, 3, 3, 2))
    if problem.balanced:
        Hbar = th.params["H"][:, :: problem.counts[0]]  # one column per class
        c = cf.threshold(problem.K, problem.counts[0], hyper["lambda_W"], hyper["lambda_H"])
        rho = cf.mse_rho(problem.K, problem.counts[0], hyper["lambda_W"], hyper["lambda_H"])
        np.testing.assert_allclose(Hbar @ Hbar.T, rho * np.eye(3), atol=1e-12)
        np.testing.assert_allclose(th.quantities["logits_sv"][:3], 1 - c, rtol=1e-12)


NARROW_SOLVER_CASES = [
    pytest.param(plain("mse", K=6, n=4, d=3, lambda_W=0.01, lambda_H=0.01), id="balanced"),
    pytest.param(
        plain("mse", K=6, n=4, d=3, lambda_W=0.15, lambda_H=0.15), id="balanced-zero"
    ),  # c = 1.8
    pytest.param(
        plain("mse", K=6, n=4, d=3, bias=True, lambda_W=0.01, lambda_H=0.01),
        id="free-bias",
        marks=pytest.mark.slow,
    ),
    pytest.param(  # the quick verify claim mse-narrow-imbalanced solves this point too
        plain("mse", K=5, n=NARROW_IMB, d=3, lambda_W=5e-3, lambda_H=5e-3),
        id="imbalanced",
        marks=pytest.mark.slow,
    ),
    pytest.param(  # 841 lam^2 = 2.54: class 4 off by the threshold, class 3 by the width
        plain("mse", K=5, n=NARROW_IMB, d=3, lambda_W=0.055, lambda_H=0.055),
        id="imbalanced-threshold",
    ),
    pytest.param(  # 841 lam^2 = 4.1: only the three classes of 8 alive, the width is slack
        plain("mse", K=5, n=NARROW_IMB, d=3, lambda_W=0.07, lambda_H=0.07),
        id="imbalanced-width-slack",
    ),
    pytest.param(
        plain("mse", K=5, n=(8, 8, 3, 3, 2), d=3, lambda_W=5e-3, lambda_H=5e-3),
        id="imbalanced-tie",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        plain("mse", K=5, n=NARROW_IMB, d=3, bias=True, lambda_W=5e-3, lambda_H=5e-3),
        id="imbalanced-free-bias",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize("hyper", NARROW_SOLVER_CASES)
def test_narrow_solver_reaches_closed_form(hyper):
    """The solver finds the truncated closed form, every restart the same value. The convex
    certificate ||grad_Z L||_op <= mu fails exactly on the directions the width cuts: the
    logit gradient has one singular value sigma_i/N > mu per cut direction."""
    problem = ufm.make("plain", **hyper)
    sol = ufm.solve(problem, restarts=3)
    assert sol.converged, sol.status
    assert sol.loss_spread <= 1e-12  # benign: every restart reaches the same value
    th = ufm.theory(problem)
    report = ufm.check(problem, sol)
    assert report.verdict == "agrees", report.reason
    assert found_regime(problem, found_quantities(problem, sol.params)) == th.regime
    mu = np.sqrt(float(problem.lambda_W * problem.lambda_H))
    G = np.asarray(logit_gradient(problem, sol.params))
    above = int(np.sum(np.linalg.svd(G, compute_uv=False) > mu * (1 + 1e-6)))
    counts = np.array(problem.counts)
    assert above == spectral_mse(counts, mu, 1, problem.bias, width=problem.d).cut


def test_imbalanced_ce_is_predicted_by_the_convex_program():
    """Formerly not applicable: imbalanced CE inside the zero threshold, and with a
    regularized bias (even far past the threshold, where the zero solution's bias has no
    closed form): now the convex program's certified minimizer (tests/test_convex.py)."""
    for hyper, regime in [
        (plain("ce", n=IMB, lambda_W=0.04, lambda_H=0.04), "minority_collapse"),
        (plain("ce", n=IMB, bias=True, lambda_W=0.5, lambda_H=0.5, lambda_b=0.1), "zero"),
    ]:
        th = ufm.theory(ufm.make("plain", **hyper))
        assert th.regime == regime and th.certificate["duality_gap"] <= 1e-11 * th.loss
