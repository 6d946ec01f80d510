"""Vicinity UFM: the sympy derivation (derivations/vicinity.py), lambdified, against the
package's closed forms (ufm.models.vicinity), its matrix-free operators
(ufm.models.vicinity.linear_response), jax autodiff of the loss, dense Hessians,
and the worked example of derivations/vicinity.py."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import ufm
from derivations import vicinity as dv
from ufm.models import plain as cf
from ufm.models import vicinity as vm
from ufm.models.vicinity import linear_response as lr

NOTES = dv.NOTES  # worked example: numbers computed independently, not read in a paper

# (K, n, d, lambda_W, lambda_H), canonical, all with c < 1 and d > K; the last has c > 1/2
POINTS = [
    (3, 4, 5, 0.02, 0.01),
    (4, 5, 6, 0.05, 0.01),
    (6, 3, 8, 0.01, 0.02),
    (4, 5, 7, 0.1, 0.04),
]
BETAS = (0.5, 5.0, 50.0)
SCALARS = (dv.K, dv.n, dv.d, dv.lam_W, dv.lam_H, dv.beta)
PAPER_ARGS = (dv.lam_W_T, dv.lam_H_T, dv.beta_T)
NAMES = (
    "c rho w_norm2 own_logit W_scale gamma_parallel gamma_perp s0_parallel s0_perp s0_sym "
    "eq5_diag_min eq5_diag_max eq5_off_max eq5_beta_min exact_diag_min exact_off_max "
    "eq5_within_parallel eq5_within_perp eq5_rotation eq5_mean_other eq5_mean_own "
    "exact_within_parallel exact_within_perp exact_rotation exact_mean_other exact_mean_own "
    "mult_within_parallel mult_within_perp mult_rotation mult_mean_other mult_mean_own "
    "s0_mult_parallel s0_mult_perp s0_mult_sym s0_mult_zero"
).split()
PARTS = ("within_parallel", "within_perp", "rotation", "mean_other", "mean_own")


@pytest.fixture(scope="module")
def derived():
    return dv.derive()


@pytest.fixture(scope="module")
def f(derived):
    """The derived scalars as functions of (K, n, d, lambda_W, lambda_H, beta), the paper
    forms of (lambda_W^T, lambda_H^T, beta^T), and the matrix expressions as numpy
    functions whose first argument is d (Identity(d) becomes the array np.eye(d))."""
    out = {name: sp.lambdify(SCALARS, derived[name], "numpy") for name in NAMES}
    out["nc1_ratio"] = sp.lambdify((*SCALARS, dv.e_par), derived["nc1_ratio"], "numpy")
    for name in ("paper_diag_min", "paper_off_max", "paper_gamma_parallel", "paper_gamma_perp"):
        out[name] = sp.lambdify(PAPER_ARGS, derived[name], "numpy")
    for name in ("lambda_W_from_paper", "lambda_H_from_paper", "beta_from_paper"):
        out[name] = sp.lambdify((dv.K, dv.n, *PAPER_ARGS), derived[name], "numpy")
    out["of_stationarity_W"] = sp.lambdify(
        (dv.K, dv.lam_W, dv.w, dv.h), derived["of_stationarity_W"], "numpy"
    )
    out["of_stationarity_H"] = sp.lambdify(
        (dv.N, dv.lam_H, dv.w, dv.h), derived["of_stationarity_H"], "numpy"
    )
    eye = sp.MatrixSymbol("I_d", dv.d, dv.d)
    matrices = {
        "W_star": (dv.H, dv.Y, dv.N, dv.lam_W),
        "grad_W_f": (dv.W, dv.H, dv.Y, dv.N, dv.lam_W),
        "grad_H_f": (dv.W, dv.H, dv.Y, dv.H0, dv.N, dv.lam_H, dv.beta),
        "grad_L": (dv.W, dv.H, dv.Y, dv.N, dv.lam_H),
        "explicit_step": (dv.W0, dv.H0, dv.Y, dv.N, dv.lam_H, dv.beta),
        "S0": (dv.W, dv.H, dv.Y, dv.dH, dv.N, dv.lam_W, dv.lam_H),
    }
    for name, args in matrices.items():
        expr = derived[name].xreplace({sp.Identity(dv.d): eye})
        fn = sp.lambdify((*args, eye), expr, "numpy")
        out[name] = lambda d, *a, fn=fn: np.asarray(fn(*a, np.eye(d)))
    return out


class Case:
    """A problem and its numpy pieces."""

    def __init__(self, problem):
        self.p = problem
        self.K, self.n, self.d, self.N = problem.K, problem.counts[0], problem.d, problem.N
        self.lW, self.lH = float(problem.lambda_W), float(problem.lambda_H)
        self.beta = float(problem.beta)
        self.Y = np.eye(self.K)[problem.labels].T
        self.H0 = np.asarray(problem.H0)

    def args(self, beta=None):
        return (self.K, self.n, self.d, self.lW, self.lH, self.beta if beta is None else beta)


# autodiff of the package's losses, compiled once per shape (the problem is a traced pytree)
grad_loss = eqx.filter_jit(lambda p, W, H: jax.grad(p.loss)({"W": W, "H": H}))
grad_reduced_loss = eqx.filter_jit(lambda p, H: jax.grad(p.reduced_loss)(H))
reduced_gradient = eqx.filter_jit(lambda p, H: p.reduced_gradient(H))


def make(K, n, d, lW, lH, beta=5.0, **kw):
    return Case(ufm.make("vicinity", K=K, n=n, d=d, lambda_W=lW, lambda_H=lH, beta=beta, **kw))


def vec(X):
    return np.asarray(X).T.reshape(-1)  # column stacking: column i, row r -> i d + r


def unvec(v, d):
    return np.asarray(v).reshape(-1, d).T


def schur_of_hessian(loss, W, H):
    """H_HH - H_HW H_WW^{-1} H_WH of the dense jax Hessian of loss({"W", "H"}) on (W, vec H)."""
    K, d = W.shape
    N = H.shape[1]
    nw = K * d

    def flat(x):
        return loss({"W": x[:nw].reshape(K, d), "H": x[nw:].reshape(N, d).T})

    x = jnp.concatenate([jnp.asarray(W).reshape(-1), jnp.asarray(H).T.reshape(-1)])
    hess = np.asarray(jax.jit(jax.hessian(flat))(x))
    H_WW, H_WH, H_HH = hess[:nw, :nw], hess[:nw, nw:], hess[nw:, nw:]
    return H_HH - H_WH.T @ np.linalg.solve(H_WW, H_WH)


def spectrum(f, args, prefix):
    """The derived spectrum of F_kk (prefix eq5_ or exact_) at (K, n, d, lambda_W, lambda_H,
    beta), sorted, each value repeated by its multiplicity."""
    values = [np.full(int(f[f"mult_{p}"](*args)), float(f[prefix + p](*args))) for p in PARTS]
    return np.sort(np.concatenate(values))


def digits_tol(note):
    digits = len(f"{note:.10g}".replace(".", "").replace("-", "").lstrip("0"))
    return 0.6 * 10.0 ** (np.floor(np.log10(abs(note))) - digits + 1)


@pytest.fixture(scope="module")
def solved():
    """A non-collapsed minimizer: H0 = H* + 30% noise, solved."""
    case = make(4, 5, 6, 0.05, 0.01, noise=0.3)
    sol = ufm.solve(case.p)
    assert sol.converged
    return case, {k: np.asarray(v) for k, v in sol.params.items()}


# ------------------------------------------------------------------------------------------
# steps 1-2: the classifier and the envelope gradient


@pytest.mark.parametrize("point", POINTS[2:3])
def test_classifier_and_gradients_match_autodiff(f, point):
    case = make(*point, noise=0.3, noise_seed=1)
    p, d, H0 = case.p, case.d, case.H0
    rng = np.random.default_rng(0)
    H = H0 + 0.1 * rng.standard_normal(H0.shape)
    W = rng.standard_normal((case.K, d))
    # step 1: W*(H) against the package, and grad_W f = 0 there (jax autodiff of the loss)
    W_star = f["W_star"](d, H, case.Y, case.N, case.lW)
    np.testing.assert_allclose(W_star, np.asarray(p.optimal_classifier(jnp.asarray(H))), rtol=1e-12)
    grad = grad_loss(p, jnp.asarray(W_star), jnp.asarray(H))
    assert np.max(np.abs(np.asarray(grad["W"]))) < 1e-13
    # the derived gradients of f at an arbitrary (W, H) are autodiff's
    grad = grad_loss(p, jnp.asarray(W), jnp.asarray(H))
    np.testing.assert_allclose(
        f["grad_W_f"](d, W, H, case.Y, case.N, case.lW), np.asarray(grad["W"]), rtol=1e-12
    )
    np.testing.assert_allclose(
        f["grad_H_f"](d, W, H, case.Y, H0, case.N, case.lH, case.beta),
        np.asarray(grad["H"]),
        rtol=1e-11,
        atol=1e-14,
    )
    # step 2: the envelope gradient is the gradient of the reduced loss
    grad_L = f["grad_L"](d, W_star, H, case.Y, case.N, case.lH)
    autodiff = np.asarray(grad_reduced_loss(p, jnp.asarray(H)))
    np.testing.assert_allclose(grad_L, autodiff, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grad_L, np.asarray(reduced_gradient(p, jnp.asarray(H))), rtol=1e-12)


# ------------------------------------------------------------------------------------------
# step 3: Corollary 2.2


@pytest.mark.parametrize("point", POINTS)
def test_orthogonal_frame_is_stationary_for_every_beta(f, point):
    case = make(*point, noise=0.0)
    K, n, d, N, lW, lH = case.K, case.n, case.d, case.N, case.lW, case.lH
    args = case.args()
    rho, w2 = float(f["rho"](*args)), float(f["w_norm2"](*args))
    assert float(f["c"](*args)) == pytest.approx(cf.threshold(K, n, lW, lH), rel=1e-14)
    assert rho == pytest.approx(cf.mse_rho(K, n, lW, lH), rel=1e-13)
    assert w2 == pytest.approx(cf.mse_w_norm2(K, n, lW, lH), rel=1e-13)
    # the generated H0 is the OF with Gram rho I, and W*(H0) has Gram ||w||^2 I
    means = case.H0 @ case.Y.T / n
    np.testing.assert_allclose(means.T @ means, rho * np.eye(K), atol=1e-13)
    W = f["W_star"](d, case.H0, case.Y, N, lW)
    np.testing.assert_allclose(W @ W.T, w2 * np.eye(K), atol=1e-13)
    np.testing.assert_allclose(W, float(f["W_scale"](*args)) * means.T, atol=1e-13)
    np.testing.assert_allclose(W @ means, float(f["own_logit"](*args)) * np.eye(K), atol=1e-13)
    # the scalar stationarity equations vanish at (||w||, sqrt(rho)) ...
    w, h = np.sqrt(w2), np.sqrt(rho)
    assert abs(f["of_stationarity_W"](K, lW, w, h)) < 1e-15
    assert abs(f["of_stationarity_H"](N, lH, w, h)) < 1e-15
    # ... and the full gradient of f(.; H0 = H*) (autodiff) for every beta
    for beta in BETAS:
        p = case.p.with_parameter("beta", beta)
        grad = grad_loss(p, jnp.asarray(W), jnp.asarray(case.H0))
        assert max(float(jnp.max(jnp.abs(g))) for g in grad.values()) < 1e-14


def test_orthogonal_frame_is_the_solvers_minimizer(f, solved):
    base, _ = solved
    collapsed = make(4, 5, 6, 0.05, 0.01, noise=0.0)
    # the solved problem with H0 = H* (same static fields, so the solver is not recompiled)
    p = eqx.tree_at(lambda q: q.H0, base.p.with_parameter("beta", 0.5), jnp.asarray(collapsed.H0))
    sol = ufm.solve(p)
    assert sol.converged
    W = f["W_star"](collapsed.d, collapsed.H0, collapsed.Y, collapsed.N, collapsed.lW)
    np.testing.assert_allclose(np.asarray(sol.params["H"]), collapsed.H0, atol=1e-8)
    np.testing.assert_allclose(np.asarray(sol.params["W"]), W, atol=1e-8)


# ------------------------------------------------------------------------------------------
# step 4: the implicit step and its first-order (explicit) form


def test_explicit_step_is_first_order_in_one_over_beta(f, solved):
    base, sol_params = solved
    d, H0, Y, N, lH = base.d, base.H0, base.Y, base.N, base.lH
    W0 = f["W_star"](d, H0, Y, N, base.lW)
    g0 = f["grad_L"](d, W0, H0, Y, N, lH)
    # J_g(H0) g(H0): the Hessian of L along g, by forward-mode autodiff of the package's gradient
    _, jg = jax.jvp(base.p.reduced_gradient, (jnp.asarray(H0),), (jnp.asarray(g0),))
    jg = np.asarray(jg)
    misfit = {}
    for beta in (5.0, 50.0, 500.0):
        p = base.p.with_parameter("beta", beta)
        step = f["explicit_step"](d, W0, H0, Y, N, lH, beta)
        np.testing.assert_allclose(step, H0 - g0 / beta, rtol=1e-14)
        np.testing.assert_allclose(step, np.asarray(lr.explicit_step(p)), rtol=1e-12)
        H = jnp.asarray(H0)  # the implicit equation H = H0 - grad L(H)/beta, by iteration
        for _ in range(200):
            H_new = jnp.asarray(H0) - reduced_gradient(base.p, H) / beta
            done = float(jnp.max(jnp.abs(H_new - H))) < 1e-15
            H = H_new
            if done:
                break
        assert done
        if beta == 5.0:  # the implicit step is the minimizer of f(.; H0)
            np.testing.assert_allclose(np.asarray(H), sol_params["H"], atol=1e-8)
        err = np.asarray(H) - step
        misfit[beta] = np.linalg.norm(err - jg / beta**2) / np.linalg.norm(jg / beta**2)
    # the error is J_g g / beta^2 up to O(beta^-3): the relative misfit falls like 1/beta
    scaled = [beta * value for beta, value in misfit.items()]
    assert max(scaled) < 1.05 * min(scaled)
    assert misfit[500.0] < 1e-3


# ------------------------------------------------------------------------------------------
# step 5: S0 is the Schur complement of the dense Hessian of f_0


def test_schur_complement_at_collapsed_and_solved_minimizers(f, solved):
    base, params = solved
    collapsed = make(4, 5, 6, 0.05, 0.01, noise=0.0)
    W_c = f["W_star"](6, collapsed.H0, collapsed.Y, collapsed.N, collapsed.lW)
    for case, W, H in ((collapsed, W_c, collapsed.H0), (base, params["W"], params["H"])):
        p, d, N = case.p, case.d, case.N
        expect = schur_of_hessian(p.beta_free_loss, W, H)
        got = lr.dense(lr.schur(p, jnp.asarray(W), jnp.asarray(H)), d, N)
        np.testing.assert_allclose(got, expect, atol=1e-12)
        # the derived matrix-free formula, column by column
        S0 = lambda X, case=case, W=W, H=H: f["S0"](
            case.d, W, H, case.Y, X, case.N, case.lW, case.lH
        )
        derived = np.stack([vec(S0(unvec(e, d))) for e in np.eye(d * N)], axis=1)
        np.testing.assert_allclose(derived, expect, atol=1e-12)
        # F = (I + S0/beta)^{-1} = beta (Schur complement of the Hessian of f, with beta)^{-1}
        F = lr.dense(lr.response(p, jnp.asarray(W), jnp.asarray(H)), d, N)
        full = schur_of_hessian(p.loss, W, H)
        np.testing.assert_allclose(F, case.beta * np.linalg.inv(full), atol=1e-10)


# ------------------------------------------------------------------------------------------
# steps 6-8: spectra at the collapsed minimizer


@pytest.mark.parametrize("point", POINTS)
def test_schur_spectrum_at_collapsed_minimizer(f, point):
    case = make(*point, noise=0.0)
    d, N, args = case.d, case.N, case.args()
    W = f["W_star"](d, case.H0, case.Y, N, case.lW)
    S = schur_of_hessian(case.p.beta_free_loss, W, case.H0)
    parts = (("parallel", "s0_parallel"), ("perp", "s0_perp"), ("sym", "s0_sym"), ("zero", None))
    expect = np.sort(
        np.concatenate(
            [
                np.full(int(f[f"s0_mult_{m}"](*args)), float(f[v](*args)) if v else 0.0)
                for m, v in parts
            ]
        )
    )
    np.testing.assert_allclose(np.linalg.eigvalsh((S + S.T) / 2), expect, atol=1e-12)


@pytest.mark.parametrize("point", POINTS)
def test_theorem_4_2_and_eq5_spectrum(f, point):
    K, n, d, lW, lH = point
    for beta in BETAS:
        args = (K, n, d, lW, lH, beta)
        assert beta >= f["eq5_beta_min"](*args)  # Eq. 5 has no negative eigenvalue here
        predicted = vm.theorem_4_2(K, n, lW, lH, beta)
        assert predicted["diag_max"] == float(f["eq5_diag_max"](*args))
        assert predicted["diag_min"] == pytest.approx(float(f["eq5_diag_min"](*args)), rel=1e-14)
        assert predicted["off_max"] == pytest.approx(float(f["eq5_off_max"](*args)), rel=1e-13)
        package = np.sort(
            np.concatenate([np.full(m, v) for v, m in vm.eq5_spectrum(K, n, d, lW, lH, beta)])
        )
        np.testing.assert_allclose(package, spectrum(f, args, "eq5_"), rtol=1e-14)
    # the operator: blocks of Eq. 5's F and of the exact F at the collapsed minimizer
    case = make(K, n, d, lW, lH, beta=BETAS[1], noise=0.0)
    if point == POINTS[-1]:  # the package's check (the worked example runs it too)
        check = lr.theorem_4_2_check(case.p)
        assert check["holds"]
        found = check["found"]
        assert found["diag_max"] == pytest.approx(1.0, abs=1e-12)
        assert found["diag_min"] == pytest.approx(float(f["eq5_diag_min"](*case.args())), abs=1e-12)
        assert found["off_max"] == pytest.approx(float(f["eq5_off_max"](*case.args())), abs=1e-12)
        np.testing.assert_allclose(
            np.sort(check["diag_singular_values"]), spectrum(f, case.args(), "eq5_"), atol=1e-12
        )
    W = f["W_star"](d, case.H0, case.Y, case.N, lW)
    S = schur_of_hessian(case.p.beta_free_loss, W, case.H0)
    dn = d * n
    for beta in BETAS:  # F from the dense Hessian, both forms, every beta
        for prefix, F in (
            ("eq5_", np.eye(d * case.N) - S / beta),
            ("exact_", np.linalg.inv(np.eye(d * case.N) + S / beta)),
        ):
            sv_diag = np.linalg.svd(F[:dn, :dn], compute_uv=False)
            sv_off = np.linalg.svd(F[:dn, dn : 2 * dn], compute_uv=False)
            np.testing.assert_allclose(
                np.sort(sv_diag), spectrum(f, case.args(beta), prefix), atol=1e-12
            )
            assert sv_diag[-1] == pytest.approx(
                float(f[prefix + "diag_min"](*case.args(beta))), abs=1e-12
            )
            assert sv_off[0] == pytest.approx(
                float(f[prefix + "off_max"](*case.args(beta))), abs=1e-12
            )
            assert np.all(sv_off[1:] < 1e-12)  # rank 1


def test_nc1_ratio(f):
    K, n, d, lW, lH, beta = 4, 5, 9, 0.05, 0.01, 2.0
    case = make(K, n, d, lW, lH, beta=beta, noise=0.0)
    rng = np.random.default_rng(3)
    E = rng.standard_normal(case.H0.shape)
    E -= (E @ case.Y.T / n) @ case.Y
    means = case.H0 @ case.Y.T / n
    P = means @ np.linalg.pinv(means)
    e_par = float(np.sum((P @ E) ** 2) / np.sum(E**2))
    args = (K, n, d, lW, lH, beta, e_par)
    ratio = float(f["nc1_ratio"](*args))
    assert ratio == pytest.approx(vm.nc1_ratio(K, n, lW, lH, beta, e_par), rel=1e-14)
    # H0 = H* + 1e-3 E: F[H0 - H*] is linear and keeps the means, so the ratio is exact
    p = ufm.make("vicinity", H0=case.H0 + 1e-3 * E, K=K, lambda_W=lW, lambda_H=lH, beta=beta)
    got = lr.nc1(p, lr.first_order(p)) / lr.nc1(p, p.H0)
    assert got == pytest.approx(ratio, rel=1e-9)


# ------------------------------------------------------------------------------------------
# step 9: the paper's normalization


def test_paper_forms_and_conversions(f):
    for K, n, lW_T, lH_T, beta_T in ((4, 5, 0.2, 0.2, 100.0), (3, 7, 0.05, 0.6, 20.0)):
        conv = vm.from_paper(K, n, lW_T, lH_T, beta_T)
        lW = float(f["lambda_W_from_paper"](K, n, lW_T, lH_T, beta_T))
        lH = float(f["lambda_H_from_paper"](K, n, lW_T, lH_T, beta_T))
        beta = float(f["beta_from_paper"](K, n, lW_T, lH_T, beta_T))
        assert (conv["lambda_W"], conv["lambda_H"], conv["beta"]) == pytest.approx(
            (lW, lH, beta), rel=1e-15
        )
        p = ufm.make(
            "vicinity", K=K, n=n, d=K + 2, lambda_W=lW_T, lambda_H=lH_T, beta=beta_T, units="paper"
        )
        assert (float(p.lambda_W), float(p.lambda_H), float(p.beta)) == pytest.approx(
            (lW, lH, beta), rel=1e-15
        )
        args = (K, n, K + 2, lW, lH, beta)
        T = (lW_T, lH_T, beta_T)
        for canon, paper in (
            ("eq5_diag_min", "paper_diag_min"),
            ("eq5_off_max", "paper_off_max"),
            ("gamma_parallel", "paper_gamma_parallel"),
            ("gamma_perp", "paper_gamma_perp"),
        ):
            assert float(f[paper](*T)) == pytest.approx(float(f[canon](*args)), rel=1e-13)
        predicted = vm.theorem_4_2(K, n, lW, lH, beta)
        assert predicted["diag_min"] == pytest.approx(float(f["paper_diag_min"](*T)), rel=1e-13)
        assert predicted["off_max"] == pytest.approx(float(f["paper_off_max"](*T)), rel=1e-13)


# ------------------------------------------------------------------------------------------
# worked example (derivations/vicinity.py, ``NOTES``)


def test_derivation_reproduces_the_worked_example(derived):
    values = dv.worked_examples(derived)
    assert set(values) == set(NOTES)
    for key, value in values.items():
        assert value == pytest.approx(NOTES[key], abs=digits_tol(NOTES[key])), key


def test_worked_example_operators(f):
    """The worked example's numbers from the package's operators (Eq. 5 and exact), in the
    paper's units."""
    p = ufm.make("vicinity", K=4, n=5, d=6, lambda_W=0.2, lambda_H=0.2, beta=100.0, units="paper")
    for key in ("lambda_W", "lambda_H", "beta"):
        assert float(getattr(p, key)) == pytest.approx(NOTES[key], rel=1e-14)
    case = Case(p)
    K, n, d, lW, lH, beta = case.args()
    check = lr.theorem_4_2_check(p)
    assert check["holds"]
    found = check["found"]
    assert found["diag_min"] == pytest.approx(NOTES["eq5_diag_min"], abs=1e-12)
    assert found["off_max"] == pytest.approx(NOTES["eq5_off_max"], abs=1e-12)
    notes = np.sort(np.concatenate([np.full(NOTES[f"mult_{q}"], NOTES[f"eq5_{q}"]) for q in PARTS]))
    np.testing.assert_allclose(np.sort(check["diag_singular_values"]), notes, atol=1e-12)
    # the exact F = (I + S0/beta)^{-1} at H* (conjugate gradients)
    F, H_star = lr.at_base(p)
    np.testing.assert_allclose(np.asarray(H_star), case.H0, atol=1e-14)
    diag = np.linalg.svd(lr.blocks(F, p, 0, 0), compute_uv=False)
    off = np.linalg.svd(lr.blocks(F, p, 0, 1), compute_uv=False)
    assert diag[-1] == pytest.approx(NOTES["exact_diag_min"], abs=1e-12)
    assert np.min(np.abs(diag - NOTES["gamma_perp"])) < 1e-12
    assert off[0] == pytest.approx(NOTES["exact_off_max"], abs=digits_tol(NOTES["exact_off_max"]))
    # ... and against the derivation: the whole spectrum of F_00, the rank-1 crosstalk
    np.testing.assert_allclose(np.sort(diag), spectrum(f, case.args(), "exact_"), atol=1e-10)
    assert off[0] == pytest.approx(float(f["exact_off_max"](*case.args())), abs=1e-11)
    assert np.all(off[1:] < 1e-10)
    # within-class zero-mean dH0: gamma_par on the span of the means, gamma_perp off it
    g_par, g_perp = float(f["gamma_parallel"](*case.args())), float(f["gamma_perp"](*case.args()))
    assert g_par == pytest.approx(vm.gamma_parallel(K, n, lW, lH, beta), rel=1e-14)
    assert g_perp == pytest.approx(vm.gamma_perp(lH, beta), rel=1e-14)
    assert g_par == float(f["exact_diag_min"](*case.args()))
    E = np.random.default_rng(2).standard_normal(case.H0.shape)
    E -= (E @ case.Y.T / n) @ case.Y  # remove the class means
    means = case.H0 @ case.Y.T / n
    P = means @ np.linalg.pinv(means)  # projector on the span of the means
    got = np.asarray(F(jnp.asarray(E)))
    np.testing.assert_allclose(got, g_par * P @ E + g_perp * (E - P @ E), atol=1e-11)
