"""`ufm._linalg`: SPD solves, LAPACK alone or Gauss-Jordan under vmap, exact gradients."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ufm import _linalg


def test_solve_value_and_gradient_match_jnp():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((5, 5))
    A = jnp.asarray(G @ G.T + 0.1 * np.eye(5))  # symmetric positive definite, as every caller
    B = jnp.asarray(rng.standard_normal((5, 3)))
    C = jnp.asarray(rng.standard_normal((5, 3)))
    ours = lambda A, B: jnp.sum(C * _linalg.solve(A, B) ** 2)
    ref = lambda A, B: jnp.sum(C * jnp.linalg.solve(A, B) ** 2)
    np.testing.assert_allclose(ours(A, B), ref(A, B), rtol=1e-13)
    for g, h in zip(jax.grad(ours, (0, 1))(A, B), jax.grad(ref, (0, 1))(A, B), strict=True):
        np.testing.assert_allclose(g, h, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(_linalg.inverse(A) @ A, np.eye(5), atol=1e-13)


def test_solve_under_vmap_equals_per_item_solves():
    rng = np.random.default_rng(1)
    G = rng.standard_normal((4, 6, 3))
    A = jnp.asarray(G @ G.transpose(0, 2, 1) + 1e-2 * np.eye(6))  # SPD, rank-3 Gram + small
    B = jnp.asarray(rng.standard_normal((4, 6, 2)))
    batched = jax.vmap(jax.grad(lambda a, b: jnp.sum(_linalg.solve(a, b))))(A, B)
    single = jnp.stack([jax.grad(lambda a, b: jnp.sum(jnp.linalg.solve(a, b)))(a, b)
                        for a, b in zip(A, B, strict=True)])  # fmt: skip
    np.testing.assert_allclose(batched, single, rtol=1e-11, atol=1e-13)


@pytest.mark.slow
def test_vmapped_restarts_do_not_deadlock():
    """8 vmapped restarts of this problem hung at 0% CPU on 2 cores with batched LAPACK
    (two batched dtrsm calls each waiting for the other's pool threads). A subprocess with a
    timeout turns a hang into a failure instead of a stuck test run."""
    script = textwrap.dedent(
        """
        import jax
        jax.config.update("jax_enable_x64", True)
        import ufm
        p = ufm.make("deep-linear", loss="mse", K=10, n=50, d=128, depth=4)
        print(ufm.solve(p, restarts=8).converged)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=240)  # fmt: skip
    assert out.stdout.strip() == "True", out.stderr[-2000:]
