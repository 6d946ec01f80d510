"""ufm's L-BFGS solve of the plain CE UFM against the published method, in one run.

Problem (issue 2): CE, K=10, n=100, d=64, bias, lambda_W = lambda_H = lambda_b = 5e-4.
  ufm:      optax L-BFGS in float64 to its default tolerance (jitted while_loop).
  baseline: full-batch SGD with momentum 0.9, lr 0.1, 30,000 steps, float32 -- the method of
            the papers' public scripts, written here in JAX and jitted (lax.fori_loop), so it
            runs faster than those PyTorch loops would; the ratio is conservative.
Compile and run times are reported apart; run times are the median of `--repeats` seeds.
Also times the CLI end to end (`ufm solve ... --json` in a fresh process), with an empty and
with a warm persistent compilation cache.

    python benchmarks/bench_plain.py [--repeats 5] [--sgd-steps 30000]
"""

import argparse

import jax.numpy as jnp
from _compare import compare  # sets jax x64 before any array exists

import ufm

HYPER = dict(loss="ce", K=10, n=100, d=64, bias=True, lambda_W=5e-4, lambda_H=5e-4, lambda_b=5e-4)
CLI = [
    "ufm",
    "solve",
    "plain",
    "--loss",
    "ce",
    "--K",
    "10",
    "--n",
    "100",
    "--d",
    "64",
    "--bias",
    "--lambda-W",
    "5e-4",
    "--lambda-H",
    "5e-4",
    "--lambda-b",
    "5e-4",
    "--json",
]


def init32(p32, key):
    """ufm's own init at scale 1, in float32."""
    return p32.init(key, jnp.asarray(1.0, jnp.float32))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sgd-steps", type=int, default=30_000)
    args = parser.parse_args()
    problem = ufm.make("plain", **HYPER)
    compare(f"plain UFM, {HYPER}", problem, init32, CLI, args.repeats, args.sgd_steps)


if __name__ == "__main__":
    main()
