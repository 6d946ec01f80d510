"""The perturbed-vicinity UFM of Tirer, Huang & Niles-Weed (ICML 2023, arXiv 2210.16658).

    f(W, H; H0) = ||W H - Y||^2/(2N) + lW/2 ||W||^2 + lH/2 ||H||^2 + beta/2 ||H - H0||^2

in canonical units (vicinity.md; the paper's beta^T = N beta), on the notes' worked example
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
paper's Fig. 1 setting (K=4, n=10, d=10, beta^T=100, lW^T=sqrt 2, lH^T=0.5 so c<1).

    python figures/vicinity.py [--quick] [--out figures/out/vicinity.png]
"""

import argparse
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ufm  # noqa: E402
from ufm.models.vicinity import (  # noqa: E402
    central_path,
    eq5_spectrum,  # noqa: E402
    linear_response,
)

FLOOR = 1e-20
BASE = dict(K=4, n=5, d=6, lambda_W=0.05, lambda_H=0.01)  # vicinity.md §9
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


def plot(data: dict, out: Path) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(14, 8), constrained_layout=True)
    lH = data["lambda_H"]

    ax = axes[0, 0]
    for f in data["flows"]:
        ax.plot(f["tau"], f["nc1"], label=_flow_label(f))
    last = max(data["flows"], key=lambda f: f["nc1"][-1])
    tau = np.asarray(last["tau"])
    ref = last["nc1"][-1] * np.exp(-2 * lH * (tau - tau[-1]))
    keep = tau >= 0.4 * tau[-1]
    ax.plot(tau[keep], 3 * ref[keep], ":", color="gray", label="$\\propto e^{-2\\lambda_H\\tau}$")
    ax.set(yscale="log", xlabel="flow time $\\tau$", ylabel="NC1 = Tr$\\Sigma_W$ / Tr$\\Sigma_B$")
    ax.set_title("NC1 along the gradient flow (Thm 3.1: decreasing)", fontsize=9)
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    for f in data["flows"]:
        (line,) = ax.plot(f["tau"], f["within"], label=_flow_label(f))
        ax.plot(f["tau"], f["between"], "--", color=line.get_color())
    ax.plot([], [], "k-", label="$e^{2\\lambda_H\\tau}$Tr$\\Sigma_W$ (decreasing)")
    ax.plot([], [], "k--", label="$e^{2\\lambda_H\\tau}$Tr$\\Sigma_B$ (increasing)")
    ax.set(yscale="log", xlabel="flow time $\\tau$", ylabel="value / value at $\\tau$=0")
    ax.set_title("scaled traces along the flow (Thm 3.1)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)

    ax = axes[0, 2]
    b = data["beta"]
    (dots,) = ax.plot(b["values"], b["solved"], "o", label="ufm.solve")
    ax.plot(b["values"], b["linear_response"], "-", color=dots.get_color(), label="linear response")
    ax.plot(b["values"], b["explicit_step"], "--", color="C1", label="explicit step")
    ax.axvline(data["validity"], color="gray", ls=":", label="max(1/N, $\\lambda_H$)")
    ax.set(
        xscale="log",
        yscale="log",
        ylim=(0.5 * min(b["solved"]), 1.5),
        xlabel="$\\beta$ (canonical; $\\beta^T = N\\beta$)",
        ylabel="NC1(minimizer) / NC1($H_0$)",
    )
    ax.set_title("against $\\beta$ (noise 0.05)", fontsize=9)
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    for i, c in enumerate(data["lambdas"]):
        color = f"C{2 + i}"
        name = {"lambda_H": "\\lambda_H", "lambda_W": "\\lambda_W"}[c["parameter"]]
        base = c["values"][0] / c["factors"][0]
        ax.plot(c["factors"], c["solved"], "o", color=color, label=f"${name}$ = {base:g} × factor")
        ax.plot(c["factors"], c["linear_response"], "-", color=color)
        ax.plot(c["factors"], c["explicit_step"], "--", color=color)
    ax.plot([], [], "k-", label="linear response")
    ax.plot([], [], "k--", label="explicit step")
    ax.set(xscale="log", xlabel="factor on $\\lambda$ (the other fixed)")
    ax.set(ylabel="NC1(minimizer) / NC1($H_0$)")
    ax.set_title(
        f"against $\\lambda_H$, $\\lambda_W$ ($\\beta$={SWEEP_BETA:g}, noise 0.05)", fontsize=9
    )
    ax.legend(fontsize=7)

    for col, key in ((1, "diag"), (2, "off")):
        ax = axes[1, col]
        for i, sp in enumerate(data["spectra"]):
            color, marker = f"C{i}", "os"[i % 2]
            values = np.asarray(sp[key])
            x = (np.arange(values.size) + 0.5) / values.size
            ax.plot(x, np.maximum(values, FLOOR), marker, color=color, ms=4, ls="none",
                    label=f"{sp['label']} (c={sp['c']:.2f})")  # fmt: skip
            if key == "diag":
                full = np.sort(np.concatenate([np.full(m, v) for v, m in sp["spectrum"]]))
                ax.step(x, full, where="mid", color=color, lw=1, alpha=0.6)
                for name in ("diag_min", "diag_max"):
                    ax.axhline(sp["predicted"][name], color=color, ls=":", lw=1)
            else:
                ax.axhline(sp["predicted"]["off_max"], color=color, ls=":", lw=1)
        if key == "diag":
            ax.plot([], [], "k-", lw=1, alpha=0.6, label="predicted spectrum (notes §7)")
            ax.plot([], [], "k:", lw=1, label="Thm 4.2: $\\sigma_{min}$, $\\sigma_{max}$ = 1")
            ax.set(ylabel="singular value of $F_{kk}$")
            ax.set_title("diagonal block $F_{kk}$ of Eq. 5 at a collapsed $H_0$", fontsize=9)
        else:
            ax.plot([], [], "k:", lw=1, label="Thm 4.2: $2\\lambda_H(1-c)/\\beta$, rank 1")
            ax.set(yscale="log", ylabel="singular value of $F_{kk'}$ (floored at 1e-20)")
            ax.set_title("off-diagonal block $F_{kk'}$: rank 1 (rest is round-off)", fontsize=9)
        ax.set(xlabel="rank / (d n), sorted")
        ax.legend(fontsize=7, loc="upper left" if key == "diag" else "upper right")

    fig.suptitle(data["title"], fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small setting for tests")
    parser.add_argument("--out", type=Path, default=Path("figures/out/vicinity.png"))
    args = parser.parse_args(argv)
    data = compute(args.quick)
    for f in data["flows"]:
        holds = all(v["holds"] for v in f["monotonicity"].values())
        print(f"flow {_flow_label(f)}: Thm 3.1 holds {holds}, NC1 {f['nc1'][0]:.3g} -> "
              f"{f['nc1'][-1]:.3g}")  # fmt: skip
    for c in [data["beta"], *data["lambdas"]]:
        print(f"{c['parameter']} sweep: converged {c['converged']}, max relative error of the "
              f"linear response {c['max_rel_error_linear_response']:.2e}")  # fmt: skip
    for sp in data["spectra"]:
        label = sp["label"].replace("$", "").replace("\\", "")
        print(f"{label}: Thm 4.2 holds {sp['holds']}, max error {sp['max_error']:.1e}")
    plot(data, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
