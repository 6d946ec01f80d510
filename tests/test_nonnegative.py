"""Parameters constrained to be >= 0 (`AbstractProblem.nonnegative`, `ufm._bounds`): the
solver keeps them >= 0 and judges convergence by the projected gradient.

The model is a regularized least-squares problem with a nonnegative leaf H and a free leaf
W, f = 1/2 ||A vec(H) + B vec(W) - y||^2 + lambda/2 (||H||^2 + ||W||^2); its minimum is
computed independently by scipy (lsq_linear with bounds, nnls without the free leaf)."""

import json
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import ufm
import ufm.cli
from ufm._theory import Theory
from ufm.errors import InputError
from ufm.problem import AbstractProblem, Hyper


class NonnegativeLeastSquares(AbstractProblem):
    """A (M x 2d) and B (M x 2d) Gaussian, y = A x + B w + noise with x ~ offset + N(0, 1):
    offset 0 leaves most of H at the bound, a large offset none; coupling 0 takes W out of
    the data term. Only d and bounded are static (one compilation for all the data)."""

    name: ClassVar[str] = "nnls-toy"
    hypers: ClassVar[tuple[Hyper, ...]] = (
        Hyper("d", "int", 4, "rows of H (2 columns)"),
        Hyper("data_seed", "int", 0, "seed of A, B and y"),
        Hyper("lambda_W", "float", 0.1, "ridge penalty on H and W"),
        Hyper("offset", "float", 0.0, "mean of the generating H"),
        Hyper("coupling", "float", 1.0, "weight of the free leaf W in the data term"),
        Hyper("bounded", "flag", True, "H >= 0"),
    )
    d: int = eqx.field(static=True)
    bounded: bool = eqx.field(static=True)
    lambda_W: jax.Array = eqx.field(converter=jnp.asarray)
    data_seed: jax.Array = eqx.field(converter=jnp.asarray)
    offset: jax.Array = eqx.field(converter=jnp.asarray)
    coupling: jax.Array = eqx.field(converter=jnp.asarray)
    A: jax.Array
    B: jax.Array
    y: jax.Array
    collapsed_columns: ClassVar[bool] = False

    @classmethod
    def make(cls, d=4, data_seed=0, lambda_W=0.1, offset=0.0, coupling=1.0, bounded=True):
        rng = np.random.default_rng(data_seed)
        n = 2 * d
        A, B = rng.standard_normal((3 * n, n)), coupling * rng.standard_normal((3 * n, n))
        x = offset + rng.standard_normal(n)
        y = A @ x + B @ rng.standard_normal(n) + 0.1 * rng.standard_normal(3 * n)
        arrays = map(jnp.asarray, (A, B, y))
        return cls(d, bounded, float(lambda_W), data_seed, float(offset), float(coupling), *arrays)

    def nonnegative(self):
        return ("H",) if self.bounded else ()

    def loss(self, params):
        r = self.A @ params["H"].ravel() + self.B @ params["W"].ravel() - self.y
        penalty = jnp.sum(params["H"] ** 2) + jnp.sum(params["W"] ** 2)
        return 0.5 * jnp.sum(r**2) + 0.5 * self.lambda_W * penalty

    def init(self, key, scale):
        kH, kW = jax.random.split(key)
        draw = lambda k, shape: scale * jax.random.normal(k, shape, self.lambda_W.dtype)
        return {"H": draw(kH, (self.d, 2)), "W": draw(kW, (2, self.d))}

    def theory(self):
        H, W = scipy_minimizer(self)
        A, B, y, lam = host(self)
        r = A @ H.ravel() + B @ W.ravel() - y
        value = 0.5 * float(r @ r) + 0.5 * lam * float(np.sum(H**2) + np.sum(W**2))
        params = {"H": H, "W": W}
        return Theory("collapsed", None, value, "scipy", "[ours: numerics]", {"H": H}, params)

    def hyperparameters(self):
        return dict(d=self.d, data_seed=int(self.data_seed), lambda_W=float(self.lambda_W),
                    offset=float(self.offset), coupling=float(self.coupling),
                    bounded=self.bounded)  # fmt: skip

    @property
    def labels(self):
        return np.arange(2)


def scipy_minimizer(problem) -> tuple[np.ndarray, np.ndarray]:
    """The minimizer by scipy on the stacked system [A B; sqrt(lambda) I] z = [y; 0]: nnls
    when W is out of the data term (its optimum is then 0), else lsq_linear (BVLS) with
    H >= 0 (unbounded without the constraint)."""
    A, B, y, lam = host(problem)
    n, d = A.shape[1], problem.d
    if float(problem.coupling) == 0 and problem.bounded:
        H, _ = scipy.optimize.nnls(np.vstack([A, np.sqrt(lam) * np.eye(n)]), np.r_[y, np.zeros(n)])
        return H.reshape(d, 2), np.zeros((2, d))
    system = np.vstack([np.hstack([A, B]), np.sqrt(lam) * np.eye(2 * n)])
    low = np.r_[np.zeros(n) if problem.bounded else np.full(n, -np.inf), np.full(n, -np.inf)]
    z = scipy.optimize.lsq_linear(system, np.r_[y, np.zeros(2 * n)], bounds=(low, np.inf),
                                  method="bvls", tol=1e-14).x  # fmt: skip
    return z[:n].reshape(d, 2), z[n:].reshape(2, d)


def host(problem):
    return tuple(
        np.asarray(a, dtype=float) for a in (problem.A, problem.B, problem.y, problem.lambda_W)
    )


def gradients(problem, params) -> tuple[float, float]:
    """(full, projected) gradient norms in numpy, from the formulas."""
    A, B, y, lam = host(problem)
    H, W = np.asarray(params["H"]).ravel(), np.asarray(params["W"]).ravel()
    r = A @ H + B @ W - y
    gH, gW = A.T @ r + lam * H, B.T @ r + lam * W
    pH = np.where((H == 0) & (gH > 0), 0.0, gH)
    full = np.sqrt(np.sum(gH**2) + np.sum(gW**2))
    return full, np.sqrt(np.sum(pH**2) + np.sum(gW**2))


RESTARTS = 3  # every solve: vmapped restarts, one compilation per `bounded`


def solved_and_scipy(problem):
    sol = ufm.solve(problem, restarts=RESTARTS)
    H, W = scipy_minimizer(problem)
    assert sol.converged, sol.status
    assert bool(np.all(np.asarray(sol.restart_converged)))  # every restart, vmapped
    np.testing.assert_allclose(sol.restart_losses, problem.theory().loss, rtol=1e-12)
    assert np.all(np.asarray(sol.params["H"]) >= 0)
    return sol, H, W


@pytest.mark.parametrize(
    "hyper, active",
    [
        (dict(data_seed=0), 6),  # 6 of the 8 entries of H at 0 (scipy's BVLS)
        (dict(data_seed=1, lambda_W=1e-4), 3),
        (dict(data_seed=0, coupling=0.0), 6),  # W out of the data term: scipy's nnls
    ],
)
def test_active_constraints_match_scipy_and_grad_norm_is_projected(hyper, active):
    problem = NonnegativeLeastSquares.make(**hyper)
    sol, H, W = solved_and_scipy(problem)
    assert int(np.sum(H == 0)) == active  # the case has the active set it is meant to have
    found = {k: np.asarray(v) for k, v in sol.params.items()}
    np.testing.assert_array_equal(found["H"] == 0, H == 0)  # the same active set, exactly
    scale = max(np.linalg.norm(H), np.linalg.norm(W), 1.0)
    assert np.max(np.abs(found["H"] - H)) <= 1e-8 * scale
    assert np.max(np.abs(found["W"] - W)) <= 1e-8 * scale
    full, projected = gradients(problem, found)
    assert float(sol.grad_norm) == pytest.approx(projected, rel=1e-4)  # rounding ~1e-15
    assert float(sol.grad_norm) <= float(sol.grad_tol)
    assert full > 1e6 * float(sol.grad_tol)  # the bound is binding: unprojected, far from 0
    assert "projected" in sol.status and sol.summary()["nonnegative"] == ["H"]
    report = ufm.check(problem, sol)
    assert report.verdict == "agrees", report.reason


def test_interior_minimum_is_the_unconstrained_one():
    bounded = NonnegativeLeastSquares.make(offset=5.0)
    sol, H, _ = solved_and_scipy(bounded)
    plain = ufm.solve(NonnegativeLeastSquares.make(offset=5.0, bounded=False))
    assert np.all(H > 0) and plain.converged
    assert np.all(np.asarray(sol.params["H"]) > 0)
    for k in ("H", "W"):
        np.testing.assert_allclose(sol.params[k], plain.params[k], rtol=0, atol=1e-8)
    full, projected = gradients(bounded, sol.params)
    assert full == projected == pytest.approx(float(sol.grad_norm), rel=1e-4)
    assert float(sol.loss) == pytest.approx(float(plain.loss), rel=1e-12)
    assert "nonnegative" not in plain.summary() and "projected" not in plain.status


def test_cli_json_reports_converged_projected(capsys):
    ufm.register("nnls-toy", NonnegativeLeastSquares)
    try:
        code = ufm.cli.main(["solve", "nnls-toy", "--restarts", str(RESTARTS), "--json"])
    finally:
        ufm.registry.REGISTRY.remove("nnls-toy")
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["converged"] is True and report["nonnegative"] == ["H"]
    assert report["grad_norm"] <= report["grad_tol"]
    assert report["check"]["verdict"] == "agrees"


def test_unknown_name_and_landscape_refused():
    class Misnamed(NonnegativeLeastSquares):
        def nonnegative(self):
            return ("X",)

    with pytest.raises(InputError, match=r"names \['X'\], which are not parameters"):
        ufm.solve(Misnamed.make())
    with pytest.raises(InputError, match="nonnegative parameters .*unconstrained problems"):
        ufm.landscape(NonnegativeLeastSquares.make())


@pytest.mark.slow
def test_sweep_vmaps_bounded_grid_points():
    # ~10 s: one more compilation (the sweep's vmapped, sharded chunk)
    ufm.register("nnls-toy", NonnegativeLeastSquares)
    try:
        grid = {"data_seed": [0, 1, 2], "offset": [0.0, 5.0]}
        ds = ufm.sweep("nnls-toy", {"d": 4}, grid, seeds=2, restarts=2)
    finally:
        ufm.registry.REGISTRY.remove("nnls-toy")
    assert bool(ds["converged"].all()) and set(ds["verdict"].values.ravel()) == {"agrees"}
    for seed in grid["data_seed"]:
        for offset in grid["offset"]:
            minimum = NonnegativeLeastSquares.make(data_seed=seed, offset=offset).theory().loss
            found = ds["loss"].sel(data_seed=seed, offset=offset).values
            np.testing.assert_allclose(found, minimum, rtol=1e-12)
