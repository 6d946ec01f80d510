"""ufm's L-BFGS solve of the perturbed-vicinity UFM against SGD, in one run.

Problem (issue 4): vicinity UFM, K=10, n=100, d=64, lambda_W = lambda_H = 5e-4,
beta = 0.01 (paper units beta^T = N beta = 10), H0 = the collapsed minimizer plus noise of
relative size 0.5 (seed 0): no closed form, so the reference is ufm's own minimum, whose
gradient norm meets the default tolerance.
  ufm:      optax L-BFGS over W in float64, H eliminated in closed form (ridge regression
            towards H0), to the default tolerance on the gradient of (W, H).
  baseline: full-batch SGD with momentum 0.9, lr 0.1, 30,000 steps, float32, from
            W ~ N(0, 0.1^2) and H = H0 (the paper published no code; this is the method of the
            other UFM papers' code, written in JAX and jitted, so the ratio is conservative).
Compile and run times are reported apart; run times are the median of `--repeats` seeds.
Also times the CLI end to end, with an empty and with a warm persistent compilation cache.

    python benchmarks/bench_vicinity.py [--repeats 5] [--sgd-steps 30000]
"""

import argparse

import jax
import jax.numpy as jnp
from _compare import compare  # sets jax x64 before any array exists

import ufm

HYPER = dict(K=10, n=100, d=64, lambda_W=5e-4, lambda_H=5e-4, beta=0.01, noise=0.5)
CLI = "ufm solve vicinity --K 10 --n 100 --d 64 --lambda-W 5e-4 --lambda-H 5e-4 --beta 0.01"
CLI = CLI.split() + ["--noise", "0.5", "--json"]


def init32(p32, key):
    """W i.i.d. N(0, 0.1^2), H = H0, float32."""
    W = 0.1 * jax.random.normal(key, (p32.K, p32.d), jnp.float32)
    return {"W": W, "H": p32.H0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sgd-steps", type=int, default=30_000)
    args = parser.parse_args()
    problem = ufm.make("vicinity", **HYPER)
    compare(f"vicinity UFM, {HYPER}", problem, init32, CLI, args.repeats, args.sgd_steps)


if __name__ == "__main__":
    main()
