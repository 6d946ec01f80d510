"""The census of stationary points (`ufm.landscape`) against its baselines, in one run.

Problem: deep linear MSE UFM, K=10, n=5, d=16, M=3, lambda_W = lambda_H = 0.0175 (just below
the zero threshold 0.0182 of derivations/deep_linear.py step 4, where the collapsed minimum
and W = H = 0 are both local minima), 256 restarts, default tolerance; 1472 unknowns.
  census: `ufm.landscape(problem, 256)`: the vmapped restarts, grouping, a dense Hessian per
          group; cold (compilation included: what a user waits for) and warm.
  restarts baseline: `ufm.solve(problem, restarts=1, seed=s, init_scale=...)` for
          s = 0..255 in a Python loop (after one call that compiles), with the census's init
          scales (0.5x to 2x): the same work, one start at a time.
  Hessian: at the global minimum, off the orbit, the dense path (jax.hessian + eigvalsh,
          every eigenvalue) against Lanczos (scipy eigsh on Hessian-vector products).
Times are wall-clock seconds; ratios are baseline / ufm.

    python benchmarks/bench_landscape.py [--restarts 256]
"""

import argparse
import os

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402
from _compare import timed  # noqa: E402

import ufm  # noqa: E402
from ufm import _hessian  # noqa: E402

HYPER = dict(loss="mse", K=10, n=5, d=16, depth=3, lambda_W=0.0175, lambda_H=0.0175)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--restarts", type=int, default=256)
    args = parser.parse_args()
    R = args.restarts
    problem = ufm.make("deep-linear", **HYPER)
    cold_result, cold = timed(lambda: ufm.landscape(problem, R))
    result, warm = timed(lambda: ufm.landscape(problem, R))
    ufm.solve(problem, restarts=1, seed=0)  # compiles the one-start solve
    scales = 2.0 ** np.linspace(-1.0, 1.0, R)  # the census's spread of init scales
    losses, loop = timed(
        lambda: [
            float(ufm.solve(problem, restarts=1, seed=s, init_scale=scales[s]).loss)
            for s in range(R)
        ]
    )

    best = result.groups[0]
    tangents = problem.symmetry_tangents(best.params)
    dense, t_dense = timed(
        lambda: _hessian.spectrum(problem, best.params, tangents, 6, 1e-4, "dense")
    )
    lanczos, t_lanczos = timed(
        lambda: _hessian.spectrum(problem, best.params, tangents, 6, 1e-4, "lanczos")
    )
    agree = float(np.max(np.abs(np.subtract(dense.smallest, lanczos.smallest))))

    print(f"deep linear UFM {HYPER}, {R} restarts, {dense.unknowns} unknowns")
    print(f"device: {jax.devices()[0].device_kind}, {os.cpu_count()} CPU cores")
    print(f"census: {result.converged}/{R} converged; {result.describe()}")
    print(f"closed form {result.theory_loss}; loop of solves: {len(set(np.round(losses, 10)))} "
          f"distinct losses, lowest {min(losses):.10g}")  # fmt: skip
    rows = [
        ("census, cold (compile included) [s]", f"{cold:.2f}", ""),
        ("census, warm [s]", f"{warm:.2f}", ""),
        ("  of which restarts / analysis [s]",
         f"{result.seconds['restarts']:.2f} / {result.seconds['analysis']:.2f}", ""),
        (f"{R} restarts: vmapped vs a loop of ufm.solve [s]",
         f"{result.seconds['restarts']:.2f}", f"{loop:.2f}"),
        ("Hessian at the global minimum: dense vs Lanczos [s]", f"{t_dense:.2f}",
         f"{t_lanczos:.2f}"),
    ]  # fmt: skip
    for name, a, b in rows:
        print(f"{name:<55}{a:>16}{b:>10}")
    print(f"restarts speed-up (loop / vmapped, warm): {loop / result.seconds['restarts']:.1f}x")
    print(f"Hessian: Lanczos / dense time {t_lanczos / t_dense:.2f}x; bottom eigenvalues agree to "
          f"{agree:.1e}; orbit dimension {dense.symmetry_zeros}, index {dense.index}")  # fmt: skip
    print(f"cold census {cold:.1f} s ({'under' if cold < 60 else 'OVER'} a minute)")
    assert cold_result.describe() == result.describe()


if __name__ == "__main__":
    main()
