"""ufm's own L-BFGS (`ufm._lbfgs`) and the collapsed route of `ufm.solve`, against
independent computations: a textbook two-loop L-BFGS direction, exact quadratic minima,
scipy, and the full route on the same problems."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import ufm
from ufm import _lbfgs
from ufm.models.plain import problem as plain_problem

SOLVE = sys.modules["ufm.solve"]


def _two_loop(g, S, Y):
    """-H g by Nocedal & Wright's Algorithm 7.4, pairs in chronological order."""
    q, saved = g.copy(), []
    for s, y in reversed(list(zip(S, Y, strict=True))):
        rho = 1 / (s @ y)
        alpha = rho * (s @ q)
        q -= alpha * y
        saved.append((rho, alpha, s, y))
    q *= (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1])
    for rho, alpha, s, y in reversed(saved):
        q += s * (alpha - rho * (y @ q))
    return -q


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 0, 1], [1, 2, 0]])
def test_compact_direction_equals_two_loop(order):
    rng = np.random.default_rng(0)
    n, m = 9, 3
    A = rng.normal(size=(n, n))
    A = A @ A.T + np.eye(n)
    S = rng.normal(size=(m, n))
    Y = S @ A  # curvature pairs of a quadratic, pair j is the j-th oldest
    g = rng.normal(size=n)
    B = jnp.asarray(np.concatenate([S[order], Y[order]]))  # slot i holds pair order[i]
    gram, a = B @ B.T, B @ g
    gamma, c, slope, steepest = _lbfgs._coefficients(
        jnp.asarray(g @ g), gram, a, jnp.asarray(order)
    )
    d = -(gamma * g + np.asarray(c) @ np.asarray(B))
    reference = _two_loop(g, S, Y)
    np.testing.assert_allclose(d, reference, rtol=1e-12, atol=1e-14)
    assert not steepest and float(slope) == pytest.approx(g @ reference, rel=1e-12)
    # an empty slot holding an old pair is ignored
    age = jnp.asarray([-1, 0, 1])
    B2 = jnp.asarray(np.concatenate([[S[2], S[0], S[1]], [Y[2], Y[0], Y[1]]]))
    gamma, c, _, _ = _lbfgs._coefficients(jnp.asarray(g @ g), B2 @ B2.T, B2 @ g, age)
    d = -(gamma * g + np.asarray(c) @ np.asarray(B2))
    np.testing.assert_allclose(d, _two_loop(g, S[:2], Y[:2]), rtol=1e-12, atol=1e-14)


def test_lbfgs_minimizes_a_quadratic_and_a_rosenbrock_pytree():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(12, 12))
    A = jnp.asarray(A @ A.T + 0.1 * np.eye(12))
    b = jnp.asarray(rng.normal(size=12))
    quadratic = lambda p: 0.5 * p["x"] @ A @ p["x"] - b @ p["x"]
    tol = lambda p: jnp.asarray(1e-12)
    out = jax.jit(lambda p: _lbfgs.lbfgs(quadratic, p, tol, 500, 5))({"x": jnp.zeros(12)})
    assert out.result == ufm.RESULTS.successful
    np.testing.assert_allclose(out.params["x"], np.linalg.solve(A, b), rtol=1e-9)

    # Rosenbrock (scipy's definition, checked at one point) over two leaves of different
    # shapes: its minimizer is all ones
    def rosen(p):
        x = jnp.concatenate([p["u"].ravel(), p["v"]])
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    probe = {"u": jnp.asarray([[0.3, -1.2], [2.0, 0.1]]), "v": jnp.asarray([0.7, -0.4])}
    flat = np.concatenate([np.ravel(probe["u"]), probe["v"]])
    assert float(rosen(probe)) == pytest.approx(scipy.optimize.rosen(flat), rel=1e-14)
    start = {"u": jnp.full((2, 2), -1.0), "v": jnp.asarray([1.5, 0.5])}
    out = jax.jit(lambda p: _lbfgs.lbfgs(rosen, p, lambda p: jnp.asarray(1e-10), 2000, 3))(start)
    assert out.result == ufm.RESULTS.successful
    np.testing.assert_allclose(out.params["u"], 1.0, atol=1e-8)
    np.testing.assert_allclose(out.params["v"], 1.0, atol=1e-8)
    # mostly one evaluation per step: the first trial step is accepted
    assert int(out.evaluations) <= 1.5 * int(out.steps) + 2


HYPERS = [
    dict(loss="ce", n=[6, 4, 3, 2], bias=False),
    dict(loss="ce", n=5, bias=True, lambda_b=0.0),
    dict(loss="ce", n=[6, 4, 3, 2], bias=True, lambda_b=1e-2),
    dict(loss="mse", n=[6, 4, 3, 2], bias=False),
    dict(loss="mse", n=[6, 4, 3, 2], bias=True, lambda_b=0.0),
]


@pytest.mark.parametrize("hyper", HYPERS)
def test_collapsed_route_finds_the_full_routes_minimizer(hyper):
    problem = ufm.make("plain", K=4, d=5, lambda_W=2e-3, lambda_H=1e-3, **hyper)
    collapsed = ufm.solve(problem)
    full = ufm.solve(problem, route="full")
    assert collapsed.route == "collapsed" and full.route == "full"
    assert collapsed.converged and full.converged
    assert collapsed.params["H"].shape == full.params["H"].shape
    assert float(collapsed.loss) == pytest.approx(float(full.loss), rel=1e-11)
    # the same minimizer up to the rotation symmetry: the logits agree (CE with a free bias:
    # up to a constant shift of b, so compared centred)
    logits = lambda sol: np.asarray(problem.logits(sol.params))
    Z1, Z2 = logits(collapsed), logits(full)
    if hyper["loss"] == "ce" and hyper["bias"] and not hyper.get("lambda_b"):
        Z1, Z2 = Z1 - Z1.mean(0), Z2 - Z2.mean(0)
    np.testing.assert_allclose(Z1, Z2, atol=1e-6)
    # the gradient of the full objective at the expanded point meets the tolerance
    grad = jax.grad(problem.loss)(collapsed.params)
    norm = float(np.sqrt(sum(np.sum(np.asarray(g) ** 2) for g in jax.tree.leaves(grad))))
    assert norm == pytest.approx(float(collapsed.grad_norm), rel=1e-8)
    assert norm <= float(collapsed.grad_tol)
    # its certificate from the K class means equals the one from all N columns
    H = np.asarray(collapsed.params["H"])
    assert plain_problem._collapsed_means(H, problem.counts) is not None
    spread = H.copy()
    spread[0, 1] = np.nextafter(spread[0, 1], np.inf)  # one ulp: the all-columns bound
    assert plain_problem._collapsed_means(spread, problem.counts) is None
    fast = problem.certificate(collapsed.params, float(collapsed.loss))
    slow = problem.certificate(dict(collapsed.params, H=spread), float(collapsed.loss))
    assert fast["certified"] and slow["certified"]
    assert fast["gap"] == pytest.approx(slow["gap"], abs=1e-13)
    assert fast["grad_op_over_mu"] == pytest.approx(slow["grad_op_over_mu"], rel=1e-12)


def test_route_is_checked():
    problem = ufm.make("plain", K=3, n=2, d=4)
    with pytest.raises(ufm.InputError, match="route must be one of"):
        ufm.solve(problem, route="fast")
    deep = ufm.make("deep-linear", K=3, n=2, d=4)
    with pytest.raises(ufm.InputError, match="route='collapsed'"):
        ufm.solve(deep, route="collapsed")
    assert ufm.solve(deep).route == "full"  # auto: no collapsed form, the full route


def test_cli_route_flag():
    base = [sys.executable, "-m", "ufm.cli", "solve"]
    out = subprocess.run(
        [*base, "deep-linear", "--K", "3", "--n", "2", "--d", "4", "--route", "collapsed"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "route='collapsed'" in out.stderr
    assert "Traceback" not in out.stderr
