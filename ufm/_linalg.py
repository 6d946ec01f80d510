"""Dense solves that are safe inside vmapped solver loops on the CPU.

Under `jax.vmap`, `jnp.linalg.solve` becomes one batched LAPACK call, and jaxlib splits a
batch over XLA's CPU thread pool and waits for it. Two such calls running at once can hold
every thread of the pool while each waits for the other: the process hangs at 0% CPU (seen
on 2 cores with 8 vmapped restarts of the deep linear model, d=128, in `dtrsm`). Here the
batch is a `lax.map` instead (`jax.custom_batching.sequential_vmap`), so every LAPACK call
is unbatched; a custom VJP keeps it differentiable (reverse mode, which the solver uses).
Only on the CPU: other platforms (GPU) keep the batched solve, where one kernel per batch
is what makes a vmapped sweep fast (one launch per point was 50x slower on an H100).
"""

import jax
import jax.numpy as jnp

_cpu_solve = jax.custom_batching.sequential_vmap(jnp.linalg.solve)


def _sequential_solve(A, B):
    """The solve for the platform it is compiled for (decided at lowering)."""
    return jax.lax.platform_dependent(A, B, cpu=_cpu_solve, default=jnp.linalg.solve)


@jax.custom_vjp
def solve(A: jax.Array, B: jax.Array) -> jax.Array:
    """X = A^{-1} B for a square A and a matrix B, batched sequentially under vmap."""
    return _sequential_solve(A, B)


def _forward(A, B):
    X = _sequential_solve(A, B)
    return X, (A, X)


def _backward(residuals, G):
    A, X = residuals
    B_bar = _sequential_solve(A.T, G)
    return -B_bar @ X.T, B_bar


solve.defvjp(_forward, _backward)


def inverse(A: jax.Array) -> jax.Array:
    """A^{-1} (see `solve`): for a small A applied to many right-hand sides, inverse(A) @ B
    beats a triangular solve with them on XLA's CPU backend."""
    return solve(A, jnp.eye(A.shape[0], dtype=A.dtype))
