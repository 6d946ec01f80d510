"""The perturbed-vicinity UFM of Tirer, Huang & Niles-Weed (ICML 2023, arXiv 2210.16658).

    f(W, H; H0) = ||W H - Y||^2/(2N) + lW/2 ||W||^2 + lH/2 ||H||^2 + beta/2 ||H - H0||^2

in canonical units (docs/convention.md; the paper's beta^T = N beta), on the worked example
of derivations/vicinity.py,
K=4, n=5, d=6, lW=0.05, lH=0.01, with H0 the collapsed minimizer plus Gaussian noise.

Top row: the central path, i.e. the gradient flow dH/dtau = -grad L(H) of the reduced loss
from noisy H0 (noise 0.3, 1, 3; two seeds each). Left: NC1 (trace ratio) with the late
e^{-2 lH tau} decay. Middle: e^{2 lH tau} Tr Sigma_W (decreasing) and e^{2 lH tau}
Tr Sigma_B (increasing) over their tau=0 values: Thm 3.1. Right: NC1 of the minimizer of
f(.; H0) over NC1(H0) against beta (noise 0.05) from `ufm.solve` (dots), with the
linear-response prediction H* + F[H0 - H*] (solid) and the explicit step H0 - grad L(H0)/beta
(dashed, valid for beta >> max(1/N, lH)).
Bottom: left, the same against lH and lW scaled by a common factor (beta = 0.5): lH lowers
NC1, lW raises it. Middle and right: the singular values of the blocks F_kk and F_kk' of the
large-beta operator F (Eq. 5) at a collapsed H0, against Thm 4.2 (dotted: extreme values) and
the full predicted spectrum (solid staircase), for the worked example (beta=5) and the
paper's Fig. 1 setting (K=4, n=10, d=10, beta^T=100, lW^T=sqrt 2, lH^T=0.5 so c<1). F_kk' has
rank 1: its other singular values are 0 to round-off (below `SV_FLOOR`) and are drawn as
hollow markers in the grey band "round-off (exact)".

    python figures/vicinity.py [--quick] [--out figures/out/vicinity.png]
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
from matplotlib.lines import Line2D  # noqa: E402

import ufm  # noqa: E402
from ufm.models.vicinity import (  # noqa: E402
    central_path,
    eq5_spectrum,  # noqa: E402
    linear_response,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402

# Round-off floor of the singular values of F's blocks: F's entries are O(1) (its diagonal
# blocks have singular values in [0.9, 1]) and carry relative rounding errors of a few eps,
# so the computed singular values are off by up to ~(d n) eps ||F|| = 100 x 2.2e-16 ~ 2e-14
# (d n <= 100 here). The off-diagonal block has rank 1: its other singular values are 0 and
# come out at or below this; they are drawn as exact, not as data.
SV_FLOOR = 1e-13
# the worked example of derivations/vicinity.py
BASE = dict(K=4, n=5, d=6, lambda_W=0.05, lambda_H=0.01)
SPECTRA = (  # (label, ufm.make keywords) for the Thm 4.2 panels
    ("worked example: K=4, n=5, d=6, $\\beta$=5", dict(BASE, beta=5.0)),
    (
        "paper Fig. 1: K=4, n=10, d=10, $\\beta^T$=100",
        dict(K=4, n=10, d=10, lambda_W=float(np.sqrt(2)), lambda_H=0.5, beta=100.0, units="paper"),
    ),
)

TAU_MAX = 5.0  # in units of 1/lambda_H: the in-span within-class part is gone by then
SWEEP_NOISE = 0.05  # small, so first-order predictions hold to ~noise^2
SWEEP_BETA = 0.5  # the lambda sweeps: beta^T = 10, large enough for the explicit step


def settings(quick: bool) -> dict:
    if quick:
        return dict(
            flows=((0.3, 0), (1.0, 1), (3.0, 2)),
            tau_points=60,
            beta_values=np.geomspace(1e-2, 1e2, 5),
            factors=np.geomspace(0.1, 20.0, 4),
            spectra=SPECTRA[:1],
        )
    return dict(
        flows=tuple((noise, seed) for noise in (0.3, 1.0, 3.0) for seed in (0, 1)),
        tau_points=400,
        beta_values=np.geomspace(1e-2, 1e2, 17),
        factors=np.geomspace(0.1, 20.0, 13),
        spectra=SPECTRA,
    )


def flows(s: dict) -> list[dict]:
    taus = np.linspace(0.0, TAU_MAX / BASE["lambda_H"], s["tau_points"])
    out = []
    for noise, seed in s["flows"]:
        problem = ufm.make("vicinity", **BASE, noise=noise, noise_seed=seed)
        path = central_path.flow(problem, taus)
        within = np.asarray(path.scaled_within)
        between = np.asarray(path.scaled_between)
        out.append(
            {
                "noise": noise,
                "seed": seed,
                "tau": taus.tolist(),
                "nc1": np.asarray(path.nc1).tolist(),
                "within": (within / within[0]).tolist(),
                "between": (between / between[0]).tolist(),
                "steps": int(path.steps),
                "monotonicity": central_path.monotonicity(path),
            }
        )
    return out


def sweep(name: str, values, beta: float) -> dict:
    base = ufm.make("vicinity", **BASE, beta=beta, noise=SWEEP_NOISE, noise_seed=0)
    curve = linear_response.nc1_curve(base, name, values)
    ref = curve["nc1_H0"]
    rel = np.abs(curve["nc1"] / curve["linear_response"] - 1)
    return {
        "parameter": name,
        "values": curve["values"].tolist(),
        "solved": (curve["nc1"] / ref).tolist(),
        "linear_response": (curve["linear_response"] / ref).tolist(),
        "explicit_step": (curve["explicit_step"] / ref).tolist(),
        "nc1_H0": ref.tolist(),
        "converged": bool(np.all(curve["converged"])),
        "max_rel_error_linear_response": float(rel.max()),
    }


def spectrum(label: str, kwargs: dict) -> dict:
    problem = ufm.make("vicinity", **kwargs)
    check = linear_response.theorem_4_2_check(problem)
    K, n, d = problem.K, problem.counts[0], problem.d
    lW, lH, beta = float(problem.lambda_W), float(problem.lambda_H), float(problem.beta)
    full = eq5_spectrum(K, n, d, lW, lH, beta)
    off = np.asarray(check["off_singular_values"])
    off_predicted = np.zeros_like(off)
    off_predicted[0] = check["predicted"]["off_max"]
    errors = dict(check["errors"], off_spectrum=float(np.max(np.abs(off - off_predicted))))
    return {
        "label": label,
        "canonical": {"K": K, "n": n, "d": d, "lambda_W": lW, "lambda_H": lH, "beta": beta},
        "c": K * float(np.sqrt(n * lW * lH)),
        "diag": np.sort(check["diag_singular_values"]).tolist(),
        "off": off.tolist(),
        "predicted": check["predicted"],
        "spectrum": [(float(v), int(m)) for v, m in full],
        "errors": errors,
        "max_error": max(errors.values()),
        "off_rank": check["found"]["off_rank"],
        "holds": bool(check["holds"]),
    }


def compute(quick: bool = False) -> dict:
    s = settings(quick)
    print("gradient flows ...", flush=True)
    out = {"flows": flows(s)}
    print("beta sweep ...", flush=True)
    out["beta"] = sweep("beta", s["beta_values"], beta=5.0)
    out["lambdas"] = []
    for name in ("lambda_H", "lambda_W"):
        print(f"{name} sweep ...", flush=True)
        curve = sweep(name, BASE[name] * s["factors"], beta=SWEEP_BETA)
        out["lambdas"].append(curve | {"factors": s["factors"].tolist()})
    print("Thm 4.2 spectra ...", flush=True)
    out["spectra"] = [spectrum(label, kwargs) for label, kwargs in s["spectra"]]
    N = BASE["K"] * BASE["n"]
    out["validity"] = max(1 / N, BASE["lambda_H"])  # explicit step: beta >> this
    out["lambda_H"] = BASE["lambda_H"]
    out["title"] = (
        "vicinity UFM (Tirer et al. 2023), K=4, n=5, d=6, $\\lambda_W$=0.05, $\\lambda_H$=0.01 "
        "(canonical units)"
    )
    return out


def _flow_label(f: dict) -> str:
    return f"noise {f['noise']:g}, seed {f['seed']}"


def plot(data: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""
    return _style.render(_draw, data, out)


def _draw(data: dict):
    fig = plt.figure(figsize=(_style.DOUBLE, 5.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=(1, 1.08))
    axes = np.array([top.subplots(1, 3), bottom.subplots(1, 3)])
    lH = data["lambda_H"]
    noises = sorted({f["noise"] for f in data["flows"]})
    flow_color = {noise: f"C{i}" for i, noise in enumerate(noises)}

    ax = axes[0, 0]
    for f in data["flows"]:
        ax.plot(f["tau"], f["nc1"], color=flow_color[f["noise"]])
    last = max(data["flows"], key=lambda f: f["nc1"][-1])
    tau = np.asarray(last["tau"])
    ref = last["nc1"][-1] * np.exp(-2 * lH * (tau - tau[-1]))
    keep = tau >= 0.4 * tau[-1]
    ax.plot(tau[keep], 3 * ref[keep], ":", color="k")
    ax.set(yscale="log", xlabel="flow time $\\tau$", ylabel="NC1 = Tr$\\Sigma_W$ / Tr$\\Sigma_B$")
    ax.set_title("(a) NC1 along the flow (Thm 3.1)")

    ax = axes[0, 1]
    for f in data["flows"]:
        color = flow_color[f["noise"]]
        ax.plot(f["tau"], f["within"], color=color)
        ax.plot(f["tau"], f["between"], "--", color=color)
    ax.set(yscale="log", xlabel="flow time $\\tau$", ylabel="value / value at $\\tau$ = 0")
    ax.set_title("(b) scaled traces (Thm 3.1)")

    ax = axes[0, 2]
    b = data["beta"]
    ax.plot(b["values"], b["linear_response"], "-", color="k", lw=0.9)
    ax.plot(b["values"], b["explicit_step"], "--", color="0.45", lw=0.9)
    ax.plot(b["values"], b["solved"], "o", color="C3", ms=3.5, zorder=3)
    ax.axvline(data["validity"], color="0.6", ls=":", lw=0.9)
    ax.set(
        xscale="log",
        yscale="log",
        ylim=(0.5 * min(b["solved"]), 1.5),
        xlabel="$\\beta$ (canonical; $\\beta^T = N\\beta$)",
        ylabel="NC1(minimizer) / NC1($H_0$)",
    )
    ax.set_title(f"(c) against $\\beta$ (noise {SWEEP_NOISE:g})")
    handles = [Line2D([], [], color=flow_color[n], label=f"(a, b) noise {n:g}") for n in noises] + [
        Line2D([], [], color="k", ls=":", label="(a) $\\propto e^{-2\\lambda_H\\tau}$"),
        Line2D([], [], color="0.3", label="(b) $e^{2\\lambda_H\\tau}$Tr$\\Sigma_W$ (decreases)"),
        Line2D(
            [],
            [],
            color="0.3",
            ls="--",
            label="(b) $e^{2\\lambda_H\\tau}$Tr$\\Sigma_B$ (increases)",
        ),
        Line2D([], [], color="C3", ls="none", marker="o", ms=3.5, label="(c) ufm.solve"),
        Line2D([], [], color="k", lw=0.9, label="(c) linear response"),
        Line2D([], [], color="0.45", ls="--", lw=0.9, label="(c) explicit step"),
        Line2D([], [], color="0.6", ls=":", lw=0.9, label="(c) $\\beta$ = max(1/N, $\\lambda_H$)"),
    ]
    top.legend(handles=handles, loc="outside lower center", ncol=4)

    ax = axes[1, 0]
    names = {"lambda_H": "\\lambda_H", "lambda_W": "\\lambda_W"}
    handles = []
    for i, c in enumerate(data["lambdas"]):
        color = f"C{4 + i}"
        base = c["values"][0] / c["factors"][0]
        ax.plot(c["factors"], c["linear_response"], "-", color=color, lw=0.9)
        ax.plot(c["factors"], c["explicit_step"], "--", color=color, lw=0.9)
        ax.plot(c["factors"], c["solved"], "o", color=color, ms=3.5, zorder=3)
        handles.append(
            Line2D(
                [],
                [],
                color=color,
                marker="o",
                ms=3.5,
                label=f"(d) ${names[c['parameter']]}$ = {base:g} $\\times$ factor",
            )
        )
    ax.set(xscale="log", xlabel="factor on $\\lambda$ (the other fixed)")
    ax.set(ylabel="NC1(minimizer) / NC1($H_0$)")
    ax.set_title(f"(d) against $\\lambda$ ($\\beta$ = {SWEEP_BETA:g})")

    for col, key in ((1, "diag"), (2, "off")):
        ax = axes[1, col]
        for i, sp in enumerate(data["spectra"]):
            color, marker = f"C{i}", "os"[i % 2]
            values = np.asarray(sp[key])
            x = (np.arange(values.size) + 0.5) / values.size
            if key == "diag":
                full = np.sort(np.concatenate([np.full(m, v) for v, m in sp["spectrum"]]))
                ax.step(x, full, where="mid", color=color, lw=1, alpha=0.6)
                for name in ("diag_min", "diag_max"):
                    ax.axhline(sp["predicted"][name], color=color, ls=":", lw=0.9)
                ax.plot(x, values, marker, color=color, ms=3, ls="none")
            else:
                ax.axhline(sp["predicted"]["off_max"], color=color, ls=":", lw=0.9)
                _style.floored(ax, x, values, SV_FLOOR, marker, color=color, ms=3)
        if key == "diag":
            ax.set(ylabel="singular value of $F_{kk}$")
            ax.set_title("(e) diagonal block $F_{kk}$ of Eq. 5")
        else:
            ax.set(ylabel="singular value of $F_{kk'}$")
            ax.set_title("(f) off-diagonal block $F_{kk'}$: rank 1")
        ax.set(xlabel="rank / ($d n$), sorted")
    handles += [
        Line2D(
            [],
            [],
            color=f"C{i}",
            marker="os"[i % 2],
            ms=3,
            ls="none",
            label=f"(e, f) {sp['label']} ($c$ = {sp['c']:.2f})",
        )
        for i, sp in enumerate(data["spectra"])
    ]
    handles += [
        Line2D([], [], color="0.3", ls="none", marker="o", ms=3.5, label="(d) ufm.solve"),
        Line2D([], [], color="0.3", label="(d) linear response"),
        Line2D([], [], color="0.3", ls="--", label="(d) explicit step"),
        Line2D([], [], color="0.3", alpha=0.6, label="(e) predicted spectrum (ours)"),
        Line2D([], [], color="0.3", ls=":", label="(e, f) Thm 4.2: extreme values"),
    ]
    labels = [h.get_label() for h in handles] + [_style.ROUNDOFF_LABEL]
    bottom.legend([*handles, _style.roundoff_handle()], labels, loc="outside lower center", ncol=2)
    fig.suptitle(data["title"])
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small setting for tests")
    parser.add_argument("--out", type=Path, default=Path("figures/out/vicinity.png"))
    args = parser.parse_args(argv)
    data = compute(args.quick)
    for f in data["flows"]:
        holds = all(v["holds"] for v in f["monotonicity"].values())
        print(
            f"flow {_flow_label(f)}: Thm 3.1 holds {holds}, NC1 {f['nc1'][0]:.3g} -> "
            f"{f['nc1'][-1]:.3g}"
        )
    for c in [data["beta"], *data["lambdas"]]:
        print(
            f"{c['parameter']} sweep: converged {c['converged']}, max relative error of the "
            f"linear response {c['max_rel_error_linear_response']:.2e}"
        )
    for sp in data["spectra"]:
        label = sp["label"].replace("$", "").replace("\\", "")
        print(f"{label}: Thm 4.2 holds {sp['holds']}, max error {sp['max_error']:.1e}")
    _style.close(plot(data, args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
