"""NC metrics of the deep linear MSE UFM across layers and along SGD, against the closed form.

The synthetic experiment of Dang et al. 2023 (arXiv 2301.00437): K=4, d=64, all lambdas 5e-4,
balanced n=100 at depths M in {1, 3, 6, 9}, imbalanced n=(200, 100, 50, 50) at M=6; full-batch
SGD with momentum (lr 0.1, 0.9) from N(0, 0.1^2) factors, as in their code (here 10,000 steps
in float64, not 30,000, to keep the script to a few minutes on 2 CPU cores).

Left and middle: NC1 (Papyan's pinv form) and NC2 (distance of the layer's normalized
class-mean Gram from the predicted one: an orthogonal frame when balanced, the closed-form
general orthogonal frame when imbalanced) of the features entering each layer, for the
global minimizer found by `ufm.solve` (dots) and the closed form (dashed). Right: the same
quantities for the last layer and the loss gap to the closed-form minimum along SGD.

    python figures/deep_linear.py [--quick] [--out figures/out/deep_linear.png]
"""

import argparse
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import ufm  # noqa: E402
from ufm._theory import layer_quantities  # noqa: E402
from ufm.check import layer_metrics  # noqa: E402

FLOOR = 1e-16
LABELS = {"nc1": "NC1", "nc2": "Gram error", "gap": "loss gap"}


def settings(quick: bool) -> dict:
    if quick:
        return dict(d=8, lam=5e-3, balanced=(10, (1, 3)), imbalanced=((20, 10, 5, 5), 3), steps=400)
    return dict(
        d=64,
        lam=5e-4,
        balanced=(100, (1, 3, 6, 9)),
        imbalanced=((200, 100, 50, 50), 6),
        steps=10_000,
    )


def gram_error(found: np.ndarray, predicted: np.ndarray) -> float:
    unit = lambda G: G / np.linalg.norm(G)
    return float(np.linalg.norm(unit(found) - unit(predicted)))


def layer_curves(problem, params, theory) -> dict[str, list[float]]:
    """Per layer: NC1, NC2 as distance from an orthogonal frame (0 when balanced, the GOF's
    value when imbalanced), and the distance from the predicted class-mean Gram."""
    metrics = layer_metrics(problem, params)
    found = [layer_quantities(L, problem.labels, problem.K) for L in problem.layers(params)]
    pairs = zip(found, theory.layers, strict=True)
    return {
        "nc1": [m["nc1"] for m in metrics],
        "nc2": [m["nc2_of"] for m in metrics],
        "gram": [gram_error(f["Hbar_gram"], p["Hbar_gram"]) for f, p in pairs],
    }


def sgd_trajectory(problem, steps: int, every: int, lr: float = 0.1, seed: int = 0):
    """Full-batch SGD with momentum from N(0, 0.1^2) factors; params every `every` steps."""
    shapes = jax.eval_shape(lambda: problem.init(jax.random.PRNGKey(0), 1.0))
    keys = jax.random.split(jax.random.PRNGKey(seed), len(shapes))
    params = {
        k: 0.1 * jax.random.normal(key, s.shape, s.dtype)
        for key, (k, s) in zip(keys, sorted(shapes.items()), strict=True)
    }
    opt = optax.sgd(lr, momentum=0.9)
    grad = jax.grad(problem.loss)

    def step(carry, _):
        p, state = carry
        updates, state = opt.update(grad(p), state, p)
        return (optax.apply_updates(p, updates), state), None

    def chunk(carry, _):
        carry, _ = jax.lax.scan(step, carry, None, length=every)
        return carry, carry[0]

    _, snapshots = jax.jit(lambda c: jax.lax.scan(chunk, c, None, length=steps // every))(
        (params, opt.init(params))
    )
    return snapshots


def run_case(problem, steps: int) -> dict:
    theory = ufm.theory(problem)
    # restarts one by one: vmapped restarts hang on CPU at depth 6, d=64 (open bug, see README)
    sols = [ufm.solve(problem, seed=i, init_scale=s) for i, s in enumerate((0.5, 1.0, 2.0))]
    sol = min(sols, key=lambda x: (not x.converged, float(x.loss)))
    report = ufm.check(problem, sol)
    every = max(steps // 50, 1)
    snaps = sgd_trajectory(problem, steps, every)
    trace = {"step": [], "nc1": [], "nc2": [], "gap": []}
    for i in range(steps // every):
        params = jax.tree.map(lambda x, i=i: x[i], snaps)
        curves = layer_curves(problem, params, theory)
        trace["step"].append((i + 1) * every)
        trace["nc1"].append(curves["nc1"][-1])
        trace["nc2"].append(curves["gram"][-1])
        trace["gap"].append(float(problem.loss(params)) / theory.loss - 1)
    return {
        "depth": problem.depth,
        "verdict": report.verdict,
        "solver": layer_curves(problem, sol.params, theory),
        "theory": layer_curves(problem, theory.params, theory),
        "sgd": trace,
    }


def compute(quick: bool = False) -> dict:
    s = settings(quick)
    common = dict(loss="mse", K=4, d=s["d"], lambda_W=s["lam"], lambda_H=s["lam"])
    n, depths = s["balanced"]
    out = {"balanced": [], "imbalanced": []}
    for M in depths:
        print(f"balanced, depth {M} ...", flush=True)
        out["balanced"].append(
            run_case(ufm.make("deep-linear", n=n, depth=M, **common), s["steps"])
        )
    n_imb, M = s["imbalanced"]
    print(f"imbalanced, depth {M} ...", flush=True)
    problem = ufm.make("deep-linear", n=n_imb, depth=M, **common)
    out["imbalanced"].append(run_case(problem, s["steps"]))
    out["title"] = f"deep linear MSE UFM, K=4, d={s['d']}, lambda={s['lam']:g}"
    return out


def plot(data: dict, out: Path) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(10, 5.6), constrained_layout=True)
    for row, kind in enumerate(("balanced", "imbalanced")):
        for case in data[kind]:
            layers = np.arange(1, case["depth"] + 1)
            for col, key in enumerate(("nc1", "nc2")):
                ax = axes[row, col]
                (line,) = ax.plot(layers, np.maximum(case["solver"][key], FLOOR), "o")
                ax.plot(
                    layers, np.maximum(case["theory"][key], FLOOR), "--", color=line.get_color()
                )
                line.set_label(f"M={case['depth']} ({case['verdict']})")
            ax = axes[row, 2]
            trace = case["sgd"]
            for key, style in (("nc1", "-"), ("nc2", "--"), ("gap", ":")):  # nc2: Gram error
                ax.plot(
                    trace["step"],
                    np.maximum(np.abs(trace[key]), FLOOR),
                    style,
                    label=f"{LABELS[key]}, M={case['depth']}",
                )
        for col, name in enumerate(("NC1", "NC2: distance from an OF")):
            ax = axes[row, col]
            ax.set(yscale="log", xlabel="layer m (its input features)", ylabel=name)
            ax.set_title(f"{kind}: {name}", fontsize=9)
            ax.legend(fontsize=6)
        ax = axes[row, 2]
        ax.set(xscale="log", yscale="log", xlabel="SGD step")
        ax.set_title(f"{kind}, last layer along SGD (theory: 0)", fontsize=9)
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle(data["title"] + "; dots: ufm.solve, dashed: closed form", fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small setting for tests")
    parser.add_argument("--out", type=Path, default=Path("figures/out/deep_linear.png"))
    args = parser.parse_args(argv)
    plot(compute(args.quick), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
