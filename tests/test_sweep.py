"""ufm.sweep: equal to point-by-point solves, resumable after a kill, the same on 2 devices,
clear errors for bad grids; ufm plot draws what the data and the theory say."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import xarray as xr
import zarr

import ufm
from ufm import cli, plot
from ufm.sweeps import open_result, parse_axis, sweep

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"loss": "mse", "K": 3, "n": 2, "d": 4}
LAMBDAS = {"lambda_W": [1e-3, 0.3], "lambda_H": [1e-3, 0.1]}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("UFM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax-cache"))


@pytest.mark.parametrize(
    "model, fixed, grid, restarts, seeds",
    [
        ("plain", SMALL, LAMBDAS, 1, [5]),
        # CE with a bias: no variable projection; zero, collapsed and (lambda_b > 0) the
        # not-applicable branch
        pytest.param(
            "plain",
            {"loss": "ce", "K": 3, "n": 2, "d": 4, "bias": True},
            {"lambda_b": [0.0, 0.1], "lambda_W": [1e-3, 0.5]},
            1,
            [1],
            marks=pytest.mark.slow,
        ),
        # deep linear: restarts vmapped inside the vmapped grid
        pytest.param(
            "deep-linear",
            {"K": 3, "n": 2, "d": 4, "depth": 2, "lambda_H": 1e-3},
            {"lambda_W": [1e-3, 0.2]},
            3,
            [0],
            marks=pytest.mark.slow,
        ),
    ],
)
def test_sweep_equals_point_by_point_solves(model, fixed, grid, restarts, seeds):
    ds = sweep(model, fixed, grid, seeds=seeds, restarts=restarts)
    assert list(ds.dims) == [*grid, "seed"] and bool(ds["done"].all())
    for index in np.ndindex(ds["done"].shape):
        at = dict(zip(ds["done"].dims, index, strict=True))
        point = {name: ds[name].values[at[name]].item() for name in grid}
        problem = ufm.make(model, **fixed, **point)
        seed = int(ds["seed"].values[at["seed"]])
        sol = ufm.solve(problem, seed=seed, restarts=restarts)
        rep = ufm.check(problem, sol)
        got = ds.isel(at)
        assert bool(got["converged"]) == sol.converged
        assert abs(float(got["loss"]) - float(sol.loss)) <= 1e-12 * max(1.0, abs(float(sol.loss)))
        assert str(got["verdict"].values) == rep.verdict
        assert str(got["theory_regime"].values) == rep.theory.regime
        if rep.theory.loss is not None:
            assert float(got["theory_loss"]) == rep.theory.loss
            for key, value in rep.errors.items():
                name = "error_" + key.replace(".", "_")
                assert abs(float(got[name]) - value) <= 1e-6 + 1e-3 * value, key
        assert abs(float(got["nc2"]) - rep.metrics["nc2"]) <= 1e-6
        # batched and single solves round differently (on a GPU, not even reproducibly):
        # long runs may take some steps more or fewer. On the Newton route (CE sweeps of the
        # plain UFM) steps are Newton steps, not comparable with L-BFGS's
        if ds.attrs["runs"][-1]["route"] == "lbfgs":
            assert int(got["steps"]) == pytest.approx(int(sol.steps), rel=0.5, abs=3)


def test_regimes_match_theory_and_critical_lines():
    """Imbalanced MSE: zero, minority collapse and collapse where the theory says, and the
    plotted lines lW lH = mu_c^2 separate exactly the theory's regimes."""
    fixed = {"loss": "mse", "K": 3, "n": [8, 8, 2], "d": 4}
    grid = {"lambda_W": np.geomspace(1e-3, 1, 7), "lambda_H": np.geomspace(1e-3, 1, 7)}
    ds = sweep("plain", fixed, grid).isel(seed=0)
    assert bool(ds["converged"].all()) and set(ds["verdict"].values.ravel()) == {"agrees"}
    assert np.array_equal(ds["regime"].values, ds["theory_regime"].values)
    assert set(ds["regime"].values.ravel()) == {"zero", "minority_collapse", "collapsed"}
    # by hand: N = 18; class k dies at sqrt(lW lH) = sqrt(n_k)/N: sqrt(8)/18 (all) and sqrt(2)/18
    critical = dict(ufm.make("plain", **fixed).critical_mu())
    assert critical["zero"] == pytest.approx(np.sqrt(8) / 18, rel=1e-12)
    assert critical["minority off"] == pytest.approx(np.sqrt(2) / 18, rel=1e-12)
    mu = np.sqrt(ds["lambda_W"].values[:, None] * ds["lambda_H"].values[None, :])
    expected = np.where(
        mu >= np.sqrt(8) / 18,
        "zero",
        np.where(mu >= np.sqrt(2) / 18, "minority_collapse", "collapsed"),
    )
    assert np.array_equal(ds["theory_regime"].values, expected)


def test_balanced_zero_threshold_is_c_equals_one():
    for loss, bias in (("ce", False), ("ce", True), ("mse", False), ("mse", True)):
        problem = ufm.make("plain", loss=loss, K=4, n=5, d=8, bias=bias)
        (label, mu), *_ = problem.critical_mu()
        # K sqrt(n lW lH) = 1  <=>  mu = 1 / (K sqrt(n))
        assert label == "zero" and mu == pytest.approx(1 / (4 * np.sqrt(5)), rel=1e-12)


def test_resume_after_interrupt_recomputes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "run.zarr"
    kw = {"seeds": 2, "chunk_size": 4, "out": out, "save_every": 60.0}

    def stop(done, total):
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C: the buffered chunk is written on the way out
        sweep("plain", SMALL, LAMBDAS, progress=stop, **kw)
    saved = zarr.open_group(out, mode="r")
    done = np.asarray(saved["done"][...])
    assert 4 <= done.sum() < done.size
    before = np.asarray(saved["loss"][...])
    import ufm._sweep_run as module  # the solve loop: `_columns` checks every solved point

    solved = []
    original = module._columns
    monkeypatch.setattr(
        module, "_columns", lambda batch, *a: solved.extend(batch) or original(batch, *a)
    )
    ds = sweep("plain", SMALL, LAMBDAS, resume=True, **kw)
    assert len(solved) == done.size - done.sum()  # only the unsaved points
    assert all(not done[i + (s,)] for i, s in solved)
    assert bool(ds["done"].all()) and set(ds["verdict"].values.ravel()) == {"agrees"}
    np.testing.assert_array_equal(ds["loss"].values[done], before[done])
    assert ds.attrs["runs"][-1]["solved"] == done.size - done.sum()
    fresh = sweep("plain", SMALL, LAMBDAS, seeds=2)
    np.testing.assert_allclose(ds["loss"].values, fresh["loss"].values, rtol=1e-13)


def test_resume_refuses_other_settings_and_overwrites_nothing(tmp_path):
    out = tmp_path / "run.zarr"
    sweep("plain", SMALL, {"lambda_W": [0.01, 0.1]}, out=out)
    with pytest.raises(ValueError, match="exists; pass resume=True"):
        sweep("plain", SMALL, {"lambda_W": [0.01, 0.1]}, out=out)
    with pytest.raises(ValueError, match="made with grid="):
        sweep("plain", SMALL, {"lambda_W": [0.01, 0.2]}, out=out, resume=True)
    with pytest.raises(ValueError, match="made with solver="):
        sweep("plain", SMALL, {"lambda_W": [0.01, 0.1]}, out=out, resume=True, gtol=1e-8)
    ds = sweep("plain", SMALL, {"lambda_W": [0.01, 0.1]}, out=out, resume=True)
    assert ds.attrs["runs"][-1]["solved"] == 0 and ds.attrs["model"] == "plain"
    assert ds.attrs["versions"]["jax"] == jax.__version__
    # the store is plain zarr: xarray reads it without ufm
    assert float(xr.open_zarr(out, consolidated=False)["loss"].isel(seed=0, lambda_W=1)) == (
        float(ds["loss"].isel(seed=0, lambda_W=1))
    )


def _cli_env(tmp_path) -> dict:
    return os.environ | {"UFM_CACHE_DIR": str(tmp_path / "jax-cache"), "JAX_PLATFORMS": "cpu"}


def test_killed_cli_sweep_resumes(tmp_path):
    """SIGKILL mid-sweep, then --resume: the saved points are kept, the rest is solved once,
    and the result equals an uninterrupted sweep."""
    out = tmp_path / "run.zarr"
    argv = [sys.executable, "-m", "ufm.cli", "sweep", "plain", "--loss", "mse", "--K", "3"]
    argv += ["--n", "2", "--d", "4", "--grid", "lambda_W=1e-3:1:12:log", "--grid"]
    argv += ["lambda_H=1e-3,0.1", "--chunk-size", "2", "--save-every", "0", "--no-progress"]
    argv += ["--out", str(out)]
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        proc = subprocess.Popen(argv, env=_cli_env(tmp_path), stderr=stderr)
    deadline = time.time() + 120
    saved = 0
    while time.time() < deadline and proc.poll() is None:
        if (out / "done").exists():
            saved = int(np.sum(zarr.open_group(out, mode="r")["done"][...]))
            if saved >= 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, log.read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = np.asarray(zarr.open_group(out, mode="r")["done"][...])
    assert 2 <= done.sum() < done.size
    losses = np.asarray(zarr.open_group(out, mode="r")["loss"][...])
    resumed = subprocess.run(
        argv + ["--resume", "--json"], env=_cli_env(tmp_path), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["points"] == 24 and summary["converged"] == 24
    ds = open_result(out)
    assert ds.attrs["runs"][-1]["solved"] == done.size - done.sum()
    np.testing.assert_array_equal(ds["loss"].values[done], losses[done])
    fresh = sweep("plain", SMALL, {"lambda_W": np.geomspace(1e-3, 1, 12), "lambda_H": [1e-3, 0.1]})
    np.testing.assert_allclose(ds["loss"].values, fresh["loss"].values, rtol=1e-12)


def test_two_device_sweep_equals_one_device(tmp_path):
    out = tmp_path / "two.zarr"
    script = (
        "import jax; jax.config.update('jax_enable_x64', True)\n"
        "from ufm.sweeps import sweep\n"
        f"ds = sweep('plain', {SMALL!r}, {LAMBDAS!r}, seeds=2, chunk_size=5, out={str(out)!r})\n"
        "print(len(jax.devices()))\n"
    )
    env = _cli_env(tmp_path) | {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "2"
    two = open_result(out)
    assert len(two.attrs["devices"]) == 2
    one = sweep("plain", SMALL, LAMBDAS, seeds=2, chunk_size=5)
    assert bool(two["converged"].all()) and bool(one["converged"].all())
    np.testing.assert_allclose(two["loss"].values, one["loss"].values, rtol=1e-12)
    np.testing.assert_array_equal(two["verdict"].values, one["verdict"].values)
    np.testing.assert_array_equal(two["regime"].values, one["regime"].values)


@pytest.mark.parametrize(
    "text, message",
    [
        ("lambda_W", "expected NAME=START:STOP:NUM"),
        ("lambda_W=1:2", "expected NAME=START:STOP:NUM"),
        ("lambda_W=1:2:3:cubic", "expected NAME=START:STOP:NUM"),
        ("lambda_W=a:2:3", "START and STOP must be numbers"),
        ("lambda_W=0:1:4:log", "a log range needs START > 0"),
        ("lambda_W=1e-3:1:0:log", "NUM must be an integer >= 1"),
        ("lambda_W=1:inf:3", "START and STOP must be finite"),
    ],
)
def test_bad_grid_spec(text, message):
    with pytest.raises(ValueError, match=message):
        parse_axis(text)


def test_grid_spec_ranges():
    name, values, spacing = parse_axis("lambda_H=1e-4:1:5:log")
    assert name == "lambda_H" and spacing == "log"
    np.testing.assert_allclose(values, [1e-4, 1e-3, 1e-2, 1e-1, 1], rtol=1e-14)
    assert parse_axis("K=3,4,5") == ("K", ["3", "4", "5"], "list")
    np.testing.assert_allclose(parse_axis("beta=0:1:3:lin")[1], [0, 0.5, 1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"grid": {"lambda_X": [1]}}, "unknown parameter 'lambda_X'"),
        (
            {"grid": {"lambda_W": [0.1]}, "fixed": {"lambda_W": 0.1}},
            "given both fixed and on the grid",
        ),
        ({"grid": {"lambda_W": []}}, "non-empty 1-D list"),
        ({"grid": {"lambda_W": [0.1, 0.1]}}, "values repeat"),
        ({"grid": {"lambda_W": [0.1, -1.0]}}, "grid point lambda_W=-1.0: lambda_W must be"),
        ({"grid": {"K": ["three"]}}, "grid 'K': values must be int"),
        ({"grid": {"lambda_W": [0.1]}, "seeds": 0}, "seeds must be a count >= 1"),
        ({"grid": {"lambda_W": [0.1]}, "chunk_size": 0}, "chunk_size must be an integer >= 1"),
        ({"grid": {"lambda_W": [0.1]}, "save_every": -1}, "save_every must be a finite number"),
        ({"grid": {"lambda_W": [0.1]}, "gtol": -1.0}, "gtol must be a finite number > 0"),
    ],
)
def test_bad_sweep_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sweep("plain", **{"fixed": {}} | kwargs)


def test_shape_parameters_on_the_grid_compile_once_each():
    ds = sweep(
        "plain",
        {"loss": "mse", "n": 2, "lambda_H": 1e-3},
        {"K": [2, 3], "d": [3], "lambda_W": [1e-3, 0.5]},
    )
    assert ds["loss"].shape == (2, 1, 2, 1) and bool(ds["converged"].all())
    assert set(ds["verdict"].values.ravel()) == {"agrees"}
    # the sweep's theory losses are ufm.theory's at each K
    for k, K in enumerate((2, 3)):
        problem = ufm.make("plain", loss="mse", K=K, n=2, d=3, lambda_W=0.5, lambda_H=1e-3)
        assert float(ds["theory_loss"].isel(K=k, d=0, lambda_W=1, seed=0)) == problem.theory().loss


def test_plot_hatches_non_converged_points_and_draws_the_boundary(tmp_path):
    grid = {"lambda_W": np.geomspace(1e-3, 1, 5), "lambda_H": np.geomspace(1e-3, 1, 4)}
    ds = sweep("plain", SMALL, grid, max_steps=7)
    failed = int((~ds["converged"]).sum())
    assert 0 < failed < ds["converged"].size  # 7 steps: converged only where it is easy
    ax = plot.phase_diagram(ds, "lambda_W", "lambda_H", "regime")
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(hatched) == failed
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    # one theory curve, lW lH = mu0^2 with mu0 = 1/(K sqrt(n)) (balanced)
    (line,) = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]
    xs, ys = line.get_xdata(), line.get_ydata()
    np.testing.assert_allclose(xs * ys, 1 / (3 * np.sqrt(2)) ** 2, rtol=1e-12)
    assert plot.save(ax, tmp_path / "p.svg").stat().st_size > 5_000
    ax = plot.phase_diagram(ds, "lambda_W", None, "steps", sel={"lambda_H": "0.01"})
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="also varies lambda_H"):
        plot.phase_diagram(ds, "lambda_W", None, "steps")


def test_cli_sweep_and_plot(tmp_path, capsys):
    out = tmp_path / "run.zarr"
    argv = ["sweep", "plain", "--loss", "mse", "--K", "3", "--n", "2", "--d", "4", "--grid"]
    argv += ["lambda_W=1e-3:1:4:log", "--grid", "lambda_H=1e-3,1e-1", "--seeds", "2"]
    assert cli.main(argv + ["--out", str(out), "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["points"] == 16 and summary["verdicts"] == {"agrees": 16}
    assert summary["regime_matches_theory"].startswith("16 of 16")
    ds = open_result(out)
    assert ds.attrs["fixed"] == {"loss": "mse", "K": 3, "n": 2, "d": 4}
    assert ds["lambda_W"].attrs["spacing"] == "log"
    png = tmp_path / "p.png"
    assert (
        cli.main(
            [
                "plot",
                str(out),
                "--x",
                "lambda_W",
                "--y",
                "lambda_H",
                "--color",
                "gap",
                "--out",
                str(png),
            ]
        )
        == 0
    )
    assert png.stat().st_size > 10_000
    for bad in (
        argv + ["--out", str(out)],  # exists, no --resume
        ["sweep", "plain", "--grid", "lambda_W=0:1:3:log", "--out", str(tmp_path / "x.zarr")],
        ["sweep", "plain", "--out", str(tmp_path / "x.zarr")],  # no grid
        ["plot", str(out), "--x", "K", "--out", str(png)],
        ["plot", str(tmp_path / "missing.zarr"), "--x", "lambda_W", "--out", str(png)],
        ["plot", str(out), "--x", "lambda_W", "--y", "lambda_H", "--out", str(tmp_path / "p.jpg")],
    ):
        assert cli.main(bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("ufm: error:") and "Traceback" not in err


@pytest.mark.slow
def test_two_process_sweep_with_jax_distributed(tmp_path):
    """Two processes on this machine, one CPU device each, joined by jax.distributed: one
    mesh over both, process 0 writes the store, both return it; equal to one process."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    out = tmp_path / "mp.zarr"
    script = (
        "import sys, jax\n"
        "jax.config.update('jax_enable_x64', True)\n"
        "jax.config.update('jax_cpu_collectives_implementation', 'gloo')\n"
        f"jax.distributed.initialize('localhost:{port}', num_processes=2, "
        "process_id=int(sys.argv[1]))\n"
        "import ufm\n"
        f"ds = ufm.sweep('plain', {SMALL!r}, {LAMBDAS!r}, seeds=2, out={str(out)!r})\n"
        "print(jax.process_index(), len(jax.devices()), int(ds['done'].sum()))\n"
    )
    env = _cli_env(tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(i)], env=env, stdout=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert [o.split()[-3:] for o in outputs] == [["0", "2", "8"], ["1", "2", "8"]]
    two = open_result(out)
    assert len(two.attrs["devices"]) == 2
    one = sweep("plain", SMALL, LAMBDAS, seeds=2)
    np.testing.assert_allclose(two["loss"].values, one["loss"].values, rtol=1e-12)
    np.testing.assert_array_equal(two["verdict"].values, one["verdict"].values)


def test_numerics_only_sweep_skips_the_theory():
    checked = sweep("plain", SMALL, LAMBDAS)
    bare = sweep("plain", SMALL, LAMBDAS, check=False)
    assert set(bare["verdict"].values.ravel()) == {"unchecked"}
    assert bool(bare["theory_loss"].isnull().all()) and bare.attrs["check"]["enabled"] is False
    np.testing.assert_array_equal(bare["loss"].values, checked["loss"].values)
    np.testing.assert_array_equal(bare["regime"].values, checked["regime"].values)
    np.testing.assert_array_equal(bare["nc1"].values, checked["nc1"].values)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, fixed, grid",
    [
        ("vicinity", {"K": 3, "n": 2, "d": 4}, {"beta": [0.1, 10.0], "noise": [0.0, 0.3]}),
        ("mixup", {"K": 3, "n": 4, "d": 2, "mix": "0.25,0.5"}, {"lambda_H": [1e-3, 1.0]}),
        (
            "mixup",
            {"K": 3, "n": 4, "d": 2, "classifier": "learned", "mix": "0.5"},
            {"lambda_W": [1e-3, 1.0]},
        ),
    ],
)
def test_every_model_sweeps_like_ufm_check(model, fixed, grid):
    ds = sweep(model, fixed, grid).isel(seed=0)
    for index in np.ndindex(ds["loss"].shape):
        at = dict(zip(ds["loss"].dims, index, strict=True))
        point = {name: ds[name].values[at[name]].item() for name in grid}
        problem = ufm.make(model, **fixed, **point)
        rep = ufm.check(problem, ufm.solve(problem))
        got = ds.isel(at)
        assert str(got["verdict"].values) == rep.verdict, point
        assert str(got["theory_regime"].values) == rep.theory.regime, point
        assert float(got["loss"]) == pytest.approx(rep.loss, rel=1e-12), point
