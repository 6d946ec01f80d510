"""A phase diagram as one sweep against the same points solved one by one, in one run.

Problem (issue 6): the plain MSE UFM, K=4, n=5, d=8, no bias, on a 64 x 64 grid of
lambda_W, lambda_H in [1e-4, 1] (log-spaced), float64, the default gradient tolerance.
  sweep, checked: `ufm.sweep(...)`, the default: every point solved, compared with
            ufm.theory, its NC metrics and regime computed, saved to zarr; cold (the first
            sweep in the process: compilation included, what a user waits for) and warm.
  sweep, numerics only: `ufm.sweep(..., check=False)`: the same without the theory.
  baseline: `ufm.solve` point by point in a Python loop (solve only), and, on the first
            --check-points points, `ufm.solve` + `ufm.check` (the checked sweep's work).
Loops are timed after one solve that compiles. Both sides use the same starts (seed 0),
and the script checks that their losses agree.

    python benchmarks/bench_sweep.py [--size 64] [--check-points 256] [--chunk-size 256]
"""

import argparse
import tempfile
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402
from _compare import timed  # noqa: E402

import ufm  # noqa: E402

FIXED = {"loss": "mse", "K": 4, "n": 5, "d": 8}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64, help="grid points per axis")
    parser.add_argument("--check-points", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=256)
    args = parser.parse_args()
    values = np.geomspace(1e-4, 1.0, args.size)
    grid = {"lambda_W": values, "lambda_H": values}
    points = args.size**2
    print(f"plain MSE UFM {FIXED}, {args.size} x {args.size} grid, lambdas in [1e-4, 1]")
    print(f"devices: {jax.devices()}")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("checked, cold (compiles)", True), ("checked, warm", True)]
        runs += [("numerics only, warm", False)]
        for k, (name, check) in enumerate(runs):
            run = lambda: ufm.sweep(  # noqa: B023
                "plain",
                FIXED,
                grid,
                check=check,  # noqa: B023
                out=Path(tmp) / f"{k}.zarr",  # noqa: B023
                chunk_size=args.chunk_size,
            )
            result, seconds = timed(run)
            if k == 0:
                ds = result
            rows.append((f"sweep, {name}", points, seconds))
    converged = int(ds["converged"].sum())
    agrees = int((ds["verdict"] == "agrees").sum())

    problem = lambda i, j: ufm.make("plain", **FIXED, lambda_W=values[i], lambda_H=values[j])
    ufm.check(problem(0, 0), ufm.solve(problem(0, 0)))  # compile
    pairs = [(i, j) for i in range(args.size) for j in range(args.size)]
    losses, seconds = timed(lambda: [float(ufm.solve(problem(i, j)).loss) for i, j in pairs])
    rows.append(("loop: ufm.solve", points, seconds))
    some = pairs[: args.check_points]
    _, seconds = timed(
        lambda: [ufm.check(problem(i, j), ufm.solve(problem(i, j))) for i, j in some]
    )
    rows.append(("loop: ufm.solve + ufm.check", len(some), seconds))
    found = ds["loss"].values[..., 0].ravel()
    worst = float(np.max(np.abs(found - np.array(losses)) / np.abs(np.array(losses))))

    print(f"checked sweep: {converged}/{points} converged, {agrees}/{points} agree with theory")
    print(f"largest relative loss difference, sweep vs loop: {worst:.1e}")
    print()
    print(f"{'':36}{'points':>8}{'seconds':>10}{'points/s':>11}")
    for name, n, seconds in rows:
        print(f"{name:36}{n:>8}{seconds:>10.2f}{n / seconds:>11.0f}")
    rate = {name: n / seconds for name, n, seconds in rows}
    solve_loop, check_loop = rate["loop: ufm.solve"], rate["loop: ufm.solve + ufm.check"]
    print()
    print("throughput ratios (issue 6 target: >= 5x the ufm.solve loop, < 60 s cold)")
    for name, _, _ in rows[:3]:
        print(
            f"  {name}: {rate[name] / solve_loop:.1f}x the ufm.solve loop, "
            f"{rate[name] / check_loop:.1f}x the solve + check loop"
        )


if __name__ == "__main__":
    main()
