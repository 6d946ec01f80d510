"""The exact theory of imbalanced cross-entropy: ufm's convex solver against what a researcher
would use instead, in one run.

Problems: counts geometric from 100 down to 1 (K = 10, 30, 100), free bias,
mu = sqrt(lambda_W lambda_H) = 1e-3; and K = 10 with no and with a regularized bias.
  ufm.theory: `ufm.models.plain.convex.solve` (numpy/scipy: L-BFGS on the factored form,
              Newton, a proximal step), to a certified duality gap <= 1e-11 x value.
  conic:      the same reduced program written in cvxpy and solved by Clarabel (an
              interior-point conic solver; the approach of Hong & Ling 2023), default
              tolerances; skipped above K = 30, where it takes minutes.
  ufm.solve:  the factorized problem itself (K x d + d x N unknowns, d = K + 2), L-BFGS
              in JAX, for the value only (compile time excluded).
Times are the median of `--repeats` runs; agreement is |value difference| / value.

    python benchmarks/bench_convex.py [--repeats 3] [--sizes 10 30 100]
"""

import argparse
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

import ufm  # noqa: E402
from ufm.models.plain import convex  # noqa: E402

MU = 1e-3


def _median(f, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _factorized(counts, mu, bias, lambda_b):
    problem = ufm.make(
        "plain",
        K=len(counts),
        n=[int(c) for c in counts],
        d=len(counts) + 2,
        bias=bias != "none",
        lambda_b=lambda_b,
        lambda_W=mu,
        lambda_H=mu,
    )
    ufm.solve(problem)  # compile
    return lambda: float(ufm.solve(problem).loss)


def row(K: int, bias: str, lambda_b: float, repeats: int) -> None:
    counts = np.round(np.geomspace(100, 1, K))
    t_ours, ours = _median(lambda: convex.solve(counts, MU, bias, lambda_b), repeats)
    line = (
        f"K={K:<4} bias={bias:<12} ufm.theory {t_ours:8.3f} s (gap {ours.gap:.1e}, rank "
        f"{ours.rank}, converged {ours.converged})"
    )
    rel = lambda value: abs(value - ours.value) / ours.value
    if K <= 30:
        t_conic, value = _median(lambda: convex.conic(counts, MU, bias, lambda_b)[0], repeats)
        line += f" | conic {t_conic:8.3f} s x{t_conic / t_ours:6.1f}, diff {rel(value):.1e}"
        t_fact, value = _median(_factorized(counts, MU, bias, lambda_b), repeats)
        line += f" | ufm.solve {t_fact:7.3f} s x{t_fact / t_ours:6.1f}, diff {rel(value):.1e}"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 100])
    args = parser.parse_args()
    for K in args.sizes:
        row(K, "free", 0.0, args.repeats if K < 100 else 1)
    row(10, "none", 0.0, args.repeats)
    row(10, "regularized", 0.01, args.repeats)


if __name__ == "__main__":
    main()
