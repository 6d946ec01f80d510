"""The figure scripts run end to end in --quick mode and draw what the theory predicts, in
the layout a paper needs: a column width, fonts >= 7 pt, every axis labelled, legends clear
of the data, values at float64 round-off drawn as exact (in a band), never as data.

Each script takes 20-50 s, mostly compilation, so those run with -m slow; the default run
draws deep_linear's plot on made-up data (a few seconds, no solving)."""

import importlib.util
from pathlib import Path

import matplotlib.collections
import matplotlib.legend
import matplotlib.text
import numpy as np
import PIL.Image
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "figures" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the paper's sizes, stated here rather than read from the scripts: one column of a two-column
# paper is 3.3-3.5 in wide, the text width ~7 in; nothing printed smaller than 7 pt
COLUMN_WIDTHS = ((3.3, 3.5), (6.8, 7.2))
MIN_FONT_PT = 7.0


def _points(ax, line) -> np.ndarray:
    """Display coordinates of what `line` draws inside `ax`: its markers, and for a drawn
    line style its segments sampled every few pixels (NaN breaks a line, as when drawn)."""
    xy = np.column_stack([np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)])
    if xy.size == 0:
        return np.empty((0, 2))
    with np.errstate(divide="ignore", invalid="ignore"):  # log axes map 0 to -inf
        disp = line.get_transform().transform(xy)
    finite = np.all(np.isfinite(disp), axis=1)
    out = [disp[finite]]
    if line.get_linestyle() not in ("None", "", " ", "none"):
        for a, b, ok in zip(disp[:-1], disp[1:], finite[:-1] & finite[1:], strict=True):
            if ok:
                t = np.linspace(0.0, 1.0, max(2, int(np.hypot(*(b - a)) / 2) + 1))[:, None]
                out.append(a + t * (b - a))
    pts = np.concatenate(out)
    box = ax.bbox
    inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1)
    return pts[inside & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)]


def _data_points(ax) -> np.ndarray:
    pts = [_points(ax, line) for line in ax.lines if line.get_visible()]
    for coll in ax.collections:
        if isinstance(coll, matplotlib.collections.PathCollection) and coll.get_visible():
            pts.append(coll.get_offset_transform().transform(coll.get_offsets()))
    return np.concatenate(pts) if pts else np.empty((0, 2))


def check_layout(module, fig, out: Path | None) -> None:
    """What the paper's rules ask of every figure, on the drawn figure and the written PNG
    `out`: a column width, fonts >= 7 pt, every axis labelled, legends clear of the data."""
    with module._style.context():
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width = fig.get_size_inches()[0]
    assert any(lo <= width <= hi for lo, hi in COLUMN_WIDTHS), width
    if out is not None:
        # the PNG is trimmed to its artists: an outside legend or a long title that stuck
        # out of the page would make it wider than the column
        with PIL.Image.open(out) as image:
            printed = image.size[0] / image.info["dpi"][0]
        assert any(lo - 0.5 <= printed <= hi for lo, hi in COLUMN_WIDTHS), printed
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_visible() and text.get_text().strip():
            assert text.get_fontsize() >= MIN_FONT_PT, (text.get_text(), text.get_fontsize())
    legends = fig.findobj(matplotlib.legend.Legend)
    boxes = [legend.get_window_extent(renderer) for legend in legends]
    for ax in fig.axes:
        colorbar = getattr(ax, "_colorbar", None)
        if colorbar is not None:  # its long axis carries the label
            axis = ax.yaxis if colorbar.orientation == "vertical" else ax.xaxis
            assert axis.get_label_text().strip(), "colorbar without a label"
            continue
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), ax.get_title()
        points = _data_points(ax)
        cells = any(isinstance(c, matplotlib.collections.QuadMesh) for c in ax.collections)
        for legend, box in zip(legends, boxes, strict=True):
            if cells:  # every point of a phase diagram's axes is data
                assert not box.overlaps(ax.bbox), ax.get_title()
            inside = (
                (points[:, 0] > box.x0)
                & (points[:, 0] < box.x1)
                & (points[:, 1] > box.y0)
                & (points[:, 1] < box.y1)
            )
            assert not inside.any(), (ax.get_title(), [t.get_text() for t in legend.texts])


def ordinary_lines(ax) -> list:
    """The lines drawn as data: not the round-off markers in the band."""
    return [line for line in ax.lines if line.get_gid() != "roundoff"]


def band_markers(ax) -> np.ndarray:
    ys = [np.asarray(line.get_ydata(), float) for line in ax.lines if line.get_gid() == "roundoff"]
    return np.concatenate(ys) if ys else np.empty(0)


def check_floored(ax, values: np.ndarray, floor: float) -> None:
    """`values` (all the quantity's values drawn in `ax`): those above `floor` are drawn as
    data, those at or below it are not, each of them has a marker in the band below the
    floor, and the band is shaded."""
    values = np.abs(np.asarray(values, float))
    drawn = np.concatenate([np.asarray(line.get_ydata(), float) for line in ordinary_lines(ax)])
    drawn = drawn[np.isfinite(drawn)]
    assert np.all(drawn > floor), drawn.min()
    assert np.all(np.isin(values[values > floor], drawn))
    assert not np.any(np.isin(values[values <= floor], drawn))
    marks = band_markers(ax)
    assert marks.size == np.sum(values <= floor) and np.all(marks < floor)
    if marks.size:
        shaded = [p for p in ax.patches if p.get_extents().height > 0]
        assert shaded and ax.get_ylim()[0] < marks.min()


def layer_values(cases: list, key: str) -> list[float]:
    """deep_linear: every per-layer value of `key` in `cases`, solver and closed form."""
    return [v for c in cases for who in ("solver", "theory") for v in c[who][key]]


def hatched(ax) -> int:
    """Cells marked as not converged: hatched rectangles over the phase diagram."""
    return sum(1 for patch in ax.patches if patch.get_hatch())


def synthetic_deep_linear() -> dict:
    """deep_linear's data with hand-picked values: exact zeros, round-off (1e-31 for NC1,
    3e-16 for the distances) and ordinary values, and an SGD trace reaching round-off."""

    def case(depth, nc2, verdict="agrees"):
        steps = np.arange(1, 41) * 10
        return {
            "depth": depth,
            "verdict": verdict,
            "solver": {"nc1": [1e-31] * depth, "nc2": [nc2] * depth, "gram": [3e-16] * depth},
            "theory": {"nc1": [0.0] * depth, "nc2": [nc2 / 2] * depth, "gram": [0.0] * depth},
            "sgd": {
                "step": steps.tolist(),
                "nc1": np.geomspace(1.0, 1e-30, steps.size).tolist(),  # the last 4 under 1e-26
                "nc2": np.geomspace(0.5, 1e-15, steps.size).tolist(),
                "gap": np.geomspace(2.0, 1e-3, steps.size).tolist(),
            },
        }

    return {
        "balanced": [case(1, 3e-16), case(3, 4e-16)],
        "imbalanced": [case(3, 0.3, verdict="inconclusive")],
        "title": "synthetic",
    }


def test_deep_linear_plot_roundoff():
    """The drawing alone on made-up data (no solving, no PNG: ~2 s after ufm's import):
    values at round-off sit in the band as hollow markers, the rest are data, and the
    layout rules hold."""
    fig_module = _load("deep_linear")
    data = synthetic_deep_linear()
    with fig_module._style.context():
        fig = fig_module._draw(data)
    try:
        check_layout(fig_module, fig, None)
        axes = np.array(fig.axes[:6]).reshape(2, 3)
        # float64 round-off: 1e-31 is far below any NC1 floor a d <= 64 feature matrix can
        # justify (its square root is 3e-16, one rounding unit); 3e-16 likewise for NC2
        for row, kind in enumerate(("balanced", "imbalanced")):
            for col, key in enumerate(("nc1", "nc2")):
                check_floored(axes[row, col], layer_values(data[kind], key), fig_module.FLOORS[key])
        nc1_floor = fig_module.FLOORS["nc1"]
        assert 1e-31 <= nc1_floor <= 1e-20 and 1e-15 <= fig_module.FLOORS["nc2"] <= 1e-11
        # the imbalanced NC2 values (0.3, 0.15) are data, none in the band
        assert band_markers(axes[1, 1]).size == 0
        # along SGD: NC1 and the Gram error end below their floors, the loss gap does not
        sgd, low = axes[0, 2], 0
        drawn = np.concatenate([line.get_ydata() for line in ordinary_lines(sgd)])
        for c in data["balanced"]:
            for key in ("nc1", "nc2", "gap"):
                values = np.abs(c["sgd"][key])
                floor = fig_module.FLOORS[key]
                assert np.all(np.isin(values[values > floor], drawn))
                assert not np.any(np.isin(values[values <= floor], drawn))
                low += int(np.sum(values <= floor))
        assert low > 0 and band_markers(sgd).size == low
    finally:
        fig_module._style.close(fig)


@pytest.mark.slow  # 10-20 s, mostly compilation; the default suite keeps phase_plain
def test_deep_linear_figure(tmp_path):
    fig = _load("deep_linear")
    data = fig.compute(quick=True)
    for case in data["balanced"] + data["imbalanced"]:
        assert case["verdict"] == "agrees"
        # the solver's per-layer values sit on the closed-form reference lines
        for key in ("nc1", "nc2"):
            np.testing.assert_allclose(case["solver"][key], case["theory"][key], atol=1e-7)
        assert max(case["solver"]["gram"]) < 1e-7
    # balanced bias-free: an orthogonal frame at every layer; imbalanced: a GOF, not an OF
    assert max(max(c["theory"]["nc2"]) for c in data["balanced"]) < 1e-12
    assert min(data["imbalanced"][0]["theory"]["nc2"]) > 0.05
    out = tmp_path / "deep_linear.png"
    figure = fig.plot(data, out)
    try:
        assert out.stat().st_size > 10_000
        check_layout(fig, figure, out)
        # the closed form's NC1 (every case) and NC2 (balanced: an orthogonal frame) are 0:
        # whatever float64 makes of them falls under the floors, so they are drawn as exact
        floors = fig.FLOORS
        cases = data["balanced"] + data["imbalanced"]
        assert max(max(c["theory"]["nc1"]) for c in cases) <= floors["nc1"]
        assert max(max(c["theory"]["nc2"]) for c in data["balanced"]) <= floors["nc2"]
        axes = np.array(figure.axes[:6]).reshape(2, 3)
        for row, kind in enumerate(("balanced", "imbalanced")):
            for col, key in enumerate(("nc1", "nc2")):
                check_floored(axes[row, col], layer_values(data[kind], key), floors[key])
    finally:
        fig._style.close(figure)


@pytest.mark.slow  # 10-20 s, mostly compilation; the default suite keeps phase_plain
def test_vicinity_figure(tmp_path):
    fig = _load("vicinity")
    data = fig.compute(quick=True)
    # Thm 3.1 on every gradient flow: NC1 and e^{2 lH tau} Tr Sigma_W decrease,
    # e^{2 lH tau} Tr Sigma_B increases (to the integrator's 1e-8 relative tolerance)
    for flow in data["flows"]:
        assert all(m["holds"] for m in flow["monotonicity"].values()), flow["monotonicity"]
        assert flow["nc1"][-1] < 1e-3 * flow["nc1"][0]
    # noise 0.05: the first-order error is O(noise^2) = 2.5e-3 relative; measured <= 3e-4
    for curve in [data["beta"], *data["lambdas"]]:
        assert curve["converged"]
        assert curve["max_rel_error_linear_response"] < 2e-3, curve["parameter"]
    # lambda_H lowers NC1 of the minimizer, lambda_W raises it (beta fixed)
    lambda_H, lambda_W = data["lambdas"]
    assert np.all(np.diff(lambda_H["solved"]) < 0) and np.all(np.diff(lambda_W["solved"]) > 0)
    # Thm 4.2 and the full Eq. 5 spectrum of F_kk; F_kk' rank 1
    for spectrum in data["spectra"]:
        assert spectrum["max_error"] < 1e-9 and spectrum["off_rank"] == 1
    out = tmp_path / "vicinity.png"
    figure = fig.plot(data, out)
    try:
        assert out.stat().st_size > 10_000
        check_layout(fig, figure, out)
        # F_kk' has rank 1: its other singular values are 0, computed at round-off, and
        # are drawn in the band, not as data
        off = np.concatenate([s["off"] for s in data["spectra"]])
        assert np.sum(off > fig.SV_FLOOR) == len(data["spectra"])
        check_floored(figure.axes[5], off, fig.SV_FLOOR)
    finally:
        fig._style.close(figure)


@pytest.mark.slow  # 10-20 s, mostly compilation; the default suite keeps phase_plain
def test_mixup_figure(tmp_path):
    fig = _load("mixup")
    data = fig.compute(quick=True)
    # the solver's features are the closed form: fixed W to gtol = 1e-10 gives <= 6e-8 at
    # kappa = 500 (CE), 3e-10 (MSE); the learned panel compares plane coordinates (1e-9)
    for key in ("ce", "mse", "learned"):
        panel = data[key]
        assert panel["converged"] and panel["verdict"] == "agrees", (key, panel["reason"])
        assert panel["max_abs_H_error"] < 1e-6, key
        # the dense theory curves (Newton on the logits / the MSE formula) at the solved
        # coefficients are `ufm.theory`'s H: two routes, round-off apart
        assert panel["max_abs_curve_vs_theory"] < 1e-11, key
        # everything lies in the classifier plane, W a simplex ETF (learned: to 1e-8)
        assert panel["plane_residual"] < 1e-6 and panel["etf_error"] < 1e-6, key
        found = panel["found"]
        assert found["span_residual"] < 1e-6 and found["same_class_spread"] < 1e-6, key
        assert found["boundary_gap"] < 1e-6, key  # 0 at lam = 1/2 (learned: no such node)
    # calibration: the solver matches the closed form and improves as lambda_H decreases
    cal = data["calibration"]
    assert all(c["verdict"] == "agrees" for c in cal)
    assert [c["lambda_H"] for c in cal] == sorted((c["lambda_H"] for c in cal), reverse=True)
    errors = np.array([c["calibration_error"] for c in cal])
    np.testing.assert_allclose(errors, [c["calibration_error_theory"] for c in cal], atol=1e-6)
    assert np.all(np.diff(errors) < 0) and errors[-1] < 5e-3, errors
    assert max(c["boundary_gap"] for c in cal) < 1e-6
    # the closed-form sweep (lambda_H from 3e-2 down to 3e-7) decreases throughout
    assert np.all(np.diff(data["sweep"]["calibration_error"]) < 0)
    out = tmp_path / "mixup.png"
    figure = fig.plot(data, out)
    try:
        assert 10_000 < out.stat().st_size < 150_000
        check_layout(fig, figure, out)
    finally:
        fig._style.close(figure)


@pytest.mark.slow  # 20 s, four compilations; tests/test_sweep.py covers sweeps and plots
def test_phase_plain_figure(tmp_path):
    fig = _load("phase_plain")
    data = fig.compute(quick=True)
    panels = data["panels"]
    for key, panel in panels.items():
        s = panel["summary"]
        # CE at lambda_W / lambda_H >= ~1e3: the scalar tolerance (smallest lambda) is finer
        # than the rounding of the other block's gradient, and 4 of those 100 points stall
        # at the minimum (loss gap ~2e-16) as inconclusive; never as a wrong verdict
        assert s["points"] == 100 and s["converged"] >= (96 if "ce" in key else 100), (key, s)
        # every point the theory speaks about: the verdict agrees and the regime matches
        assert s["agrees"] == s["applicable"] == s["regime_matches"], (key, s)
        assert not s["disagreements"] and s["max_abs_loss_gap"] < 1e-10, key
        # both thresholds' sides are sampled: collapsed below, zero above
        assert s["regimes"]["zero"] >= 10 and s["regimes"]["collapsed"] >= 50, (key, s)
    for key in ("mse", "mse_imbalanced"):  # the theory covers the whole plane
        assert panels[key]["summary"]["applicable"] == 100, key
    assert panels["ce"]["summary"]["applicable"] == panels["ce"]["summary"]["converged"]
    # (c): all three regimes predicted, and the solver finds them, cell for cell
    mse = panels["mse_imbalanced"]["summary"]
    assert set(mse["theory_regimes"]) == {"zero", "minority_collapse", "collapsed"}
    assert mse["regimes"] == mse["theory_regimes"] and mse["regimes"]["minority_collapse"] >= 5
    # (d): the certified convex program predicts every cell: zero beyond the threshold (the
    # same 15 cells as (c): sqrt(n_max)/N is shared), inside it collapse and, nearer the
    # threshold, the two minority classes merged (rank K-2: minority collapse), cell for cell
    ce = panels["ce_imbalanced"]["summary"]
    assert ce["theory_regimes"]["zero"] == 15 and "not_applicable" not in ce["theory_regimes"]
    assert ce["applicable"] == ce["converged"]  # and there regime_matches (loop above)
    assert ce["regimes"]["collapsed"] >= 50 and ce["regimes"]["minority_collapse"] >= 5
    out = tmp_path / "phase_plain.png"
    figure = fig.plot(data, out)
    try:
        assert 10_000 < out.stat().st_size < 150_000
        check_layout(fig, figure, out)
        for ax, panel in zip(figure.axes[:4], panels.values(), strict=True):
            s = panel["summary"]
            assert hatched(ax) == s["points"] - s["converged"], ax.get_title()
    finally:
        fig._style.close(figure)


@pytest.mark.slow  # 10-20 s, mostly compilation; the default suite keeps phase_plain
def test_phase_deep_linear_figure(tmp_path):
    fig = _load("phase_deep_linear")
    data = fig.compute(quick=True)
    s = data["summary"]
    assert s["points"] == s["converged"] == s["applicable"] == 24, s
    assert s["agrees"] == s["regime_matches"] == 24 and not s["disagreements"], s
    assert s["max_abs_loss_gap"] < 1e-10
    previous = {"minority": np.inf, "zero": np.inf}
    for row in s["depths"]:
        # all three regimes at every depth, in order along lambda_W
        assert {"collapsed", "minority_collapse", "zero"} <= set(row["regimes"]), row
        for key in ("minority", "zero"):
            switch = row[key]
            # one switch per threshold, and the closed form lies in the grid cell where the
            # solver's regime changes
            assert switch["monotone"], row
            assert switch["last_on"] < switch["exact"] <= switch["first_off"], (key, row)
            # deeper networks switch classes off at smaller lambda_W
            assert switch["exact"] < previous[key]
            previous[key] = switch["exact"]
    # all restarts at one scale: the random directions do not help. Some points near a
    # first-order threshold (depth >= 2) stop in the neighbouring branch (one class size
    # switched on or off too many), above the minimum
    same = data["same_scale"]["summary"]
    assert same["converged"] == 24 and 1 <= len(same["disagreements"]) <= 6, same
    for bad in same["disagreements"]:
        assert bad["depth"] >= 2 and bad["loss_gap"] > 1e-3, bad
        step = fig.ACTIVE[bad["regime"]] - fig.ACTIVE[bad["theory_regime"]]
        assert abs(step) == 2, bad
    out = tmp_path / "phase_deep_linear.png"
    figure = fig.plot(data, out)
    try:
        assert out.stat().st_size > 10_000
        check_layout(fig, figure, out)
        for ax, summary in zip(figure.axes[:2], (s, same), strict=True):
            assert hatched(ax) == summary["points"] - summary["converged"], ax.get_title()
    finally:
        fig._style.close(figure)


@pytest.mark.slow  # 40-60 s: two SGD compilations and two solves (one per head structure)
def test_dhkd_figure(tmp_path):
    import ufm

    fig = _load("dhkd")
    data = fig.compute(quick=True)
    # (a), (b): both signs occur, and cos W and cos H have the same sign at every point
    grid = data["map"]
    assert 0 < grid["conflicting"] < grid["points"] and grid["differ"] == 0
    runs = data["training"]
    # SGD reaches the reduced minimum (single, dual, dual + projection: the projection only
    # acts in the first steps); the projected single head stops above it
    for label in ("single", "dual", "dual + projection"):
        assert abs(runs[label]["gap"][-1]) < 1e-6, label
    assert runs["single + projection"]["gap"][-1] > 1e-3
    # one head keeps a common mode (the minimizer's, `ufm.theory`); the dual CE head loses it
    single = ufm.make("dhkd", heads="single").theory().quantities["common_mode_fraction"]
    np.testing.assert_allclose(runs["single"]["common_mode_fraction"][-1], single, rtol=1e-6)
    assert runs["dual"]["common_mode_fraction"][-1] < 1e-4
    for label, run in runs.items():
        if label.startswith("dual"):
            assert not np.any(run["cos_W"]), label  # the logit loss never reaches W
            assert run["pattern"] == 0, label
        else:  # cos W < 0 <= cos H only in the transient, before the head collapses
            assert max(run["pattern_steps"], default=0) < 300, label
            assert run["cos_W"][-1] < 0 and run["cos_H"][-1] < 0, label
    # (c): the dual CE head is centred at every shift; one head is not, away from m = 0
    th = data["theory"]
    shifts = np.asarray(th["shift"])
    for key, curve in th["curves"].items():
        if key.startswith("dual"):
            assert not np.any(curve["ce"]), key
    assert np.all(np.asarray(th["curves"]["single/none"]["ce"])[np.abs(shifts) >= 1] > 0.3)
    # (d): converged; the dual CE head's common mode is within the solver's tolerance bound
    for heads, rows in data["mistakes"].items():
        for r in rows:
            assert r["converged"] and r["accuracy"] == 1.0, (heads, r)
            if heads == "dual":
                assert r["fraction"] <= r["bound"], r
            else:
                assert r["fraction"] > 0.5, r
    out = tmp_path / "dhkd.png"
    figure = fig.plot(data, out)
    try:
        assert 10_000 < out.stat().st_size < 150_000
        check_layout(fig, figure, out)
    finally:
        fig._style.close(figure)
