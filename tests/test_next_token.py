"""The next-token UFM (ufm.models.next_token): its loss against mixup's (the shared soft-label
objective), its convex bound against cvxpy, the one-hot case against the plain model's
simplex ETF, the bigram counts against a Counter, bad input, and the CLI."""

import collections
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm import cli
from ufm.errors import InputError
from ufm.models import next_token as nt
from ufm.models.next_token.data import synthetic_contexts


def _random_features(problem, seed=0):
    """A random classifier W and features H (the true ones, not the solver's S)."""
    M = problem.weights.size
    rng = np.random.default_rng(seed)
    return rng.normal(size=(problem.K, problem.d)), rng.normal(size=(problem.d, M))


def _solver_params(problem, W, H):
    """The solver's variables of (W, H): S = H D^{1/2}, written out here in numpy."""
    S = np.asarray(H) * np.sqrt(np.asarray(problem.weights))[None, :]
    return {"W": jnp.asarray(W), "S": jnp.asarray(S)}


def test_loss_is_the_documented_sum():
    """f = sum_m pi_m CE(W h_m, p_m) + lW/2 |W|^2 + lH/2 sum_m pi_m |h_m|^2, in numpy, at
    the solver's S = H D^{1/2}; features(params) gives H back."""
    p = ufm.make("next-token", K=5, d=3, lambda_W=0.3, lambda_H=0.7)
    W, H = _random_features(p)
    params = _solver_params(p, W, H)
    np.testing.assert_allclose(np.asarray(p.feature_columns(params)), H, rtol=1e-14)
    P, pi = np.asarray(p.targets), np.asarray(p.weights)
    Z = W @ H
    lse = np.log(np.exp(Z - Z.max(0)).sum(0)) + Z.max(0)
    expected = pi @ (lse - np.sum(P * Z, 0)) + 0.15 * np.sum(W**2) + 0.35 * pi @ np.sum(H**2, 0)
    assert float(p.loss(params)) == pytest.approx(expected, rel=1e-13)
    assert float(p.weight_decay()) == 0.3  # min(lambda_W, lambda_H): the penalty on S is uniform
    grad = jax.grad(p.loss)(params)
    for tangent in p.symmetry_tangents(params):  # W -> W Q^T, S -> Q S leave f unchanged
        slope = sum(float(jnp.vdot(grad[k], tangent[k])) for k in ("W", "S"))
        assert abs(slope) <= 1e-12 * float(p.loss(params))


def test_mixup_is_a_next_token_problem_with_its_weights():
    """Mixup (learned W, CE) equals the next-token UFM on its columns with pi = counts/N and
    lambda_H = N lambda_H(mixup): one objective, two parametrizations."""
    mix = ufm.make("mixup", K=3, n=10, d=4, classifier="learned", lambda_W=0.02,
                   lambda_H=3e-3, mix="0.2,0.5,0.9")  # fmt: skip
    counts = np.asarray(mix.counts)
    contexts = nt.Contexts(np.asarray(mix.targets), counts / counts.sum(), np.arange(counts.size))
    p = nt.NextTokenProblem.from_contexts(contexts, 4, 0.02, 30 * 3e-3)
    for seed in range(3):
        W, H = _random_features(p, seed)
        mixed = float(mix.loss({"W": jnp.asarray(W), "H": jnp.asarray(H)}))
        assert float(p.loss(_solver_params(p, W, H))) == pytest.approx(mixed, rel=1e-13)


def _cvxpy_minimum(P, pi, mu):
    import cvxpy as cp

    K, M = P.shape
    Q = cp.Variable((K, M))
    Z = Q @ np.diag(1 / np.sqrt(pi))
    data = sum(pi[m] * (cp.log_sum_exp(Z[:, m]) - P[:, m] @ Z[:, m]) for m in range(M))
    problem = cp.Problem(cp.Minimize(data + mu * cp.normNuc(Q)))
    problem.solve(solver="CLARABEL")
    return problem.value


@pytest.mark.parametrize("mu", [1e-2, 0.1])
def test_convex_bound_matches_cvxpy(mu):
    ctx = synthetic_contexts(5, 1.0, None, False, 1)
    bound = nt.convex_bound(ctx.targets, ctx.weights, mu)
    assert bound.converged and bound.gap <= 1e-10
    assert bound.value == pytest.approx(_cvxpy_minimum(ctx.targets, ctx.weights, mu), rel=1e-6)


def test_solver_reaches_the_bound_and_stays_above_it_below_the_rank():
    wide = ufm.make("next-token", K=6, d=6, lambda_W=1e-2, lambda_H=1e-2)
    narrow = ufm.make("next-token", K=6, d=2, lambda_W=1e-2, lambda_H=1e-2)
    bound = wide.bound()
    assert 2 < bound.rank <= 6
    sol = ufm.solve(wide, restarts=2)
    report = ufm.check(wide, sol)
    assert report.verdict == "agrees", report.reason
    assert abs(float(sol.loss) - bound.value) <= 1e-9 * bound.value
    assert not narrow.theory().applicable and "lower bound, not attained" in narrow.theory().reason
    low = ufm.solve(narrow, restarts=2)
    assert float(low.loss) > bound.value + 1e-6
    assert narrow.certificate(low.params, float(low.loss))["dual"] <= bound.value + 1e-12


@pytest.mark.slow  # ~25 s: the K = 64 convex bound and a solve
def test_zipfian_K64_converges_and_its_features_are_the_convex_minimizer():
    """Zipfian contexts (pi_m down to ~1/(64 H_64) = 3e-3 of the mass, lambda 1e-3): one
    restart reaches the gradient test in the solver's S, and at d = 64 >= the convex
    minimizer's rank the logits W features(params) are the program's logits Z (independent
    of the factorization) and the loss its certified minimum."""
    p = ufm.make("next-token", K=64, d=64)
    bound = p.bound()
    assert bound.converged and bound.rank <= 64
    sol = ufm.solve(p, restarts=1)
    assert sol.converged, sol.status
    assert float(sol.loss) == pytest.approx(bound.value, rel=1e-9)
    Z = np.asarray(sol.params["W"]) @ np.asarray(p.feature_columns(sol.params))
    Z_scaled = np.asarray(sol.params["W"]) @ np.asarray(sol.params["S"])
    np.testing.assert_allclose(Z_scaled, Z * np.sqrt(np.asarray(p.weights)), atol=1e-12)
    assert np.linalg.norm(Z - bound.logits) <= 1e-4 * np.linalg.norm(bound.logits)
    assert ufm.check(p, sol).verdict == "agrees"


def test_one_hot_is_the_plain_etf():
    """One-hot balanced targets: the plain CE UFM with n = 1 and lambda_H / K, solved here
    independently by the plain model, and the convex program give one minimum."""
    K, d, lW, lH = 5, 4, 2e-3, 5e-3
    p = ufm.make("next-token", source="one-hot", K=K, d=d, lambda_W=lW, lambda_H=lH)
    plain = ufm.make("plain", loss="ce", K=K, n=1, d=d, lambda_W=lW, lambda_H=lH / K)
    assert p.theory().geometry == "simplex_etf"
    assert p.theory().loss == pytest.approx(plain.theory().loss, rel=1e-13)
    assert p.bound().value == pytest.approx(plain.theory().loss, rel=1e-9)
    sol = ufm.solve(p, restarts=1)
    assert ufm.check(p, sol).verdict == "agrees"
    W = np.asarray(sol.params["W"])
    U = W / np.linalg.norm(W, axis=1, keepdims=True)
    off = (U @ U.T)[~np.eye(K, dtype=bool)]
    np.testing.assert_allclose(off, -1 / (K - 1), atol=1e-6)


def test_bigram_counts_match_a_counter():
    stream = np.random.default_rng(0).integers(0, 6, 500)
    C = nt.bigram_counts(stream, 6)
    counter = collections.Counter(zip(stream[:-1].tolist(), stream[1:].tolist(), strict=True))
    for (a, b), c in counter.items():
        assert C[a, b] == c
    assert C.sum() == len(stream) - 1
    ctx = nt.contexts_from_counts(C)
    firsts = collections.Counter(stream[:-1].tolist())
    for m, a in enumerate(ctx.tokens):
        assert ctx.weights[m] == pytest.approx(firsts[a] / (len(stream) - 1))
        np.testing.assert_allclose(ctx.targets[:, m], C[a] / firsts[a])


@pytest.mark.parametrize(
    ("hyper", "word"),
    [
        ({"source": "trigram"}, "source"),
        ({"d": 0}, "d"),
        ({"K": 1}, "K"),
        ({"lambda_W": 0.0}, "lambda_W"),
        ({"lambda_H": -1.0}, "lambda_H"),
        ({"zipf_exponent": -0.5}, "zipf_exponent"),
        ({"language_seed": -1}, "language_seed"),
    ],
)
def test_bad_input_names_the_parameter(hyper, word):
    with pytest.raises(InputError, match=word):
        ufm.make("next-token", **hyper)


def test_cli_solve_sweep_and_bad_input(capsys, tmp_path):
    assert cli.main(["solve", "next-token", "--source", "synthetic", "--K", "8", "--d", "8"]) == 0
    out = capsys.readouterr().out
    assert "bound" in out and "AGREES" in out
    argv = ["sweep", "next-token", "--K", "6", "--d", "6", "--grid", "lambda_H=1e-3,1e-2"]
    argv += ["--out", str(tmp_path / "s.zarr"), "--json", "--no-progress"]
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["points"] == 2 and summary["verdicts"] == {"agrees": 2}
    assert cli.main(["solve", "next-token", "--d", "0"]) == 2
    err = capsys.readouterr().err
    assert "d must be" in err and "Traceback" not in err


@pytest.mark.slow
def test_bigram_source_from_the_corpus():
    """V = 40: every context of the corpus stream, weights from its counts (first run builds
    the corpus, ~20 s); the solver reaches the certified bound where d >= its rank."""
    p = ufm.make("next-token", source="bigram", K=40, d=40, lambda_W=1e-2, lambda_H=1e-2)
    assert np.asarray(p.weights).sum() == pytest.approx(1.0)
    assert p.weights.size <= 40
    sol = ufm.solve(p, restarts=1, max_steps=50_000)  # rare contexts: a tiny gradient tolerance
    assert ufm.check(p, sol).verdict == "agrees"
    with pytest.raises(InputError, match="V"):
        ufm.make("next-token", source="bigram", K=10**9)


def test_solve_is_jittable_float64():
    p = ufm.make("next-token", K=4, d=3)
    assert jax.jit(p.loss)(p.init(jax.random.PRNGKey(0), 1.0)).dtype == jnp.float64


def test_the_derivation_gives_zero_residuals():
    from derivations import next_token as dn

    assert all(expr == 0 for expr in dn.derive().values())
