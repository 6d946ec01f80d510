"""NC metrics of the deep linear MSE UFM across layers and along SGD, against the closed form.

The synthetic experiment of Dang et al. 2023 (arXiv 2301.00437): K=4, d=64, all lambdas 5e-4,
balanced n=100 at depths M in {1, 3, 6, 9}, imbalanced n=(200, 100, 50, 50) at M=6; full-batch
SGD with momentum (lr 0.1, 0.9) from N(0, 0.1^2) factors, as in their code (here 10,000 steps
in float64, not 30,000, to keep the script to a few minutes on 2 CPU cores).

Left and middle: NC1 (Papyan's pinv form) and NC2 (distance of the layer's normalized
class-mean Gram from the predicted one: an orthogonal frame when balanced, the closed-form
general orthogonal frame when imbalanced) of the features entering each layer, for the
global minimizer found by `ufm.solve` (dots) and the closed form (dashed, crosses). Right:
NC1 and the Gram error of the last layer and the loss gap to the closed-form minimum along
SGD. Values at or below their float64 round-off floor (`FLOORS`) are 0 to round-off: they are
drawn as hollow markers in the grey band "round-off (exact)", never as data.

    python figures/deep_linear.py [--quick] [--out figures/out/deep_linear.png]
"""

import argparse
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import ufm  # noqa: E402
from ufm._theory import layer_quantities  # noqa: E402
from ufm.check import layer_metrics  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402

# Round-off floors. A quantity linear in the rounding errors of the features (the distance
# of a normalized Gram from an orthogonal frame or from the predicted Gram, a relative loss
# gap) can be as large as the features' relative error: a float64 product of M layers of
# width d carries up to ~M d eps, 9 x 64 x 2.2e-16 = 1.3e-13 at the deepest setting. NC1 is
# quadratic in the within-class deviations (Sigma_W is their second moment over Sigma_B's),
# so its floor is the square. At or below these, a value is 0 up to round-off: "exact".
# (Measured at the full setting: the closed form's NC1 <= 5e-30 and the solver's NC2 <= 2e-14;
# the solver's Gram error in the imbalanced case, 1e-12 .. 3e-12, is tolerance, not round-off.)
LINEAR_FLOOR = 1e-13
FLOORS = {"nc1": LINEAR_FLOOR**2, "nc2": LINEAR_FLOOR, "gram": LINEAR_FLOOR, "gap": LINEAR_FLOOR}
LABELS = {"nc1": "NC1", "nc2": "Gram error", "gap": "loss gap"}  # the trace's nc2: Gram error
SGD_STYLES = {"nc1": "-", "nc2": "-.", "gap": ":"}
WHO = ("solver", "theory")
YLABELS = {
    "nc1": r"NC1 $= \mathrm{Tr}(\Sigma_W\Sigma_B^+)/K$",
    "nc2": r"NC2: $\|\bar G/\|\bar G\| - I/\sqrt{K}\|_F$",
}


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


def title(s: dict) -> str:
    return f"deep linear MSE UFM, $K$=4, $d$={s['d']}, every $\\lambda$ = {s['lam']:g}"


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
    out["title"] = title(s)
    return out


def plot(data: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""
    return _style.render(_draw, data, out)


def _depth_colors(data: dict) -> dict[int, str]:
    depths = sorted({c["depth"] for kind in ("balanced", "imbalanced") for c in data[kind]})
    return {M: f"C{i}" for i, M in enumerate(depths)}


def _draw(data: dict):
    fig, axes = plt.subplots(2, 3, figsize=(_style.DOUBLE, 4.6), layout="constrained")
    colors = _depth_colors(data)
    letters = iter("abcdef")
    for row, kind in enumerate(("balanced", "imbalanced")):
        cases = data[kind]
        for i, case in enumerate(cases):
            color = colors[case["depth"]]
            # depths share the layer axis: shift each a little so that no point hides another
            layers = np.arange(1, case["depth"] + 1) + 0.12 * (i - (len(cases) - 1) / 2)
            for col, key in enumerate(("nc1", "nc2")):
                ax, floor = axes[row, col], FLOORS[key]
                _style.floored(ax, layers, case["theory"][key], floor, "x--", color=color, ms=4)
                _style.floored(ax, layers, case["solver"][key], floor, "o", color=color, ms=3)
            trace = case["sgd"]
            for key, style in SGD_STYLES.items():
                _style.floored(
                    axes[row, 2], trace["step"], trace[key], FLOORS[key], style, color=color
                )
        for col, key in enumerate(("nc1", "nc2")):
            ax = axes[row, col]
            ax.set(xlabel="layer $m$ (its input features)", ylabel=YLABELS[key])
            ax.set_xticks(range(1, max(c["depth"] for c in cases) + 1))
            ax.set_title(f"({next(letters)}) {kind}: {key.upper()} per layer")
            if all(np.all(np.abs(c[who][key]) <= FLOORS[key]) for c in cases for who in WHO):
                # nothing but round-off: say so, and leave room above the band for the note
                ax.set_ylim(top=FLOORS[key] * 1e3)
                ax.text(
                    0.5,
                    0.7,
                    f"{key.upper()} = 0 at every layer\n(solver and closed form,\nto round-off)",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                )
        ax = axes[row, 2]
        ax.set(xscale="log", xlabel="SGD step", ylabel="value (0 at the minimizer)")
        ax.set_title(f"({next(letters)}) {kind}: SGD, last layer")
    verdicts: dict[int, set] = {}
    for kind in ("balanced", "imbalanced"):
        for c in data[kind]:
            verdicts.setdefault(c["depth"], set()).add(c["verdict"])
    handles = [
        Line2D(
            [],
            [],
            color=colors[M],
            lw=2,
            label=f"$M$={M}" + ("" if v == {"agrees"} else f" ({', '.join(sorted(v))})"),
        )
        for M, v in sorted(verdicts.items())
    ]
    gray = "0.3"
    handles += [
        Line2D([], [], color=gray, ls="none", marker="o", ms=3, label="ufm.solve"),
        Line2D([], [], color=gray, ls="--", marker="x", ms=4, label="closed form"),
    ]
    handles += [
        Line2D([], [], color=gray, ls=SGD_STYLES[key], label=f"SGD: {LABELS[key]}")
        for key in SGD_STYLES
    ]
    labels = [h.get_label() for h in handles] + [_style.ROUNDOFF_LABEL]
    handles.append(_style.roundoff_handle())
    fig.legend(handles, labels, loc="outside lower center", ncol=5)
    agree = all(c["verdict"] == "agrees" for k in ("balanced", "imbalanced") for c in data[k])
    fig.suptitle(data["title"] + ("; every solve agrees with the closed form" if agree else ""))
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small setting for tests")
    parser.add_argument("--out", type=Path, default=Path("figures/out/deep_linear.png"))
    args = parser.parse_args(argv)
    _style.close(plot(compute(args.quick), args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
