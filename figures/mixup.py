"""The mixup UFM of Fisher, Meng & Papyan (ICLR 2024, arXiv 2402.06171): theory version of the
paper's Fig. 1, in the formulation of derivations/mixup.py (one free feature per mixed example,
 soft label lam e_c1 + (1-lam) e_c2, lambda_bar = N lambda_H per feature).

K=3, n=100, d=4, fixed simplex-ETF classifier of row norm 1 unless said otherwise; the mixing
coefficients are the fixed list 0, 0.1, ..., 1 for every ordered class pair.

Top row: features in the plane of the classifiers (orthonormal basis of span{w_k}, with w_k at
90, 210, 330 degrees). Grey rays: the classifiers; dotted rays: the decision
boundaries z_c = z_c'. Lines: the closed form lam -> h_cc'(lam) on a dense lam grid; dots:
`ufm.solve`, coloured by the weight of the lower-index class of the pair; stars: the same-class
features (one point per class for every lam). Each title gives max |H - theory| (Delta H), or
"Delta H = 0 (round-off)" where it is below the floor `H_FLOOR` of float64.
  (a) CE, lambda_H = 1e-5 (kappa = 500): the different-class features gather along the
      decision boundary, which each curve crosses at lam = 1/2 (the "channels"), and reach
      the classifier rays only as lam -> 0 or 1.
  (b) MSE: straight segments, convex combinations of the same-class points.
  (c) CE with a learned classifier (Beta(1,1) mixing by 8-point Gauss-Legendre quadrature,
      best of 4 restarts, 1 in --quick): the solver's W is a simplex ETF and its features lie
      on the ETF-theory curves (derivations/mixup.py, step 4); each solution is drawn in its
      own W's plane.
Bottom row, CE under the fixed ETF at lambda_H from 1e-2 to 1e-6 (kappa = 0.005 / lambda_H):
  (d) predicted probability of class c1 against lam (theory lines, solver dots) with the
      diagonal (perfect calibration);
  (e) the logit gap z_c1 - z_c2 against the log-odds log(lam/(1-lam));
  (f) the calibration error max_lam |gap - log-odds| over 0 < lam < 1 against lambda_H:
      closed form (line) and solver (dots).

    python figures/mixup.py [--quick] [--out figures/out/mixup.png]
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
import scipy.special  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

import ufm  # noqa: E402
from ufm.models import mixup as mx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _style  # noqa: E402

K, N_PER_CLASS, D = 3, 100, 4
LAMS = tuple(round(0.1 * i, 10) for i in range(11))  # one compiled shape for every fixed-W solve
MIX = ",".join(f"{x:g}" for x in LAMS)
PLANE_LAMBDA_H = 1e-5  # kappa = 1.5 / (300 lambda_H) = 500: the mixed features form channels
LEARNED = dict(classifier="learned", mix="beta:1:8", lambda_W=5e-4, lambda_H=1e-3)
ANGLES = np.deg2rad([90.0, 210.0, 330.0])  # where w_0, w_1, w_2 are drawn
CMAP = "viridis"
TITLE = (
    f"mixup UFM (Fisher, Meng & Papyan 2024; natural formulation), K={K}, n={N_PER_CLASS}, "
    f"d={D}\nclassifier: fixed simplex ETF, $\\|w_k\\|$ = 1 ($\\lambda_H$ = {PLANE_LAMBDA_H:g} in "
    f"(a), (b)), or learned ((c): $\\lambda_W$ = {LEARNED['lambda_W']:g}, $\\lambda_H$ = "
    f"{LEARNED['lambda_H']:g})\n$\\lambda$ in {{0, 0.1, ..., 1}} ((c): Beta(1,1) by 8 "
    "Gauss-Legendre nodes)"
)
# Round-off floor of max |H - theory| relative to max |H|: the solver's H is the minimizer of
# a loss whose Hessian in H has condition number up to (r^2 K/(K-1) + lbar)/lbar = 500 at
# lambda_H = 1e-5 (MSE; lbar = N lambda_H = 3e-3), so gradient-based stopping at round-off
# locates H only to ~500 eps = 1.1e-13 relative. Below that, the two agree exactly.
H_FLOOR = 1e-13


def settings(quick: bool) -> dict:
    if quick:
        return dict(dense=101, calibration=(1e-2, 1e-3, 1e-4, 1e-5), sweep=33, restarts=1)
    return dict(dense=401, calibration=tuple(np.geomspace(1e-2, 1e-6, 9)), sweep=161, restarts=4)


def make(loss: str, **kw) -> "mx.MixupProblem":
    return ufm.make("mixup", **(dict(loss=loss, K=K, n=N_PER_CLASS, d=D, mix=MIX) | kw))


def plane_basis(W: np.ndarray) -> np.ndarray:
    """(d, 2) orthonormal basis of span{w_k} in which the rows of a (K=3) simplex ETF W sit at
    ANGLES: A = W^+ r T with T the unit vectors at ANGLES, made exactly orthonormal by its
    polar factor (a no-op for an exact ETF, where A^T A = T^T P_K T (K-1)/K = I). W^+ is the
    pseudo-inverse of W's rank-2 truncation: a solved W has a third singular value at round-off."""
    r = float(np.mean(np.linalg.norm(W, axis=1)))
    T = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1)
    U, s, Vt = np.linalg.svd(W, full_matrices=False)  # the rank-2 pseudo-inverse: a solved
    A = Vt[:2].T @ ((U[:, :2].T @ (r * T)) / s[:2, None])  # W's third value is round-off
    U, _, Vt = np.linalg.svd(A, full_matrices=False)
    return U @ Vt


def ce_curve(W: np.ndarray, lambda_bar: float, c: int, c2: int, lams: np.ndarray) -> np.ndarray:
    """Closed-form CE features h (d, L) of the soft labels lam e_c + (1-lam) e_c2 under the
    simplex ETF W: centred logits z = kappa (y~ - p) (Newton, `ce_logits`), h = W^T(y~-p)/lbar."""
    r = float(np.linalg.norm(W[0]))
    Y = np.zeros((K, lams.size))
    Y[c] += lams
    Y[c2] += 1 - lams
    Z = mx.ce_logits(Y, mx.kappa(K, r, lambda_bar))
    return W.T @ (Y - scipy.special.softmax(Z, axis=0)) / lambda_bar


def mse_curve(W: np.ndarray, lambda_bar: float, c: int, c2: int, lams: np.ndarray) -> np.ndarray:
    """MSE under the simplex ETF: h = (lam w_c + (1-lam) w_c2) / (r^2 K/(K-1) + lbar)."""
    r = float(np.linalg.norm(W[0]))
    scale = mx.mse_feature_scale(K, r, lambda_bar)
    return scale * (np.outer(W[c], lams) + np.outer(W[c2], 1 - lams))


def geometry_panel(problem, sol, curve, dense: int) -> dict:
    """Solver and theory features in the classifier plane, errors and mixup properties."""
    report = ufm.check(problem, sol)
    theory = report.theory
    W = np.asarray(problem.classifier(sol.params), dtype=float)
    H = np.asarray(sol.params["H"], dtype=float)
    W_t = np.asarray(theory.params.get("W", W), dtype=float)
    H_t = np.asarray(theory.params["H"], dtype=float)
    A, A_t = plane_basis(W), plane_basis(W_t)
    xy, xy_t = A.T @ H, A_t.T @ H_t
    cols = problem.columns
    c1, c2, lam = cols["c1"], cols["c2"], cols["lam"]
    lbar = problem.lambda_bar
    grid = np.linspace(0.0, 1.0, dense)
    curves = []
    for a in range(K):
        for b in range(a + 1, K):
            curves.append(
                {"classes": [a, b], "xy": (A_t.T @ curve(W_t, lbar, a, b, grid)).tolist()}
            )
    # the dense closed form at the solved coefficients, against `theory()` (two routes)
    route = np.stack(
        [curve(W_t, lbar, c1[m], c2[m], lam[m : m + 1])[:, 0] for m in range(lam.size)]
    )
    found = mx.properties(problem, sol.params)
    predicted = mx.properties(problem, theory.params)
    plane_residual = np.linalg.norm(H - A @ xy) / np.linalg.norm(H)
    drop = lambda p: {k: v for k, v in p.items() if k != "pairs"}
    return {
        "verdict": report.verdict,
        "reason": report.reason,
        "loss_gap": report.loss_gap,
        "errors": report.errors,
        "converged": sol.converged,
        # H is unique for a fixed W; for a learned W compare the plane coordinates, each
        # solution in the basis of its own classifier (this removes the rotation)
        "max_abs_H_error": float(np.max(np.abs(xy - xy_t)))
        if problem.learned
        else float(np.max(np.abs(H - H_t))),
        "max_abs_curve_vs_theory": float(np.max(np.abs(route.T - H_t))),
        "plane_residual": float(plane_residual),
        "w_norm": float(np.mean(np.linalg.norm(W, axis=1))),
        "etf_error": float(
            np.linalg.norm(W @ W.T - np.mean(np.sum(W**2, 1)) * (np.eye(K) - 1 / K) * K / (K - 1))
            / np.linalg.norm(W @ W.T)
        ),
        "found": drop(found),
        "predicted": drop(predicted),
        "c1": c1.tolist(),
        "c2": c2.tolist(),
        "lam": lam.tolist(),
        "xy": xy.tolist(),
        "curves": curves,
        "lambda_H": float(problem.lambda_H),
        "kappa": mx.kappa(K, float(np.linalg.norm(W_t[0])), lbar),
    }


def calibration(lambda_H: float, dense: int) -> dict:
    """CE under the fixed ETF: p_c1 and the logit gap for pair (0, 1), solver and theory."""
    problem = make("ce", lambda_H=float(lambda_H))
    sol = ufm.solve(problem)
    report = ufm.check(problem, sol)
    W = np.asarray(problem.fixed_classifier(np.float64))
    H = np.asarray(sol.params["H"], dtype=float)
    cols = problem.columns
    sel = np.flatnonzero((cols["c1"] == 0) & (cols["c2"] == 1))
    Z = W @ H[:, sel]
    grid = np.linspace(0.0, 1.0, dense)[1:-1]
    Y = np.zeros((K, grid.size))
    Y[0], Y[1] = grid, 1 - grid
    Z_t = mx.ce_logits(Y, mx.kappa(K, float(problem.w_norm), problem.lambda_bar))
    found = mx.properties(problem, sol.params)
    predicted = mx.properties(problem, report.theory.params)
    return {
        "lambda_H": float(lambda_H),
        "kappa": mx.kappa(K, float(problem.w_norm), problem.lambda_bar),
        "verdict": report.verdict,
        "max_abs_H_error": float(np.max(np.abs(H - report.theory.params["H"]))),
        "lam": cols["lam"][sel].tolist(),
        "prob": scipy.special.softmax(Z, axis=0)[0].tolist(),
        "gap": (Z[0] - Z[1]).tolist(),
        "grid": grid.tolist(),
        "prob_theory": scipy.special.softmax(Z_t, axis=0)[0].tolist(),
        "gap_theory": (Z_t[0] - Z_t[1]).tolist(),
        "calibration_error": found["calibration_error"],
        "calibration_error_theory": predicted["calibration_error"],
        "boundary_gap": found["boundary_gap"],
    }


def calibration_sweep(values: np.ndarray) -> list[float]:
    """Closed-form calibration error max_lam |gap - log-odds| over the solved lam (0 < lam < 1)."""
    lams = np.asarray([x for x in LAMS if 0 < x < 1])
    Y = np.zeros((K, lams.size))
    Y[0], Y[1] = lams, 1 - lams
    odds = np.log(lams / (1 - lams))
    out = []
    for lH in values:
        Z = mx.ce_logits(Y, mx.kappa(K, 1.0, K * N_PER_CLASS * float(lH)))
        out.append(float(np.max(np.abs(Z[0] - Z[1] - odds))))
    return out


def compute(quick: bool = False) -> dict:
    s = settings(quick)
    out = {}
    print("CE and MSE under a fixed simplex ETF ...", flush=True)
    problem = make("ce", lambda_H=PLANE_LAMBDA_H)
    out["ce"] = geometry_panel(problem, ufm.solve(problem), ce_curve, s["dense"])
    problem = make("mse", lambda_H=PLANE_LAMBDA_H)
    out["mse"] = geometry_panel(problem, ufm.solve(problem), mse_curve, s["dense"])
    print("CE with a learned classifier ...", flush=True)
    problem = make("ce", **LEARNED)
    sol = ufm.solve(problem, restarts=s["restarts"])  # every restart finds the same loss
    out["learned"] = geometry_panel(problem, sol, ce_curve, s["dense"])
    print("calibration against lambda_H ...", flush=True)
    out["calibration"] = [calibration(lH, s["dense"]) for lH in s["calibration"]]
    values = np.geomspace(3e-2, 3e-7, s["sweep"])
    out["sweep"] = {"lambda_H": values.tolist(), "calibration_error": calibration_sweep(values)}
    out["title"] = TITLE
    return out


def _error_text(panel: dict) -> str:
    """max |H - theory| (Delta H) of a plane panel, or that it is 0 up to round-off."""
    err = panel["max_abs_H_error"]
    scale = float(np.max(np.abs(panel["xy"])))
    if err <= H_FLOOR * scale:
        return "$\\Delta H$ = 0 (round-off)"
    return f"max $|\\Delta H|$ = {err:.0e}"


def _plane(ax, panel: dict, title: str, norm) -> None:
    xy = np.asarray(panel["xy"])
    c1, c2, lam = (np.asarray(panel[k]) for k in ("c1", "c2", "lam"))
    radius = 1.15 * float(np.max(np.hypot(*xy)))
    for k, angle in enumerate(ANGLES):
        u = np.array([np.cos(angle), np.sin(angle)])
        ax.plot([0, radius * u[0]], [0, radius * u[1]], color="0.6", lw=1)
        ax.annotate(
            f"$w_{k}$",
            radius * u * 1.02,
            ha="center",
            va="center",
            fontsize=7,
            xytext=(6 * u[0], 6 * u[1]),
            textcoords="offset points",
        )
        boundary = -u  # z_c = z_c' between the two other classes: the ray opposite w_k
        ax.plot([0, radius * boundary[0]], [0, radius * boundary[1]], ":", color="0.6", lw=0.8)
    for curve in panel["curves"]:
        ax.plot(*np.asarray(curve["xy"]), color="0.25", lw=0.8, zorder=1)
    # colour: the weight of the lower-index class, i.e. lam along the curve drawn from c' to c
    weight = np.where(c1 <= c2, lam, 1 - lam)
    mixed = c1 != c2
    ax.scatter(
        *xy[:, mixed],
        c=weight[mixed],
        cmap=CMAP,
        norm=norm,
        s=9,
        zorder=3,
        edgecolors="k",
        linewidths=0.25,
    )
    same = ~mixed
    ax.scatter(
        *xy[:, same],
        c=[f"C{c}" for c in c1[same]],
        marker="*",
        s=45,
        zorder=4,
        edgecolors="k",
        linewidths=0.3,
    )
    lim = radius * 1.25
    ax.set(aspect="equal", xlim=(-lim, lim), ylim=(-lim, lim))
    ax.set(xlabel="$u_1$ (classifier plane)", ylabel="$u_2$")
    ax.set_title(f"{title}\n{panel['verdict']}, {_error_text(panel)}")


def plot(data: dict, out: Path):
    """Draw and write the figure; returns it (open: the caller closes it)."""
    return _style.render(_draw, data, out, quantize=True)


def _draw(data: dict):
    fig = plt.figure(figsize=(_style.DOUBLE, 5.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=(1.05, 1))
    planes, lower = top.subplots(1, 3), bottom.subplots(1, 3)
    norm = matplotlib.colors.Normalize(0.0, 1.0)
    ce, mse, lr = data["ce"], data["mse"], data["learned"]
    _plane(planes[0], ce, f"(a) CE, fixed ETF, $\\kappa$ = {ce['kappa']:.3g}", norm)
    _plane(planes[1], mse, "(b) MSE, fixed ETF", norm)
    title = f"(c) CE, learned $W$ ($r^*$ = {lr['w_norm']:.3g}, $\\kappa$ = {lr['kappa']:.3g})"
    _plane(planes[2], lr, title, norm)
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=CMAP)
    top.colorbar(sm, ax=planes, shrink=0.8, label="$\\lambda$ (from $w_{c'}$ to $w_c$)")
    top.legend(
        handles=[
            Line2D([], [], color="0.25", lw=0.8, label="closed form"),
            Line2D(
                [],
                [],
                ls="none",
                marker="o",
                mfc="0.6",
                mec="k",
                mew=0.25,
                ms=3.5,
                label="ufm.solve, mixed classes",
            ),
            Line2D(
                [],
                [],
                ls="none",
                marker="*",
                mfc="0.6",
                mec="k",
                mew=0.3,
                ms=7,
                label="ufm.solve, same class",
            ),
            Line2D([], [], color="0.6", lw=1, label="classifier rays $w_k$"),
            Line2D([], [], color="0.6", ls=":", lw=0.8, label="decision boundaries"),
        ],
        loc="outside lower center",
        ncol=5,
    )

    cal = data["calibration"]
    lambdas = np.array([c["lambda_H"] for c in cal])
    cal_norm = matplotlib.colors.LogNorm(lambdas.min(), lambdas.max())
    cal_cmap = matplotlib.colors.LinearSegmentedColormap.from_list(
        "plasma_cut", plt.get_cmap("plasma")(np.linspace(0.0, 0.85, 256))
    )
    colors = [cal_cmap(cal_norm(c["lambda_H"])) for c in cal]
    ax = lower[0]
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    for c, color in zip(cal, colors, strict=True):
        ax.plot(c["grid"], c["prob_theory"], color=color, lw=0.9)
        ax.plot(c["lam"], c["prob"], "o", color=color, ms=2.5)
    ax.set(xlabel="$\\lambda$ (weight of $c_1$)", ylabel="softmax$(z)_{c_1}$")
    ax.set_title("(d) predicted probability")

    ax = lower[1]
    odds = lambda lam: np.log(np.asarray(lam) / (1 - np.asarray(lam)))
    grid = np.asarray(cal[0]["grid"])
    ax.plot(odds(grid), odds(grid), "k--", lw=0.8)
    for c, color in zip(cal, colors, strict=True):
        ax.plot(odds(c["grid"]), c["gap_theory"], color=color, lw=0.9)
        inner = [(x, g) for x, g in zip(c["lam"], c["gap"], strict=True) if 0 < x < 1]
        ax.plot(odds([x for x, _ in inner]), [g for _, g in inner], "o", color=color, ms=2.5)
    ax.set(xlabel="$\\log(\\lambda/(1-\\lambda))$", ylabel="logit gap $z_{c_1}-z_{c_2}$")
    ax.set_title("(e) logit gap (0 at $\\lambda$ = 1/2)")

    ax = lower[2]
    sweep = data["sweep"]
    ax.plot(sweep["lambda_H"], sweep["calibration_error"], "k-", lw=0.9)
    for c, color in zip(cal, colors, strict=True):
        ax.plot(c["lambda_H"], c["calibration_error"], "o", color=color, ms=3.5)
    ax.set(xscale="log", yscale="log", xlabel="$\\lambda_H$ ($\\kappa$ = 0.005 / $\\lambda_H$)")
    ax.set(ylabel="max$_{0<\\lambda<1}$ |gap $-$ log-odds|")
    ax.set_title("(f) calibration error")
    ax.invert_xaxis()
    sm = matplotlib.cm.ScalarMappable(norm=cal_norm, cmap=cal_cmap)
    bottom.colorbar(sm, ax=lower, shrink=0.8, label="$\\lambda_H$ of (d)-(f)")
    bottom.legend(
        handles=[
            Line2D([], [], color="0.3", lw=0.9, label="closed form"),
            Line2D([], [], color="0.3", ls="none", marker="o", ms=3, label="ufm.solve"),
            Line2D(
                [],
                [],
                color="k",
                ls="--",
                lw=0.8,
                label="(d) calibrated $p_{c_1} = \\lambda$; (e) the log-odds",
            ),
        ],
        loc="outside lower center",
        ncol=3,
    )
    fig.suptitle(data["title"])
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small setting for tests")
    parser.add_argument("--out", type=Path, default=Path("figures/out/mixup.png"))
    args = parser.parse_args(argv)
    data = compute(args.quick)
    for key in ("ce", "mse", "learned"):
        p = data[key]
        f = p["found"]
        print(
            f"{key}: {p['verdict']}, max |H - theory| {p['max_abs_H_error']:.1e}, span "
            f"residual {f['span_residual']:.1e}, same-class spread "
            f"{f['same_class_spread']:.1e}, boundary gap {f['boundary_gap']:.1e}, "
            f"ETF error {p['etf_error']:.1e}"
        )
    for c in data["calibration"]:
        print(
            f"lambda_H={c['lambda_H']:.3g} (kappa {c['kappa']:.3g}): {c['verdict']}, "
            f"calibration error {c['calibration_error']:.4g} "
            f"(theory {c['calibration_error_theory']:.4g})"
        )
    _style.close(plot(data, args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
