"""A phase diagram as one sweep against the same points solved one by one, in one run.

Problem (issue 6): the plain MSE UFM, K=4, n=5, d=8, no bias, on a 64 x 64 grid of
lambda_W, lambda_H in [1e-4, 1] (log-spaced), float64, gradient norm <= 1e-10.
  sweep:    `ufm.sweep` (every point solved AND checked against ufm.theory, saved to zarr),
            timed cold (including compilation, what a user waits for) and warm.
  baseline: `ufm.solve` point by point in a Python loop (solve only, no check; compiled
            once, the compilation excluded). With --baseline-points P only the first P points
            of the grid are looped and the rate is extrapolated.
Both sides use the same starts (seed 0), so they reach the same minima; the script checks
that their losses agree.

    python benchmarks/bench_sweep.py [--size 64] [--baseline-points 4096] [--chunk-size 256]
"""

import argparse
import tempfile
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

import ufm  # noqa: E402
from ufm import sweep  # noqa: E402

FIXED = {"loss": "mse", "K": 4, "n": 5, "d": 8}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64, help="grid points per axis")
    parser.add_argument("--baseline-points", type=int, default=None, help="default: all")
    parser.add_argument("--chunk-size", type=int, default=256)
    args = parser.parse_args()
    values = np.geomspace(1e-4, 1.0, args.size)
    grid = {"lambda_W": values, "lambda_H": values}
    points = args.size**2
    print(f"plain MSE UFM {FIXED}, {args.size} x {args.size} grid, lambdas in [1e-4, 1]")
    print(f"devices: {jax.devices()}")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ds = sweep("plain", FIXED, grid, out=Path(tmp) / "cold.zarr", chunk_size=args.chunk_size)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        sweep("plain", FIXED, grid, out=Path(tmp) / "warm.zarr", chunk_size=args.chunk_size)
        warm = time.perf_counter() - start
    converged = int(ds["converged"].sum())
    agrees = int((ds["verdict"] == "agrees").sum())

    # baseline: ufm.solve in a loop, compiled once (excluded), same seed
    loop = [(i, j) for i in range(args.size) for j in range(args.size)]
    loop = loop[: args.baseline_points or points]
    ufm.solve(ufm.make("plain", **FIXED, lambda_W=1e-2, lambda_H=1e-2)).loss.block_until_ready()
    start = time.perf_counter()
    losses = []
    for i, j in loop:
        problem = ufm.make("plain", **FIXED, lambda_W=values[i], lambda_H=values[j])
        losses.append(float(ufm.solve(problem).loss))
    looped = time.perf_counter() - start
    loop_rate = len(loop) / looped
    sweep_losses = np.array([float(ds["loss"].values[i, j, 0]) for i, j in loop])
    worst = float(np.max(np.abs(sweep_losses - np.array(losses)) / np.abs(np.array(losses))))

    print(f"sweep: {converged}/{points} converged, {agrees}/{points} agree with ufm.theory")
    print(f"largest relative loss difference, sweep vs loop: {worst:.1e}")
    print()
    print(f"{'':34}{'seconds':>10}{'points/s':>12}")
    print(f"{'sweep, cold (with compilation)':34}{cold:>10.2f}{points / cold:>12.0f}")
    print(f"{'sweep, warm':34}{warm:>10.2f}{points / warm:>12.0f}")
    label = f"ufm.solve loop ({len(loop)} points)"
    print(f"{label:34}{looped:>10.2f}{loop_rate:>12.0f}")
    print(f"{'loop, extrapolated to the grid':34}{points / loop_rate:>10.2f}{loop_rate:>12.0f}")
    print()
    print(f"throughput, sweep / loop: {points / warm / loop_rate:.1f}x warm, "
          f"{points / cold / loop_rate:.1f}x cold (target >= 5x); cold total {cold:.1f} s "
          f"(target < 60 s)")


if __name__ == "__main__":
    main()
