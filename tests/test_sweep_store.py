"""The sweep store never holds a value in the wrong cell, never passes off damage as results,
and `ufm plot --sel` never draws a grid value that was not asked for."""

import json
import shutil

import jax
import numpy as np
import pytest
import xarray as xr
import zarr

import ufm
from ufm import _sweep_store, cli, plot
from ufm._interrupts import Guard
from ufm.errors import InputError
from ufm.sweeps import open_result, repair, sweep

SMALL = {"loss": "mse", "K": 3, "n": 2, "d": 4}
LAMBDAS = {"lambda_W": [1e-3, 0.3], "lambda_H": [1e-3, 0.1]}
CLI_SMALL = ["sweep", "plain", "--loss", "mse", "--K", "3", "--n", "2", "--d", "4"]
CLI_GRID = ["--grid", "lambda_W=1e-3,0.3", "--grid", "lambda_H=1e-3,0.1", "--no-progress"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("UFM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax-cache"))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A complete store of SMALL over LAMBDAS (2 x 2 x 1 seed) and its values."""
    out = tmp_path_factory.mktemp("made") / "run.zarr"
    ds = sweep("plain", SMALL, LAMBDAS, out=out)
    return out, ds


@pytest.fixture
def store(made, tmp_path):
    """A fresh copy of the made store, free to damage."""
    copy = tmp_path / "run.zarr"
    shutil.copytree(made[0], copy)
    return copy


def _chunk(out, name: str):
    array = zarr.open_group(out, mode="r")[name]
    return out / name / array.metadata.encode_chunk_key((0,) * array.ndim)


def test_resume_with_the_grid_in_another_order_fills_the_right_cells(made, tmp_path, capsys):
    """The CLI with --grid flags in the other order resumes a partial store: every cell holds
    its own point's values (a transposed write would put lambda_W lambda_H = 3e-4 where it
    is 1e-4), and the result keeps the stored order of dimensions."""
    out = tmp_path / "run.zarr"
    stored = {"lambda_H": LAMBDAS["lambda_H"], "lambda_W": LAMBDAS["lambda_W"]}

    def stop(done, total):
        raise KeyboardInterrupt

    kw = {"seeds": 2, "chunk_size": 4}  # chunks of 4, as in `made`: no new compilation
    with pytest.raises(KeyboardInterrupt):  # the lambda_H = 1e-3 chunk is saved, not the other
        sweep("plain", SMALL, stored, out=out, progress=stop, **kw)
    partial = np.asarray(zarr.open_group(out, mode="r")["done"][...])
    assert partial.tolist() == [[[True, True], [True, True]], [[False, False], [False, False]]]
    argv = CLI_SMALL + CLI_GRID + ["--seeds", "2", "--chunk-size", "4", "--out", str(out)]
    assert cli.main(argv + ["--resume", "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["points"] == 8
    ds = open_result(out)
    assert list(ds["loss"].dims) == ["lambda_H", "lambda_W", "seed"]
    assert ds.attrs["runs"][-1]["solved"] == 4 and bool(ds["done"].all())
    for i, lam_H in enumerate(stored["lambda_H"]):
        for j, lam_W in enumerate(stored["lambda_W"]):
            theory = ufm.make("plain", **SMALL, lambda_W=lam_W, lambda_H=lam_H).theory()
            for seed in (0, 1):
                cell = ds.isel(lambda_H=i, lambda_W=j, seed=seed)
                assert (float(cell["lambda_H"]), float(cell["lambda_W"])) == (lam_H, lam_W)
                assert float(cell["theory_loss"]) == theory.loss
                assert float(cell["loss"]) == pytest.approx(theory.loss, rel=1e-8)
            fresh = made[1]["loss"].isel(lambda_W=j, lambda_H=i, seed=0)
            assert float(ds["loss"].isel(lambda_H=i, lambda_W=j, seed=0)) == pytest.approx(
                float(fresh), rel=1e-12
            )
    # the Python API in the other order: the same cells, the stored order of dimensions
    again = sweep("plain", SMALL, LAMBDAS, out=out, resume=True, **kw)
    assert list(again["loss"].dims) == ["lambda_H", "lambda_W", "seed"]
    np.testing.assert_array_equal(again["loss"].values, ds["loss"].values)
    # other values are refused, naming the axis; so are other dimensions
    other = {"lambda_W": [1e-3, 0.2], "lambda_H": [1e-3, 0.1]}
    with pytest.raises(InputError, match="values of lambda_W differ"):
        sweep("plain", SMALL, other, out=out, resume=True, **kw)
    with pytest.raises(InputError, match="grid dimensions lambda_H, lambda_W, not lambda_W"):
        sweep(
            "plain",
            SMALL | {"lambda_H": 0.1},
            {"lambda_W": [1e-3, 0.3]},
            out=out,
            resume=True,
            **kw,
        )


@pytest.mark.parametrize(
    "name, harm",
    [(n, h) for n in ("loss", "verdict", "lambda_W") for h in ("missing", "unreadable")]
    + [("done", "unreadable")],  # a missing `done` chunk only means points not solved yet
)
def test_a_damaged_chunk_is_named_on_resume_and_read_and_repaired(made, store, name, harm):
    """A deleted or garbled chunk file is an InputError naming the file on resume and on read
    (never NaN results counted as done); repair + resume solves those points again."""
    path = _chunk(store, name)
    if harm == "missing":
        path.unlink()
    else:
        path.write_bytes(b"not a zstd frame" * 3)
    message = f"is damaged: {path} is {harm}"
    with pytest.raises(InputError, match=message):
        sweep("plain", SMALL, LAMBDAS, out=store, resume=True)
    with pytest.raises(InputError, match=message):
        open_result(store)
    assert [d.file for d in repair(store)] == [path]
    ds = sweep("plain", SMALL, LAMBDAS, out=store, resume=True)
    solved = ds.attrs["runs"][-1]["solved"]
    assert solved == (0 if name == "lambda_W" else 4)  # a coordinate is rewritten from attrs
    for var in ("loss", "verdict", "theory_loss", "lambda_W"):
        np.testing.assert_array_equal(ds[var].values, made[1][var].values)
    assert repair(store) == []


def test_plot_names_the_damaged_file(store, tmp_path, capsys):
    path = _chunk(store, "loss")
    path.unlink()
    png = str(tmp_path / "p.png")
    argv = ["plot", str(store), "--x", "lambda_W", "--y", "lambda_H", "--out", png]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ufm: error: result:") and str(path) in err and "missing" in err
    assert "repair" in err and "Traceback" not in err


def test_resume_refuses_another_precision(store):
    with (
        jax.enable_x64(False),
        pytest.warns(ufm.PrecisionWarning, match="float64 is off"),
        pytest.raises(InputError, match="holds float64 results"),
    ):
        sweep("plain", SMALL, LAMBDAS, out=store, resume=True)


def test_explicit_defaults_resume_a_store_made_without_them(store, capsys):
    argv = CLI_SMALL + ["--lambda-b", "0", "--no-bias"] + CLI_GRID
    assert cli.main(argv + ["--out", str(store), "--resume", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["points"] == 4
    assert open_result(store).attrs["runs"][-1]["solved"] == 0
    with pytest.raises(InputError, match=r"made with bias=False, not bias=True"):
        sweep("plain", SMALL | {"bias": True}, LAMBDAS, out=store, resume=True)
    # and the other way round: made with the defaults spelt out, resumed without them
    out = store.parent / "spelt.zarr"
    sweep("plain", SMALL | {"bias": False, "lambda_b": 0.0}, LAMBDAS, out=out)
    ds = sweep("plain", SMALL, LAMBDAS, out=out, resume=True)
    assert ds.attrs["runs"][-1]["solved"] == 0


def test_old_stores_stay_readable(made, store):
    """A store made before every chunk was written (no `chunks_complete` attribute) may lack
    chunks that held only fill values: they read as before; a missing chunk that cannot be
    all fill (steps) is still damage."""
    group = zarr.open_group(store, mode="r+")
    attrs = group.attrs.asdict()
    del attrs[_sweep_store.COMPLETE], attrs["dtype"]
    group.attrs.clear()
    group.attrs.update(attrs)
    _chunk(store, "max_error").unlink()  # read as NaN, as the old store did
    ds = open_result(store)
    assert bool(ds["max_error"].isnull().all())
    np.testing.assert_array_equal(ds["loss"].values, made[1]["loss"].values)
    assert sweep("plain", SMALL, LAMBDAS, out=store, resume=True).attrs["runs"][-1]["solved"] == 0
    _chunk(store, "steps").unlink()
    with pytest.raises(InputError, match="steps/c/0/0/0 is missing"):
        open_result(store)


def test_a_store_is_made_whole_or_not_at_all(made, tmp_path, monkeypatch):
    out = tmp_path / "run.zarr"
    original = _sweep_store._fill

    def broken(group, *args):
        group.attrs.update({"format": _sweep_store.FORMAT})
        raise OSError("disk full")

    monkeypatch.setattr(_sweep_store, "_fill", broken)
    with pytest.raises(OSError, match="disk full"):
        sweep("plain", SMALL, {"lambda_W": [0.3]}, out=out)
    assert list(tmp_path.iterdir()) == []  # neither the store nor its hidden draft
    monkeypatch.setattr(_sweep_store, "_fill", original)
    # a half-made store from an older ufm (its attributes, no `done`) is refused with advice
    attrs = zarr.open_group(made[0], mode="r").attrs.asdict()
    zarr.open_group(out, mode="w").attrs.update(attrs)
    with pytest.raises(InputError, match="not a complete ufm sweep.*delete it"):
        sweep("plain", SMALL, LAMBDAS, out=out, resume=True)
    with pytest.raises(InputError, match="not a ufm sweep"):
        open_result(out)


def test_reported_points_are_on_disk_and_buffers_wait_at_most_save_every(tmp_path):
    """save_every=0: every point the progress reports is already in the store, so a hard
    kill loses only the chunks in flight. save_every=s: a finished chunk is written once the
    oldest unwritten one is s seconds old, also while the sweep waits for the devices."""
    out = tmp_path / "run.zarr"
    on_disk = []

    def progress(done, total):
        on_disk.append((done, int(np.sum(zarr.open_group(out, mode="r")["done"][...]))))

    sweep("plain", SMALL, LAMBDAS, out=out, seeds=2, chunk_size=4, save_every=0, progress=progress)
    assert on_disk == [(4, 4), (8, 8)]

    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    axis = type("Axis", (), {"coord": "x", "values": (1, 2, 3), "spacing": "list", "name": "x"})
    _sweep_store._fill(group, [axis], [0], {}, ["x", "seed"], (3, 1))
    clock = [0.0]
    store = _sweep_store.Store(group, ["x", "seed"], (3, 1), True, Guard(active=False))
    store.clock = lambda: clock[0]
    saved = lambda: int(np.sum(group["done"][...]))
    column = lambda i: ((np.array([i]), np.array([0])), {"loss": np.array([float(i)])})
    clock[0] = 10.0
    store.add(*column(0), save_every=2.0)  # buffered at t=10
    clock[0] = 11.9
    store.add(*column(1), save_every=2.0)
    store.flush_if_due(2.0)
    assert saved() == 0
    clock[0] = 12.0  # the oldest is 2 s old: written while waiting, before any new chunk
    store.flush_if_due(2.0)
    assert saved() == 2 and group["loss"][:, 0].tolist()[:2] == [0.0, 1.0]


def test_sel_refuses_values_off_the_grid():
    values = np.geomspace(1e-3, 0.1, 5)
    ds = xr.Dataset(
        {"loss": (("lambda_W", "lambda_H", "seed"), np.arange(10.0).reshape(5, 2, 1))},
        coords={"lambda_W": values, "lambda_H": [1e-3, 1e-2], "seed": [0]},
    )
    with pytest.raises(InputError, match=r"lambda_W=500 is not a value of the grid.*0\.1$"):
        plot.select(ds, "lambda_H", None, {"lambda_W": "500"})
    for k, v in enumerate(values):  # the printed value (7 digits) and the exact one
        for text in (f"{v:.7g}", repr(float(v))):
            got = plot.select(ds, "lambda_H", None, {"lambda_W": text})
            assert float(got["lambda_W"]) == v and got["loss"].values.ravel().tolist() == [
                2.0 * k,
                2.0 * k + 1,
            ]
    off = values[2] * (1 + 3e-6)
    with pytest.raises(InputError, match="not a value of the grid"):
        plot.select(ds, "lambda_H", None, {"lambda_W": repr(float(off))})


def test_cli_plot_sel_off_the_grid_exits_2(store, tmp_path, capsys):
    png = str(tmp_path / "p.png")
    argv = ["plot", str(store), "--x", "lambda_W", "--sel", "lambda_H=500", "--out", png]
    assert cli.main(argv + ["--color", "steps"]) == 2
    err = capsys.readouterr().err
    assert "lambda_H=500 is not a value of the grid" in err and "0.001, 0.1" in err
    argv[5] = "lambda_H=0.1"
    assert cli.main(argv + ["--color", "steps"]) == 0


def test_a_variable_first_seen_later_covers_the_points_saved_before(tmp_path):
    """An error_* or string column that first appears after points were saved gets its
    chunks written under those points (fill values), so that a missing chunk file under a
    saved point always means damage."""
    out = tmp_path / "s.zarr"
    group = zarr.open_group(out, mode="w")
    n = 300_000  # several chunks per variable
    axis = type("Axis", (), {"coord": "x", "values": tuple(range(n)), "spacing": "list"})
    axis.name = "x"
    _sweep_store._fill(group, [axis], [0], {"format": _sweep_store.FORMAT}, ["x", "seed"], (n, 1))
    store = _sweep_store.Store(group, ["x", "seed"], (n, 1), True, Guard(active=False))
    early = np.arange(0, n, 7)
    store.write((early, 0 * early), {"steps": np.ones(len(early), dtype=np.int64)})
    late = {"steps": np.array([3]), "geometry": np.array(["etf"]), "error_x": np.array([0.5])}
    store.write((np.array([5]), np.array([0])), late)
    assert len(group["error_x"].chunks) == 2 and group["error_x"].chunks[0] < n
    assert _sweep_store.damage(group, out, decode=True) == []
    assert group["geometry"][:7, 0].tolist() == ["", "", "", "", "", "etf", ""]
    assert np.isnan(group["error_x"][early, 0]).all() and group["error_x"][5, 0] == 0.5
    (out / "error_x" / "c" / "1" / "0").unlink()
    (missing,) = _sweep_store.damage(group, out, decode=False)
    assert missing.name == "error_x" and missing.why.startswith("missing")


def test_cli_repair_then_resume_restores_the_store(made, store, capsys):
    path = _chunk(store, "loss")
    path.unlink()
    assert cli.main(["repair", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: missing" in out and "1 damaged chunk file(s)" in out
    ds = sweep("plain", SMALL, LAMBDAS, out=store, resume=True)
    np.testing.assert_array_equal(ds["loss"].values, made[1]["loss"].values)
    assert cli.main(["repair", str(store)]) == 0
    assert "0 damaged chunk file(s)" in capsys.readouterr().out
    assert cli.main(["repair", str(store / "nothing")]) == 2
    assert "RESULT:" in capsys.readouterr().err
