"""Phase-diagram sweeps on the batched Newton route against the L-BFGS route and a loop of
`ufm.solve`, in one run (issue 20, part 4).

Problems: the plain UFM, K=4, n=5, d=8, no bias, float64, the default tolerance:
  MSE on a 64 x 64 grid of lambda_W, lambda_H in [1e-4, 1] (log-spaced; bench_sweep.py's),
  CE on a 32 x 32 grid of the same range.
Rows, each warm (after a run that compiles):
  sweep, auto:    `ufm.sweep(...)`, checked against the theory and numerics only: the
                  default route (CE: Newton; MSE: L-BFGS with the features eliminated);
  sweep, newton:  `ufm.sweep(..., solver="newton")`: batched damped Newton on the
                  collapsed problem (`ufm._newton`), numerics only;
  sweep, lbfgs:   `ufm.sweep(..., solver="lbfgs")`, numerics only (the route before);
  loop:           `ufm.solve` point by point in a Python loop (solve only) over every
                  `--stride`-th point of the grid.
Rates are points per wall second and per CPU second (all threads; the machine may be shared).
Goals (issue 20): the MSE sweep >= 10x the ufm.solve loop; CE sweeps >= 500 points/s warm.

    python benchmarks/bench_sweep_newton.py [--stride 4] [--chunk-size 256]
"""

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

import ufm  # noqa: E402

BASE = {"K": 4, "n": 5, "d": 8}
CASES = (("mse", 64), ("ce", 32))


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _case(loss: str, size: int, stride: int, chunk_size: int) -> list[tuple]:
    values = np.geomspace(1e-4, 1.0, size)
    grid = {"lambda_W": values, "lambda_H": values}
    fixed = BASE | {"loss": loss}
    rows, results = [], {}
    for name, solver, check in (
        ("sweep, auto, checked", "auto", True),
        ("sweep, auto, numerics only", "auto", False),
        ("sweep, newton, numerics only", "newton", False),
        ("sweep, lbfgs, numerics only", "lbfgs", False),
    ):
        options = {"check": check, "solver": solver, "chunk_size": chunk_size}
        run = lambda: ufm.sweep("plain", fixed, grid, **options)  # noqa: B023
        run()  # compiles
        results[name], wall, cpu = _timed(run)
        rows.append((name, size * size, wall, cpu))
    pairs = [(i, j) for i in range(size) for j in range(size)][::stride]
    problem = lambda i, j: ufm.make("plain", **fixed, lambda_W=values[i], lambda_H=values[j])
    ufm.solve(problem(*pairs[0]))  # compiles
    sols, wall, cpu = _timed(lambda: [ufm.solve(problem(i, j)) for i, j in pairs])
    rows.append(("loop: ufm.solve", len(pairs), wall, cpu))
    newton = results["sweep, auto, numerics only"]
    loop_loss = np.array([float(s.loss) for s in sols])
    sweep_loss = np.array([float(newton["loss"].values[i, j, 0]) for i, j in pairs])
    print(f"\nplain {loss.upper()} UFM {BASE}, {size} x {size} grid, lambdas in [1e-4, 1]")
    for name, ds in results.items():
        converged, agrees = int(ds["converged"].sum()), int((ds["verdict"] == "agrees").sum())
        route = ds.attrs["runs"][-1]["route"]
        print(f"  {name} (route {route}): {converged}/{size * size} converged, {agrees} agree")
    print(f"  loop: {sum(s.converged for s in sols)}/{len(sols)} converged")
    worst = np.max(np.abs(sweep_loss - loop_loss) / np.abs(loop_loss))
    print(f"  largest relative loss difference, auto sweep vs loop: {worst:.1e}")
    print(f"  {'':32}{'points':>8}{'wall s':>9}{'pts/s':>9}{'pts/CPU-s':>11}{'x loop':>8}")
    loop_rate = rows[-1][1] / rows[-1][2]
    for name, n, wall, cpu in rows:
        rate = n / wall
        print(f"  {name:32}{n:>8}{wall:>9.2f}{rate:>9.0f}{n / cpu:>11.0f}{rate / loop_rate:>8.1f}")
    return [(loss, name, n / wall, n / wall / loop_rate) for name, n, wall, _ in rows]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stride", type=int, default=4, help="loop over every k-th point")
    parser.add_argument("--chunk-size", type=int, default=256)
    args = parser.parse_args()
    print(f"devices: {jax.devices()}")
    rates = [r for loss, size in CASES for r in _case(loss, size, args.stride, args.chunk_size)]
    by = {(loss, name): (rate, ratio) for loss, name, rate, ratio in rates}
    print("\ngoals (issue 20)")
    for check in ("checked", "numerics only"):
        ratio = by[("mse", f"sweep, auto, {check}")][1]
        met = "met" if ratio >= 10 else "NOT met"
        print(f"  MSE 64x64 sweep ({check}) >= 10x the ufm.solve loop: {ratio:.1f}x, {met}")
        rate = by[("ce", f"sweep, auto, {check}")][0]
        met = "met" if rate >= 500 else "NOT met"
        print(f"  CE 32x32 sweep ({check}) >= 500 points/s warm: {rate:.0f}, {met}")


if __name__ == "__main__":
    main()
