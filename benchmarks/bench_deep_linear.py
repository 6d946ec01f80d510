"""ufm's L-BFGS solve of the deep linear MSE UFM against the published method, in one run.

Problem (issue 3): deep linear, depth M = 3, MSE, no bias, K=10, n=100, d=64,
lambda_W1 = lambda_W2 = lambda_W3 = lambda_H = 5e-4.
  ufm:      optax L-BFGS in float64 to its default tolerance (jitted while_loop).
  baseline: full-batch SGD with momentum 0.9, lr 0.1, 30,000 steps, float32, every factor
            (H, W1, W2, W3) initialised i.i.d. N(0, 0.1^2) -- the method of Dang et al. 2023's
            public code, written here in JAX and jitted (lax.fori_loop), so it runs faster
            than their PyTorch loop would; the ratio is conservative.
Compile and run times are reported apart; run times are the median of `--repeats` seeds.
Also times the CLI end to end (`ufm solve ... --json` in a fresh process), with an empty and
with a warm persistent compilation cache.

    python benchmarks/bench_deep_linear.py [--repeats 5] [--sgd-steps 30000]
"""

import argparse

import jax
import jax.numpy as jnp
from _compare import compare  # sets jax x64 before any array exists

import ufm

HYPER = dict(loss="mse", K=10, n=100, d=64, depth=3, bias=False, lambda_W=5e-4, lambda_H=5e-4)
CLI = [
    "ufm",
    "solve",
    "deep-linear",
    "--K",
    "10",
    "--n",
    "100",
    "--d",
    "64",
    "--depth",
    "3",
    "--lambda-W",
    "5e-4",
    "--lambda-H",
    "5e-4",
    "--json",
]
SGD_INIT_STD = 0.1  # Dang et al.'s code: every factor N(0, 0.1^2)


def init32(p32, key):
    """Dang et al.'s code: every factor (H, W1, ..., WM) i.i.d. N(0, 0.1^2), float32."""
    shapes = jax.eval_shape(lambda: p32.init(key, jnp.asarray(1.0, jnp.float32)))
    keys = jax.random.split(key, len(shapes))
    return {
        name: SGD_INIT_STD * jax.random.normal(k, s.shape, jnp.float32)
        for k, (name, s) in zip(keys, sorted(shapes.items()), strict=True)
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sgd-steps", type=int, default=30_000)
    args = parser.parse_args()
    problem = ufm.make("deep-linear", **HYPER)
    compare(f"deep linear UFM, {HYPER}", problem, init32, CLI, args.repeats, args.sgd_steps)


if __name__ == "__main__":
    main()
