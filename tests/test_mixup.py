"""Mixup UFM (Fisher, Meng & Papyan 2024): columns, loss, solver and closed forms against ufm's
formulation (derivations/mixup.py; the paper's text was not read, only its abstract) and
independent numpy/scipy computations.

References are computed here: the soft labels and the loss from their definitions, the fixed-ETF
features from the scalar equations of derivations/mixup.py (step 3: g* by bracketing; step 4:
(u, v) by scipy's root finder, K = 2 by its own scalar equation; step 6 for MSE) and by direct
per-feature minimization, the Beta moments from their product formula, and the worked example of
derivations/mixup.py (numbers computed independently, not read in a paper). No value is copied
from the code under test.
"""

import functools
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.special

import ufm
from ufm.models import mixup as mx

# float64 solves to gtol = 1e-10 put H within ~1e-8 of the closed form (measured: CE <= 1.8e-8
# (K=10), MSE ~1e-14; 6e-8 at kappa = 500 in the figure): 1e-6 keeps >= 15x headroom
H_ATOL = 1e-6
MIX = "0,0.25,0.5,0.75,1"


# --- independent references ------------------------------------------------------------------
def etf(K, d, r):
    """Papyan's simplex ETF r sqrt(K/(K-1)) (I - 11^T/K), padded with zero columns (d >= K)."""
    block = r * np.sqrt(K / (K - 1)) * (np.eye(K) - np.ones((K, K)) / K)
    return np.pad(block, ((0, 0), (0, d - K)))


def soft_labels(K, c1, c2, lam):
    Y = np.zeros((K, len(lam)))
    for m, (a, b, x) in enumerate(zip(c1, c2, lam, strict=True)):
        Y[a, m] += x
        Y[b, m] += 1 - x
    return Y


def ref_loss(problem, W, H, learned):
    """The objective of derivations/mixup.py (module docstring) with multiplicities mu_m, in
    numpy."""
    cols = problem.columns
    Y = soft_labels(problem.K, cols["c1"], cols["c2"], cols["lam"])
    mu, N = cols["count"], problem.K * problem.n
    Z = W @ H
    if problem.loss_name == "ce":
        data = scipy.special.logsumexp(Z, axis=0) - np.sum(Y * Z, axis=0)
    else:
        data = 0.5 * np.sum((Z - Y) ** 2, axis=0)
    lH, lW = float(problem.lambda_H), float(problem.lambda_W)
    value = np.sum(mu * data) / N + lH / 2 * np.sum(mu * np.sum(H**2, axis=0))
    return value + (lW / 2 * np.sum(W**2) if learned else 0.0)


def g_star(K, kappa):
    """derivations/mixup.py step 3: the root in (0, kappa) of g (e^g + K - 1) = kappa K."""
    return scipy.optimize.brentq(
        lambda g: g * (np.exp(g) + K - 1) - kappa * K, 0, kappa, xtol=1e-15
    )


def uv(K, kappa, lam):
    """derivations/mixup.py step 4 (K >= 3): u = kappa (lam - (e^u-1)/D),
    v = kappa (1-lam - (e^v-1)/D)."""

    def equations(x):
        u, v = x
        D = np.exp(u) + np.exp(v) + K - 2
        return [
            u - kappa * (lam - (np.exp(u) - 1) / D),
            v - kappa * (1 - lam - (np.exp(v) - 1) / D),
        ]

    g = g_star(K, kappa)
    sol = scipy.optimize.root(equations, [g / 2, g / 2], method="hybr", tol=1e-13)
    assert np.max(np.abs(equations(sol.x))) < 1e-12 * max(1.0, kappa), sol.message
    return sol.x


def ce_feature(W, lbar, c1, c2, lam):
    """The fixed-ETF CE feature of one column from the scalar equations of derivations/mixup.py."""
    K = W.shape[0]
    r2 = float(W[0] @ W[0])
    kappa = r2 * K / ((K - 1) * lbar)
    if c1 == c2 or lam in (0.0, 1.0):
        c = c1 if (c1 == c2 or lam == 1.0) else c2
        return (K - 1) * g_star(K, kappa) / (r2 * K) * W[c]
    if K == 2:  # h = s w_c1 (w_c2 = -w_c1): s = 2 (lam - sigmoid(2 s r^2)) / lbar
        f = lambda s: s - 2 * (lam - scipy.special.expit(2 * s * r2)) / lbar
        s = scipy.optimize.brentq(f, -2 / lbar, 2 / lbar, xtol=1e-16)
        return s * W[c1]
    u, v = uv(K, kappa, lam)
    return (K - 1) / (r2 * K) * (u * W[c1] + v * W[c2])


def ce_feature_direct(W, lbar, y):
    """min_h CE(W h, y) + lbar/2 ||h||^2 by scipy's trust-region Newton (no closed form)."""

    def fun(h):
        z = W @ h
        return scipy.special.logsumexp(z) - y @ z + lbar / 2 * h @ h

    def jac(h):
        return W.T @ (scipy.special.softmax(W @ h) - y) + lbar * h

    def hess(h):
        p = scipy.special.softmax(W @ h)
        return W.T @ (np.diag(p) - np.outer(p, p)) @ W + lbar * np.eye(W.shape[1])

    x0 = np.zeros(W.shape[1])
    res = scipy.optimize.minimize(fun, x0, jac=jac, hess=hess, method="trust-exact",
                                  options={"gtol": 1e-14})  # fmt: skip
    return res.x


def mse_feature(W, lbar, c1, c2, lam):
    """derivations/mixup.py step 6: h = (lam w_c1 + (1-lam) w_c2) / (r^2 K/(K-1) + lbar)."""
    K = W.shape[0]
    return (lam * W[c1] + (1 - lam) * W[c2]) / (float(W[0] @ W[0]) * K / (K - 1) + lbar)


def reference_H(problem):
    W = np.asarray(problem.fixed_classifier(np.float64))
    cols = problem.columns
    lbar = problem.K * problem.n * float(problem.lambda_H)
    feature = ce_feature if problem.loss_name == "ce" else mse_feature
    return np.stack(
        [
            feature(W, lbar, a, b, float(x))
            for a, b, x in zip(cols["c1"], cols["c2"], cols["lam"], strict=True)
        ],
        axis=1,
    )


def beta_moment(alpha, k):
    """E[lam^k] for lam ~ Beta(alpha, alpha): prod_{j<k} (alpha + j) / (2 alpha + j)."""
    return math.prod((alpha + j) / (2 * alpha + j) for j in range(k))


# --- 1. columns ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mix", ["0.2,0.5,0.9", "beta:0.4:5", "beta:2:1", "beta:1:sampled:3", 0.5])
@pytest.mark.parametrize("K,n", [(2, 7), (3, 10), (5, 4)])
def test_counts_sum_to_N(mix, K, n):
    problem = ufm.make("mixup", K=K, n=n, d=K, mix=mix)
    cols = problem.columns
    assert cols["count"].sum() == pytest.approx(float(K * n), rel=1e-13)
    assert np.all(cols["count"] > 0)
    assert cols["c1"].size == cols["c2"].size == cols["lam"].size == problem.counts.size
    # the soft labels: lam e_c1 + (1 - lam) e_c2, every column a probability vector
    Y = soft_labels(K, cols["c1"], cols["c2"], cols["lam"])
    np.testing.assert_allclose(np.asarray(problem.targets), Y, atol=1e-15)
    np.testing.assert_allclose(Y.sum(axis=0), 1.0, atol=1e-15)


def test_fixed_list_columns():
    K, n, lams = 4, 6, (0.1, 0.5, 0.8)
    cols = ufm.make("mixup", K=K, n=n, d=4, mix=",".join(map(str, lams))).columns
    assert cols["lam"].size == K * K * len(lams)
    np.testing.assert_allclose(cols["count"], n / K / len(lams), rtol=1e-15)  # equal weights
    # every ordered class pair (same-class included) with every coefficient exactly once
    triples = sorted(
        zip(cols["c1"].tolist(), cols["c2"].tolist(), cols["lam"].tolist(), strict=True)
    )
    assert triples == sorted((a, b, x) for a in range(K) for b in range(K) for x in lams)
    # a list and the equivalent string give the same problem
    other = ufm.make("mixup", K=K, n=n, d=4, mix=list(lams)).columns
    np.testing.assert_array_equal(other["lam"], cols["lam"])


@pytest.mark.parametrize("alpha,nodes", [(1.0, 8), (0.4, 5), (2.0, 3), (0.2, 1)])
def test_quadrature_matches_beta_moments(alpha, nodes):
    lam, w = mx.beta_quadrature(alpha, nodes)
    assert lam.size == w.size == nodes
    assert w.sum() == pytest.approx(1.0, rel=1e-14)
    assert np.all((lam > 0) & (lam < 1) & (w > 0))
    # Gauss-Jacobi: exact for every polynomial of degree < 2 nodes
    for k in range(2 * nodes):
        assert float(np.sum(w * lam**k)) == pytest.approx(beta_moment(alpha, k), rel=1e-12, abs=0)
    # symmetric law: symmetric nodes
    np.testing.assert_allclose(np.sort(lam), np.sort(1 - lam), atol=1e-14)
    # the columns carry n/K times the weights for each ordered class pair
    K, n = 3, 9
    cols = ufm.make("mixup", K=K, n=n, d=3, mix=f"beta:{alpha}:{nodes}").columns
    sel = (cols["c1"] == 1) & (cols["c2"] == 2)
    np.testing.assert_allclose(np.sort(cols["count"][sel]), np.sort(n / K * w), rtol=1e-13)


def test_sampled_columns():
    K, n = 4, 25
    a = ufm.make("mixup", K=K, n=n, d=4, mix="beta:0.4:sampled:7").columns
    b = ufm.make("mixup", K=K, n=n, d=4, mix="beta:0.4:sampled:7").columns
    c = ufm.make("mixup", K=K, n=n, d=4, mix="beta:0.4:sampled:8").columns
    assert a["lam"].size == K * n
    np.testing.assert_array_equal(a["c1"], np.repeat(np.arange(K), n))  # sorted by class
    np.testing.assert_array_equal(a["count"], 1.0)
    assert np.all((a["lam"] > 0) & (a["lam"] < 1))
    assert set(a["c2"].tolist()) <= set(range(K))
    for key in ("c1", "c2", "lam"):
        np.testing.assert_array_equal(a[key], b[key])  # reproducible
    assert not np.array_equal(a["lam"], c["lam"])  # another seed, other draws
    # Beta(0.4, 0.4) is U-shaped: mean 1/2, variance 1/(4 (2 alpha + 1)) = 0.1389
    assert abs(a["lam"].mean() - 0.5) < 0.1
    assert abs(a["lam"].var() - 1 / (4 * 1.8)) < 0.05


@pytest.mark.parametrize(
    "mix",
    ["1.5", "-0.1", [0.2, 1.01], "abc", "0.5,,0.7", "", [], "nan", "beta:0:4", "beta:-1:4",
     "beta:1:0", "beta:1", "beta:x:3", "beta:1:2.5", "beta:1:sampled:x", "beta:1:sampled",
     "beta:1:sampled:-1", "beta:1:4:5"],
)  # fmt: skip
def test_parse_mix_errors(mix):
    with pytest.raises(ValueError, match="mix"):
        mx.parse_mix(mix)
    with pytest.raises(ValueError, match="mix"):
        ufm.make("mixup", mix=mix)


def test_parse_mix_accepts():
    assert mx.parse_mix("0,0.5,1") == {"kind": "fixed", "lams": (0.0, 0.5, 1.0)}
    assert mx.parse_mix(0.3) == {"kind": "fixed", "lams": (0.3,)}
    assert mx.parse_mix("beta:0.4:6") == {"kind": "quadrature", "alpha": 0.4, "nodes": 6}
    assert mx.parse_mix("beta:2:sampled:0") == {"kind": "sampled", "alpha": 2.0, "seed": 0}


@pytest.mark.parametrize("mix", ["0.3,0.5", "beta:1:4", "beta:0.5:sampled:2"])
def test_hyperparameters_round_trip(mix):
    problem = ufm.make("mixup", K=3, n=5, d=4, mix=mix, lambda_H=2e-3)
    again = ufm.make("mixup", **problem.hyperparameters())
    for key in ("c1", "c2", "lam", "count"):
        np.testing.assert_array_equal(again.columns[key], problem.columns[key])
    assert float(again.lambda_H) == 2e-3


@pytest.mark.parametrize("mix", [[1 / 3, 2 / 3], "beta:0.123456789:3"])
def test_hyperparameters_round_trip_exact(mix):
    problem = ufm.make("mixup", K=3, n=5, d=4, mix=mix)
    again = ufm.make("mixup", **problem.hyperparameters())
    np.testing.assert_array_equal(again.columns["lam"], problem.columns["lam"])
    np.testing.assert_array_equal(again.columns["count"], problem.columns["count"])


# --- 2. loss ------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("classifier", ["etf", "learned"])
@pytest.mark.parametrize("mix", ["0,0.3,0.5", "beta:0.7:4", "beta:1:sampled:1"])
def test_loss_matches_numpy(loss, classifier, mix):
    K, n, d = 3, 4, 5
    problem = ufm.make("mixup", loss=loss, K=K, n=n, d=d, classifier=classifier, mix=mix,
                       w_norm=1.7, lambda_W=0.03, lambda_H=0.02)  # fmt: skip
    rng = np.random.default_rng(0)
    H = rng.standard_normal((d, problem.counts.size))
    learned = classifier == "learned"
    W = rng.standard_normal((K, d)) if learned else etf(K, d, 1.7)
    np.testing.assert_allclose(np.asarray(problem.fixed_classifier(np.float64)), etf(K, d, 1.7),
                               atol=1e-15)  # fmt: skip
    params = {"H": jnp.asarray(H)} | ({"W": jnp.asarray(W)} if learned else {})
    got = float(problem.loss(params))
    assert got == pytest.approx(float(ref_loss(problem, W, H, learned)), rel=1e-13)


# --- 3. fixed simplex ETF: solver = closed form -------------------------------------------------
FIXED_CASES = [  # (loss, K, d, w_norm, lambda_H, n)
    pytest.param(("ce", 2, 1, 1.0, 1e-3, 50), id="ce-K2-d1"),
    pytest.param(("ce", 2, 5, 2.0, 1e-3, 50), id="ce-K2-d5"),
    pytest.param(("ce", 3, 2, 2.0, 1e-3, 100), id="ce-K3-d2"),
    pytest.param(("ce", 3, 6, 0.5, 1e-4, 100), id="ce-K3-d6", marks=pytest.mark.slow),
    pytest.param(("ce", 5, 5, 1.0, 2e-3, 20), id="ce-K5-d5", marks=pytest.mark.slow),
    pytest.param(("ce", 10, 9, 1.5, 1e-3, 10), id="ce-K10-d9"),
    pytest.param(("mse", 2, 1, 1.0, 1e-3, 50), id="mse-K2-d1"),
    pytest.param(("mse", 3, 3, 2.0, 1e-2, 100), id="mse-K3-d3"),
    pytest.param(("mse", 5, 8, 0.7, 1e-3, 20), id="mse-K5-d8", marks=pytest.mark.slow),
    pytest.param(("mse", 10, 9, 1.0, 1e-4, 10), id="mse-K10-d9"),
]


@functools.cache
def solved(case, mix=MIX):
    loss, K, d, w_norm, lambda_H, n = case
    problem = ufm.make("mixup", loss=loss, K=K, n=n, d=d, w_norm=w_norm, lambda_H=lambda_H,
                       mix=mix)  # fmt: skip
    sol = ufm.solve(problem)
    return problem, sol, ufm.check(problem, sol)


@pytest.mark.parametrize("case", FIXED_CASES)
def test_fixed_etf_solver_agrees_with_closed_form(case):
    problem, sol, report = solved(case)
    assert sol.converged
    assert report.verdict == "agrees", report.reason
    H = np.asarray(sol.params["H"])
    H_ref = reference_H(problem)
    np.testing.assert_allclose(H, H_ref, atol=H_ATOL)
    np.testing.assert_allclose(np.asarray(report.theory.params["H"]), H_ref, atol=1e-11)
    W = np.asarray(problem.fixed_classifier(np.float64))
    if problem.d >= problem.K:
        np.testing.assert_allclose(W, etf(problem.K, problem.d, case[3]), atol=1e-15)
    else:  # d = K-1: another orientation; the Gram is what counts
        P = np.eye(problem.K) - 1 / problem.K
        np.testing.assert_allclose(W @ W.T, case[3] ** 2 * problem.K / (problem.K - 1) * P,
                                   atol=1e-14)  # fmt: skip
    assert report.theory.loss == pytest.approx(float(ref_loss(problem, W, H_ref, False)), rel=1e-12)


@pytest.mark.parametrize("case", [c for c in FIXED_CASES if c.values[0][0] == "ce"])
def test_fixed_etf_ce_geometry(case):
    problem, sol, _ = solved(case)
    K = problem.K
    W = np.asarray(problem.fixed_classifier(np.float64))
    H = np.asarray(sol.params["H"])
    cols = problem.columns
    c1, c2, lam = cols["c1"], cols["c2"], cols["lam"]
    scale = np.max(np.linalg.norm(H, axis=0))
    for c in range(K):
        same = H[:, (c1 == c) & (c2 == c)]
        # independent of lam, and on the classifier ray: h = t w_c with t > 0
        assert np.max(np.abs(same - same[:, :1])) < H_ATOL
        t = same[:, 0] @ W[c] / (W[c] @ W[c])
        assert t > 0 and np.linalg.norm(same[:, 0] - t * W[c]) < H_ATOL
    for m in np.flatnonzero(c1 != c2):
        Q, _ = np.linalg.qr(W[[c1[m], c2[m]]].T)  # span{w_c1, w_c2} (rank 1 when K = 2)
        Q = Q[:, :1] if K == 2 else Q
        assert np.linalg.norm(H[:, m] - Q @ (Q.T @ H[:, m])) < H_ATOL * scale
    half = np.flatnonzero((c1 != c2) & (lam == 0.5))
    Z = W @ H
    # at lam = 1/2 exactly on the c1/c2 decision boundary, with the two logits the largest
    np.testing.assert_allclose(Z[c1[half], half], Z[c2[half], half], atol=H_ATOL)
    if K == 2:
        assert np.max(np.abs(H[:, half])) < H_ATOL  # K = 2: h = 0 at lam = 1/2
    else:
        others = np.delete(Z[:, half[0]], [c1[half[0]], c2[half[0]]])
        assert Z[c1[half[0]], half[0]] > others.max() + 0.1
    props = mx.properties(problem, sol.params)
    assert props["same_class_spread"] < 1e-6 and props["boundary_gap"] < H_ATOL
    if K > 2:  # K = 2: see test_span_residual_of_a_vanishing_feature
        assert props["span_residual"] < 1e-6


def test_span_residual_of_a_vanishing_feature():
    problem, sol, report = solved(FIXED_CASES[1].values[0])  # CE, K=2, d=5
    assert report.verdict == "agrees"
    assert mx.properties(problem, sol.params)["span_residual"] < 1e-6


@pytest.mark.parametrize("case", [c for c in FIXED_CASES if c.values[0][0] == "mse"])
def test_fixed_etf_mse_linear_in_lambda(case):
    problem, sol, _ = solved(case)
    H = np.asarray(sol.params["H"])
    cols = problem.columns
    column = lambda a, b, x: np.flatnonzero(
        (cols["c1"] == a) & (cols["c2"] == b) & (cols["lam"] == x)
    )[0]
    for a, b in [(0, 1), (1, 0), (problem.K - 1, 0)]:
        pick = lambda x, a=a, b=b: H[:, column(a, b, x)]
        np.testing.assert_allclose(pick(0.5), (pick(0.25) + pick(0.75)) / 2, atol=H_ATOL)
        np.testing.assert_allclose(pick(0.25), (3 * pick(0.0) + pick(1.0)) / 4, atol=H_ATOL)


def test_direct_minimization_agrees_with_notes_equations():
    """The scalar equations of derivations/mixup.py steps 3-4 against a generic per-feature
    minimization."""
    for K, d, r, lbar in [(2, 3, 1.3, 0.2), (4, 6, 1.0, 0.5), (6, 5, 0.8, 0.05)]:
        W = np.asarray(ufm.geometry.simplex_etf(K, d, r, dtype=np.float64))
        for c1, c2, lam in [(0, 0, 0.3), (0, 1, 0.5), (1, 0, 0.8), (K - 1, 0, 0.05)]:
            y = soft_labels(K, [c1], [c2], [lam])[:, 0]
            np.testing.assert_allclose(
                ce_feature(W, lbar, c1, c2, lam), ce_feature_direct(W, lbar, y), atol=1e-9
            )


def test_worked_example():
    """The worked example of derivations/mixup.py: K=4, r=1, lambda_bar=0.5 (kappa=8/3), solved
    with n=25, lambda_H=0.005."""
    problem = ufm.make("mixup", K=4, n=25, d=4, w_norm=1.0, lambda_H=0.005, mix="0.5,0.75")
    assert problem.lambda_bar == pytest.approx(0.5, rel=1e-15)
    assert mx.kappa(4, 1.0, 0.5) == pytest.approx(8 / 3, rel=1e-15)
    assert mx.same_class_gap(4, 8 / 3) == pytest.approx(1.4599975, abs=1e-7)
    u, v = mx.mixed_gaps(4, 8 / 3, 0.75)
    assert (u, v) == (pytest.approx(1.1463570, abs=1e-7), pytest.approx(0.4442511, abs=1e-7))
    assert mx.mse_feature_scale(4, 1.0, 0.5) * 0.75 == pytest.approx(0.4090909, abs=1e-7)
    sol = ufm.solve(problem)
    assert ufm.check(problem, sol).verdict == "agrees"
    W = np.asarray(problem.fixed_classifier(np.float64))
    H = np.asarray(sol.params["H"])
    cols = problem.columns
    col = lambda a, b, x: H[:, np.flatnonzero((cols["c1"] == a) & (cols["c2"] == b)
                                              & (cols["lam"] == x))[0]]  # fmt: skip
    np.testing.assert_allclose(col(2, 2, 0.5), 1.0949981 * W[2], atol=1e-6)
    np.testing.assert_allclose(col(0, 3, 0.5), 0.6127830 * (W[0] + W[3]), atol=1e-6)
    np.testing.assert_allclose(col(1, 2, 0.75), 0.8597677 * W[1] + 0.3331883 * W[2], atol=1e-6)
    p = scipy.special.softmax(W @ col(3, 3, 0.75))
    assert p[3] == pytest.approx(0.5893757, abs=1e-6)
    z = W @ col(0, 1, 0.75)
    assert z[0] - z[1] == pytest.approx(0.7021059, abs=1e-6)


# --- 4. calibration ---------------------------------------------------------------------------
def test_calibration_improves_as_regularization_vanishes():
    """kappa = 5, 50, 500 (K=3, N=300): the logit gap z_c1 - z_c2 -> log(lam / (1 - lam))."""
    lams = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    errors = []
    for lambda_H in (1e-3, 1e-4, 1e-5):
        problem = ufm.make("mixup", K=3, n=100, d=4, lambda_H=lambda_H, mix="0.1,0.25,0.5,0.75,0.9")
        sol = ufm.solve(problem)
        assert ufm.check(problem, sol).verdict == "agrees"
        W = np.asarray(problem.fixed_classifier(np.float64))
        Z = W @ np.asarray(sol.params["H"])
        cols = problem.columns
        sel = np.flatnonzero((cols["c1"] == 0) & (cols["c2"] == 1))
        assert np.array_equal(cols["lam"][sel], lams)
        gap = Z[0, sel] - Z[1, sel]
        # (u, v) of derivations/mixup.py step 4: the gap is u - v
        kappa = 3 / (2 * 300 * lambda_H)
        np.testing.assert_allclose(gap, [np.subtract(*uv(3, kappa, x)) for x in lams], atol=1e-6)
        errors.append(np.max(np.abs(gap - np.log(lams / (1 - lams)))))
        assert mx.properties(problem, sol.params)["calibration_error"] == pytest.approx(
            errors[-1], abs=1e-6
        )
    assert errors[0] > 5 * errors[1] > 25 * errors[2], errors
    assert errors[-1] < 5e-3


# --- 5. learned classifier ----------------------------------------------------------------------
def test_learned_ce_is_a_simplex_etf():
    K = 3
    problem = ufm.make("mixup", K=K, n=100, d=4, classifier="learned", mix="beta:1:8",
                       lambda_W=5e-4, lambda_H=1e-3)  # fmt: skip
    sol = ufm.solve(problem, restarts=4)
    assert sol.converged
    report = ufm.check(problem, sol)
    assert report.verdict == "agrees", report.reason
    r_star = float(np.linalg.norm(report.theory.params["W"][0]))
    W = np.asarray(sol.params["W"])
    P = np.eye(K) - np.ones((K, K)) / K
    # measured 5e-9 relative
    np.testing.assert_allclose(W @ W.T, r_star**2 * K / (K - 1) * P, atol=1e-6 * r_star**2)
    # with W fixed at the solver's classifier, the features are the closed form of
    # derivations/mixup.py steps 3-4
    lbar = problem.lambda_bar
    cols = problem.columns
    triples = list(zip(cols["c1"], cols["c2"], cols["lam"], strict=True))
    features = lambda W: np.stack([ce_feature(W, lbar, a, b, float(x)) for a, b, x in triples], 1)
    np.testing.assert_allclose(np.asarray(sol.params["H"]), features(W), atol=1e-6)  # 5e-9
    # r* minimizes the loss over simplex-ETF classifiers (scaled W: higher loss)
    loss = lambda s: ref_loss(problem, s * W, features(s * W), True)
    assert loss(1.0) == pytest.approx(float(sol.loss), rel=1e-10)
    assert loss(1.01) > loss(1.0) and loss(0.99) > loss(1.0)


def test_learned_mse_is_not_an_etf():
    K = 3
    problem = ufm.make("mixup", loss="mse", K=K, n=100, d=4, classifier="learned",
                       mix="beta:1:8", lambda_W=5e-4, lambda_H=1e-3)  # fmt: skip
    sol = ufm.solve(problem, restarts=4)
    report = ufm.check(problem, sol)
    assert report.verdict == "agrees", report.reason
    W = np.asarray(sol.params["W"])
    G = W @ W.T
    ones = np.ones(K)
    # the soft labels all sum to 1, so the rows of W keep a mean: far from a simplex ETF
    assert ones @ G @ ones > 0.1 * np.trace(G)  # measured 1.14 tr G; an ETF has 0
    # stationarity in H: h = W^T (W W^T + lambda_bar I)^{-1} y~ (ridge, independently)
    Y = soft_labels(K, problem.columns["c1"], problem.columns["c2"], problem.columns["lam"])
    H_ref = W.T @ np.linalg.solve(G + problem.lambda_bar * np.eye(K), Y)
    np.testing.assert_allclose(np.asarray(sol.params["H"]), H_ref, atol=1e-10)  # H eliminated


# --- 6. errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw,name",
    [
        (dict(K=3, d=1), "d"),
        (dict(K=5, d=3), "d"),
        (dict(K=1), "K"),
        (dict(K=2.5), "K"),
        (dict(n=0), "n"),
        (dict(classifier="free"), "classifier"),
        (dict(loss="hinge"), "loss"),
        (dict(lambda_H=-1e-3), "lambda_H"),
        (dict(lambda_H=0.0), "lambda_H"),
        (dict(lambda_W=-1.0), "lambda_W"),
        (dict(w_norm=0.0), "w_norm"),
        (dict(w_norm=float("inf")), "w_norm"),
        (dict(mix="beta:0:3"), "mix"),
        (dict(mix="2"), "mix"),
    ],
)
def test_bad_parameters(kw, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        ufm.make("mixup", **kw)


# --- 7. extra_report ----------------------------------------------------------------------------
def test_extra_report_fixed_list():
    problem, sol, _ = solved(FIXED_CASES[4].values[0])  # CE, K=5
    K = problem.K
    extra = problem.extra_report(sol.params)
    text = json.dumps(extra, allow_nan=False)  # no inf / nan (log-odds at lam = 0, 1: None)
    assert json.loads(text) == json.loads(json.dumps(extra))
    found, predicted = extra["mixup"]["found"], extra["mixup"]["predicted"]
    for part in (found, predicted):
        keys = {"span_residual", "same_class_spread", "boundary_gap", "calibration_error", "pairs"}
        assert keys <= part.keys()
        assert len(part["pairs"]) == K * (K - 1) // 2
        assert sorted(tuple(p["classes"]) for p in part["pairs"]) == [
            (a, b) for a in range(K) for b in range(a + 1, K)
        ]
        for p in part["pairs"]:
            assert p["lam"] == [0.0, 0.25, 0.5, 0.75, 1.0]
            assert p["log_odds"][0] is None and p["log_odds"][-1] is None
            assert p["log_odds"][1] == pytest.approx(math.log(1 / 3), rel=1e-14)
    assert predicted["span_residual"] < 1e-12 and predicted["boundary_gap"] < 1e-12
    assert found["calibration_error"] == pytest.approx(predicted["calibration_error"], abs=1e-6)
    for p, q in zip(found["pairs"], predicted["pairs"], strict=True):
        np.testing.assert_allclose(p["logit_gap"], q["logit_gap"], atol=1e-6)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_extra_report_sampled_and_learned(loss):
    problem = ufm.make("mixup", loss=loss, K=3, n=4, d=3, classifier="learned",
                       mix="beta:0.5:sampled:0")  # fmt: skip
    rng = np.random.default_rng(1)
    params = {"W": jnp.asarray(rng.standard_normal((3, 3))),
              "H": jnp.asarray(rng.standard_normal((3, problem.counts.size)))}  # fmt: skip
    extra = problem.extra_report(params)
    json.dumps(extra, allow_nan=False)
    assert extra["mixup"]["found"]["pairs"] == []  # no per-pair summary for sampled columns
    assert extra["mixup"]["found"]["boundary_gap"] >= 0.0
