"""The sweep's batched damped Newton route (ufm._newton): every point as `ufm.solve` finds it,
lanes that refill from a queue instead of waiting for the slowest, and the option that
chooses the route."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import ufm
from ufm import _newton
from ufm.errors import InputError
from ufm.solve import DEFAULT_GTOL, restart_keys

COUNTS = [5, 3, 2, 1]  # imbalanced: N = 11
# easy (small lambdas), near a threshold and past it (a zero or partly zero solution)
LAMBDAS = [(1e-3, 1e-3), (0.02, 0.05), (0.06, 0.06), (0.3, 0.2)]
# (setting, restarts): the MSE cases run Newton with the features eliminated
CASES = [
    pytest.param({"loss": "ce", "bias": True}, 2, id="ce-bias"),
    pytest.param({"loss": "mse", "bias": False}, 1, id="mse"),
    pytest.param({"loss": "ce", "bias": False}, 1, id="ce", marks=pytest.mark.slow),
    pytest.param({"loss": "mse", "bias": True}, 2, id="mse-bias", marks=pytest.mark.slow),
]


def _problems(setting):
    fixed = {"K": 4, "n": COUNTS, "d": 6} | setting
    return [ufm.make("plain", **fixed, lambda_W=a, lambda_H=b) for a, b in LAMBDAS]


def _solve_points(problems, seed: int, restarts: int, lanes: int):
    """`_newton.solve_points` on stacked problems, as the sweep calls it."""
    columns = zip(*(jax.tree.leaves(p) for p in problems), strict=True)
    stacked = jax.tree.unflatten(jax.tree.structure(problems[0]), [jnp.stack(c) for c in columns])
    dynamic, static = eqx.partition(stacked, eqx.is_array)
    keys, scales = restart_keys(seed, restarts, 1.0, 2.0, jnp.float64)
    keys = jnp.broadcast_to(keys, (len(problems), *keys.shape))
    gtol = jnp.asarray(DEFAULT_GTOL)

    @jax.jit
    def run(dynamic, keys):
        problem_at = lambda dyn: eqx.combine(dyn, static)
        return _newton.solve_points(problem_at, dynamic, keys, scales, gtol, lanes, 2000)

    return jax.tree.map(np.asarray, run(dynamic, keys))


@pytest.mark.parametrize("setting, restarts", CASES)
def test_each_point_equals_ufm_solve(setting, restarts):
    problems = _problems(setting)
    found, _ = _solve_points(problems, seed=3, restarts=restarts, lanes=3)
    for j, problem in enumerate(problems):
        sol = ufm.solve(problem, seed=3, restarts=restarts)
        assert np.isclose(found["loss"][j], float(sol.loss), rtol=1e-10, atol=0), LAMBDAS[j]
        assert (found["status"][j] == 0) == sol.converged, LAMBDAS[j]
        # the stored loss and gradient norm are the full problem's at the expanded point
        params = {k: jnp.asarray(v[j]) for k, v in found["params"].items()}
        assert params["H"].shape == (problem.d, problem.N)
        value, grad = jax.value_and_grad(problem.loss)(params)
        assert np.isclose(found["loss"][j], float(value), rtol=1e-14)
        norm = float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grad))))
        assert np.isclose(found["grad_norm"][j], norm, rtol=1e-6, atol=1e-15)
        assert found["restarts_converged"][j] == int(np.sum(sol.restart_converged))


def _quartic_jobs():
    """Jobs f(x) = ||x||^4 / 4 (x in R^2): Newton shrinks x by about 2/3 a step, so a start
    of norm r needs about log(r / r_tol) / log(1.5) steps: 0 for the short jobs, ~45 for
    the long ones at rows 0, 8 and 16."""
    radius = np.full(24, 3e-3)
    radius[[0, 8, 16]] = 1e5
    angle = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    return jnp.asarray(radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1))


def _quartic_minimize(x0, lanes: int):
    fun = lambda x: jnp.sum(x**2) ** 2 / 4
    evaluate = lambda jobs, x: jax.vmap(lambda z: _newton.value_grad_hessian(fun, z))(x)
    tolerance = lambda jobs, x: jnp.full(x.shape[0], 1e-8)
    run = jax.jit(lambda x0: _newton.queue_minimize(evaluate, tolerance, x0, lanes, 500))
    return jax.tree.map(np.asarray, run(x0))


def test_lanes_refill_from_the_queue():
    x0 = _quartic_jobs()
    lanes = 4
    out = _quartic_minimize(x0, lanes)
    steps = out["steps"]
    assert np.all(out["code"] == _newton.CONVERGED)
    assert np.all(np.sum(out["x"] ** 2, axis=1) ** 1.5 <= 1e-8)  # ||grad|| = ||x||^3
    long = np.zeros(24, bool)
    long[[0, 8, 16]] = True
    assert steps[long].min() >= 30 and steps[~long].max() <= 5
    # lockstep batches of 4 jobs would run as long as their slowest member: 3 batches hold a
    # long job; the queue runs the long jobs side by side while the others pass through
    lockstep = sum(steps[k : k + lanes].max() + 1 for k in range(0, 24, lanes))
    assert out["iterations"] <= steps.sum() / lanes + steps.max() + 2
    assert out["iterations"] < 0.5 * lockstep
    # a job's result does not depend on the lanes it shared
    alone = _quartic_minimize(x0, 1)
    np.testing.assert_allclose(alone["x"], out["x"], rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(alone["steps"], steps)


@pytest.mark.slow
def test_newton_escapes_the_saddle_near_zero():
    # CE at small lambdas: the origin is a saddle; tiny starts must still reach the ETF loss
    problem = ufm.make("plain", loss="ce", K=4, n=5, d=8, lambda_W=1e-3, lambda_H=1e-3)
    collapsed = problem.collapsed()
    loss, _, reduce = _newton._objective(collapsed)
    start = reduce(collapsed.init(jax.random.PRNGKey(1), jnp.asarray(1e-6)))
    x0, unravel = ravel_pytree(start)
    fun = lambda x: loss(unravel(x))
    evaluate = lambda jobs, x: jax.vmap(lambda z: _newton.value_grad_hessian(fun, z))(x)
    tolerance = lambda jobs, x: 1e-12 * jnp.maximum(jnp.linalg.norm(x, axis=-1), 1.0)
    out = _newton.queue_minimize(evaluate, tolerance, x0[None], 1, 2000)
    assert int(out["code"][0]) == _newton.CONVERGED
    assert float(fun(out["x"][0])) < 0.9 * float(fun(jnp.zeros_like(x0)))


SMALL = {"loss": "mse", "K": 3, "n": 2, "d": 4}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"solver": "bfgs"}, "solver must be one of 'auto', 'newton', 'lbfgs'"),
        ({"solver": 1}, "solver must be one of"),
        ({"solver": "newton", "method": "adam"}, "solver='newton' cannot solve this sweep"),
    ],
)
def test_bad_solver_option(kwargs, message):
    with pytest.raises(InputError, match=message):
        ufm.sweep("plain", SMALL, {"lambda_W": [1e-3, 0.1]}, **kwargs)


@pytest.mark.slow  # two compilations of a sweep (test_sweep.py runs the Newton route often)
def test_sweep_routes_agree_and_record_the_route(tmp_path):
    grid = {"lambda_W": [1e-3, 0.3], "lambda_H": [1e-3, 0.1]}
    run = lambda name, solver: ufm.sweep(
        "plain", SMALL, grid, out=tmp_path / name, check=False, solver=solver
    )
    newton, lbfgs, auto = run("n.zarr", "newton"), run("l.zarr", "lbfgs"), run("a.zarr", "auto")
    assert newton.attrs["runs"][-1]["route"] == "newton"
    assert lbfgs.attrs["runs"][-1]["route"] == "lbfgs"
    # MSE: L-BFGS with the features eliminated is the faster route, and auto takes it
    assert auto.attrs["runs"][-1]["route"] == "lbfgs"
    assert set(newton.data_vars) == set(lbfgs.data_vars)
    np.testing.assert_allclose(newton["loss"], lbfgs["loss"], rtol=1e-10)
    np.testing.assert_array_equal(newton["converged"], lbfgs["converged"])
