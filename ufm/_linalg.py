"""Solves with symmetric positive definite matrices that are safe and fast inside vmaps.

Under `jax.vmap`, `jnp.linalg.solve` becomes one batched LAPACK call, and jaxlib splits a
batch over XLA's CPU thread pool and waits for it. Two such calls running at once can hold
every thread of the pool while each waits for the other: the process hangs at 0% CPU (seen
on 2 cores with 8 vmapped restarts of the deep linear model, d=128, in `dtrsm`). So a
batched solve here is Gauss-Jordan elimination written in jax.numpy: a loop over the pivots
of elementwise updates, vectorized over the batch, with no LAPACK call at all. Without
pivoting it is stable for the symmetric positive definite matrices every caller has (a Gram
matrix plus a positive multiple of I): the pivots are the ratios of leading minors, all
positive. Unbatched solves use LAPACK. A custom VJP keeps `solve` differentiable (reverse
mode, which the solver uses).
"""

import jax
import jax.numpy as jnp


def _gauss_jordan(A: jax.Array, B: jax.Array) -> jax.Array:
    """A^{-1} B by Gauss-Jordan elimination without pivoting (A symmetric positive definite)."""
    n = A.shape[0]
    M = jnp.concatenate([A, B], axis=1)

    def eliminate(j, M):
        row = jax.lax.dynamic_index_in_dim(M, j, axis=0, keepdims=False)
        row = row / row[j]
        column = jax.lax.dynamic_index_in_dim(M, j, axis=1, keepdims=False)
        column = column.at[j].set(0.0)
        M = M - column[:, None] * row[None, :]
        return jax.lax.dynamic_update_index_in_dim(M, row, j, axis=0)

    return jax.lax.fori_loop(0, n, eliminate, M)[:, n:]


@jax.custom_batching.custom_vmap
def _solve(A: jax.Array, B: jax.Array) -> jax.Array:
    return jnp.linalg.solve(A, B)


@_solve.def_vmap
def _solve_batched(axis_size, in_batched, A, B):
    A_batched, B_batched = in_batched
    A = A if A_batched else jnp.broadcast_to(A, (axis_size, *A.shape))
    B = B if B_batched else jnp.broadcast_to(B, (axis_size, *B.shape))
    return jax.vmap(_gauss_jordan)(A, B), True


@jax.custom_vjp
def solve(A: jax.Array, B: jax.Array) -> jax.Array:
    """X = A^{-1} B for a symmetric positive definite A and a matrix B (see the module)."""
    return _solve(A, B)


def _forward(A, B):
    X = _solve(A, B)
    return X, (A, X)


def _backward(residuals, G):
    A, X = residuals
    B_bar = _solve(A, G)  # A is symmetric
    return -B_bar @ X.T, B_bar


solve.defvjp(_forward, _backward)


def inverse(A: jax.Array) -> jax.Array:
    """A^{-1} (see `solve`): for a small A applied to many right-hand sides, inverse(A) @ B
    beats a triangular solve with them on XLA's CPU backend."""
    return solve(A, jnp.eye(A.shape[0], dtype=A.dtype))
