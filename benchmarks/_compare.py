"""What every bench_<model>.py shares: ufm against the published SGD method, in one run.

ufm: `ufm.solve` (optax L-BFGS, float64, to its default tolerance: gradient norm <= 1e-9 x
weight decay x max(||params||, 1), 1e-11 to 1e-10 here). Baseline: full-batch SGD
with momentum 0.9, lr 0.1, float32, written in JAX and jitted (lax.fori_loop), so it runs
faster than the papers' PyTorch loops; the ratio is conservative. Compile and run times are
reported apart; run times are the median of `repeats` seeds. The CLI is timed end to end in a
fresh process, with an empty and with a warm persistent compilation cache.
"""

import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax.tree_utils as otu  # noqa: E402

import ufm  # noqa: E402


def sgd_baseline(problem, init32, steps: int):
    """Jitted key -> params: heavy-ball SGD (lr 0.1, momentum 0.9) in float32 from init32(key)."""
    p32 = jax.tree.map(lambda x: x.astype(jnp.float32), problem)

    @jax.jit
    def run(key):
        params = init32(p32, key)
        velocity = jax.tree.map(jnp.zeros_like, params)

        def step(_, carry):
            params, velocity = carry
            grad = jax.grad(p32.loss)(params)
            velocity = jax.tree.map(lambda v, g: 0.9 * v + g, velocity, grad)
            return jax.tree.map(lambda x, v: x - 0.1 * v, params, velocity), velocity

        params, _ = jax.lax.fori_loop(0, steps, step, (params, velocity))
        return params

    return run


def timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def cli_seconds(cli: list[str], cache_dir: str) -> float:
    env = dict(os.environ, UFM_CACHE_DIR=cache_dir)
    start = time.perf_counter()
    subprocess.run(cli, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def grad_eval_seconds(problem, params, calls: int = 200) -> float:
    """Mean time of one jitted float64 loss+grad call (dispatch included)."""
    value_and_grad = jax.jit(jax.value_and_grad(problem.loss))
    jax.block_until_ready(value_and_grad(params))
    start = time.perf_counter()
    for _ in range(calls):
        out = value_and_grad(params)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def compare(title: str, problem, init32, cli: list[str], repeats: int, sgd_steps: int) -> None:
    """Solve `problem` both ways `repeats` times (plus one compile run) and print the table."""
    theory_loss = ufm.theory(problem).loss  # None where no closed form: compare with ufm's

    sol, ufm_compile = timed(lambda: ufm.solve(problem, seed=0))
    ufm_runs, sols = [], []
    for seed in range(1, repeats + 1):
        s, t = timed(lambda s=seed: ufm.solve(problem, seed=s))
        ufm_runs.append(t)
        sols.append(s)
    sol = sols[int(np.argmax(ufm_runs))]  # report the slowest run's numbers
    ufm_steps = [int(s.steps) for s in sols]
    per_eval = grad_eval_seconds(problem, sol.params)

    run = sgd_baseline(problem, init32, sgd_steps)
    keys = [jax.random.PRNGKey(s) for s in range(repeats + 1)]
    params, sgd_compile = timed(run, keys[0])
    sgd_runs, sgd_losses = [], []
    for key in keys[1:]:
        params, t = timed(run, key)
        sgd_runs.append(t)
        p64 = jax.tree.map(lambda x: x.astype(jnp.float64), params)  # the last seed's, reported
        sgd_losses.append(float(problem.loss(p64)))
    sgd_loss = sgd_losses[-1]
    sgd_grad = float(otu.tree_norm(jax.grad(problem.loss)(p64)))
    reference = "theory" if theory_loss is not None else "ufm"
    if theory_loss is None:
        theory_loss = float(sol.loss)

    ufm_run, sgd_run = statistics.median(ufm_runs), statistics.median(sgd_runs)
    with tempfile.TemporaryDirectory() as cache:
        cold, warm = cli_seconds(cli, cache), cli_seconds(cli, cache)

    gap = lambda loss: (
        f"{(loss - theory_loss) / theory_loss:.1e}" if math.isfinite(loss) else "diverged"
    )
    print(title)
    print(
        f"device: {jax.devices()[0].device_kind}, {os.cpu_count()} CPU cores; "
        f"{reference} loss {theory_loss:.15g}"
    )
    rows = [
        ("", "ufm L-BFGS f64", f"SGD+momentum f32 ({sgd_steps} steps)"),
        ("compile [s]", f"{ufm_compile - ufm_run:.2f}", f"{sgd_compile - sgd_run:.2f}"),
        ("run, median [s]", f"{ufm_run:.4f}", f"{sgd_run:.4f}"),
        ("steps", f"{int(sol.steps)}", f"{sgd_steps}"),
        ("final loss", f"{float(sol.loss):.15g}", f"{sgd_loss:.15g}"),
        (f"loss - {reference} (rel.)", gap(float(sol.loss)), gap(sgd_loss)),
        ("final |grad|", f"{float(sol.grad_norm):.1e}", f"{sgd_grad:.1e}"),
        (
            f"converged (|grad| <= {float(sol.grad_tol):.1e})",
            f"{sol.converged}",
            f"{sgd_grad <= float(sol.grad_tol)}",
        ),
    ]
    for name, a, b in rows:
        print(f"{name:<30}{a:>20}{b:>42}")
    print(f"speed-up (run time, after compilation): {sgd_run / ufm_run:.0f}x")
    print(
        f"ufm: steps over seeds 1..{repeats} {ufm_steps}; "
        f"{ufm_run / statistics.median(ufm_steps) * 1e6:.0f} us per step (median run / median "
        f"steps) against {per_eval * 1e6:.0f} us per f64 loss+grad call"
    )
    print(
        f"SGD: {sgd_run / sgd_steps * 1e6:.0f} us per step; final losses over seeds "
        f"1..{repeats}: {', '.join(f'{x:.10g}' for x in sgd_losses)}"
    )
    print(
        f"CLI `ufm solve` end to end: {cold:.2f} s with an empty compilation cache, "
        f"{warm:.2f} s with a warm one"
    )
    sys.stdout.flush()
