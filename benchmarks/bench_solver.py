"""The solver against its own limit and against optax's L-BFGS, and the collapsed route at
large N, in one run.

1. Overhead (the headline plain CE problem, K=10, n=100, d=64, bias, lambdas 5e-4; all
   columns optimized, ``route="full"``): per method the steps, loss-and-gradient
   evaluations, the solve time, and the overhead ratio = solve time / (steps x the time of
   one evaluation inside a compiled loop). ufm's L-BFGS (`ufm._lbfgs`) against optax's
   L-BFGS with its zoom line search (``method="optax-lbfgs"``, ufm's default before).
   Then the same problem on the collapsed route (``route="auto"``, the default).
2. Large N (K=10, d=64, n = N/K, every lambda 5e-5, inside the collapse threshold
   10 sqrt(n) lambda < 1 at every N): the collapsed route (solve over the class means, expand,
   full gradient) and, up to --full-max, the full route; each N in a fresh process, so that
   its peak memory (ru_maxrss) is its own. Times are after compilation (the second solve,
   another seed); the first solve's time is printed too.
3. K=1000, d=1024, n=10 on the collapsed route, at lambda = 1e-4 (inside the collapse
   threshold: a simplex ETF).

Times are wall-clock medians of --repeats solves (CPU time beside them: on a shared machine
the wall clock includes waiting).

    python benchmarks/bench_solver.py [--repeats 5] [--full-max 10000] [--skip-large]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

import ufm  # noqa: E402

HEADLINE = dict(
    loss="ce", K=10, n=100, d=64, bias=True, lambda_W=5e-4, lambda_H=5e-4, lambda_b=5e-4
)
SOLVE = sys.modules["ufm.solve"]  # the module (ufm.solve is the function)


def timed(fn, repeats: int):
    """(output, median wall seconds, median CPU seconds) of `repeats` calls after one warm-up."""
    out = jax.block_until_ready(fn())
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = jax.block_until_ready(fn())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return out, statistics.median(walls), statistics.median(cpus)


def evaluation_seconds(problem, params, repeats: int) -> float:
    """One loss-and-gradient evaluation inside a compiled loop of 100 (no dispatch cost)."""
    value_and_grad = jax.value_and_grad(problem.loss)

    def step(_, x):
        return jax.tree.map(lambda a, g: a - 1e-6 * g, x, value_and_grad(x)[1])

    loop = jax.jit(lambda x: jax.lax.fori_loop(0, 100, step, x))
    _, wall, cpu = timed(lambda: loop(params), repeats)
    return wall / 100, cpu / 100


def counted_evaluations(problem, params, method: str) -> int:
    """How many times `method`'s loop evaluates the loss (a host counter; run untimed)."""
    calls = []

    def fun(x):
        jax.debug.callback(lambda: calls.append(1))
        return problem.loss(x)

    tol = lambda x: SOLVE.tolerance(problem, x, jnp.asarray(SOLVE.DEFAULT_GTOL))
    run = SOLVE.minimizer(method, jnp.asarray(1e-2), 3)
    jax.block_until_ready(jax.jit(lambda p: run(fun, p, tol, 10_000))(params))
    return len(calls)


def overhead(repeats: int) -> None:
    problem = ufm.make("plain", **HEADLINE)
    start = problem.init(jax.random.PRNGKey(1), jnp.asarray(1.0))
    eval_wall, eval_cpu = evaluation_seconds(problem, start, repeats)
    print(f"1. overhead, plain CE {HEADLINE}")
    print(
        f"   one evaluation in a compiled loop: {eval_wall * 1e3:.3f} ms wall, "
        f"{eval_cpu * 1e3:.3f} ms CPU; ratio = solve / (steps x evaluation), wall and CPU"
    )
    print(f"   {'method':28s} {'steps':>6s} {'evals':>6s} {'wall ms':>8s} {'cpu ms':>8s} "
          f"{'ratio':>6s} {'ratio cpu':>9s} {'|grad|':>9s}")  # fmt: skip
    for method, route in (("lbfgs", "full"), ("optax-lbfgs", "full"), ("lbfgs", "auto")):
        run = lambda m=method, r=route: ufm.solve(problem, seed=1, method=m, route=r)
        sol, wall, cpu = timed(run, repeats)
        steps = int(sol.steps)
        evals = counted_evaluations(problem, start, method) if route == "full" else None
        full = route == "full"
        ratio = f"{wall / (steps * eval_wall):6.2f}" if full else "     -"
        ratio_cpu = f"{cpu / (steps * eval_cpu):9.2f}" if full else "        -"
        name = f"{method}, route={sol.route}"
        print(f"   {name:28s} {steps:6d} {evals or '-':>6} {wall * 1e3:8.1f} {cpu * 1e3:8.1f} "
              f"{ratio} {ratio_cpu} {float(sol.grad_norm):9.2e}")  # fmt: skip


def _one_size(K: int, n: int, d: int, route: str, lam: float) -> dict:
    """Solve one size twice (compile, then measure) in this process; peak memory."""
    hyper = HEADLINE | dict(K=K, n=n, d=d, lambda_W=lam, lambda_H=lam, lambda_b=lam)
    problem = ufm.make("plain", **hyper)
    start = time.perf_counter()
    jax.block_until_ready(ufm.solve(problem, route=route, progress=False).loss)
    first = time.perf_counter() - start
    start = time.perf_counter()
    sol = ufm.solve(problem, seed=1, route=route, progress=False)
    jax.block_until_ready(sol.loss)
    return {
        "first": first,
        "warm": time.perf_counter() - start,
        "steps": int(sol.steps),
        "converged": sol.converged,
        "route": sol.route,
        "grad_norm": float(sol.grad_norm),
        "loss": float(sol.loss),
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def _child(K: int, n: int, d: int, route: str, lam: float) -> dict:
    command = [sys.executable, __file__, "--child", f"{K},{n},{d},{route},{lam}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def large(full_max: int, skip_large: bool) -> None:
    print("2. large N, plain CE, K=10, d=64, lambdas 5e-5 (each size in a fresh process)")
    print(f"   {'N':>9s} {'route':>9s} {'first s':>8s} {'warm s':>8s} {'steps':>6s} "
          f"{'conv':>5s} {'|grad|':>9s} {'loss':>17s} {'peak GB':>8s}")  # fmt: skip
    sizes = [10**3, 10**4, 10**5] + ([] if skip_large else [10**6])
    for N in sizes:
        for route in ("auto", "full"):
            if route == "full" and N > full_max:
                continue
            r = _child(10, N // 10, 64, route, 5e-5)
            print(f"   {N:9d} {r['route']:>9s} {r['first']:8.2f} {r['warm']:8.3f} "
                  f"{r['steps']:6d} {r['converged']!s:>5s} {r['grad_norm']:9.2e} "
                  f"{r['loss']:17.15f} {r['peak_gb']:8.2f}")  # fmt: skip
    if skip_large:
        return
    print("3. K=1000, d=1024, n=10 (N=10^4), lambdas 1e-4, collapsed route")
    r = _child(1000, 10, 1024, "auto", 1e-4)
    print(
        f"   first {r['first']:.1f} s, warm {r['warm']:.1f} s, steps {r['steps']}, "
        f"converged {r['converged']}, |grad| {r['grad_norm']:.2e}, peak {r['peak_gb']:.2f} GB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--full-max", type=int, default=10_000, help="largest N on the full route")
    parser.add_argument("--skip-large", action="store_true", help="stop at N = 10^5")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        K, n, d, route, lam = args.child.split(",")
        print(json.dumps(_one_size(int(K), int(n), int(d), route, float(lam))))
        return
    print(f"device: {jax.devices()[0].device_kind}, {os.cpu_count()} CPU cores")
    overhead(args.repeats)
    large(args.full_max, args.skip_large)


if __name__ == "__main__":
    main()
