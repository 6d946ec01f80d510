"""`ufm.landscape`: the census of stationary points, its Hessian analysis and its command.

Every expected number is computed here independently: the dense Hessian by `jax.hessian`
and `numpy.linalg.eigvalsh`, the orbit dimension from its formula, the spectrum at W = H = 0
in closed form (derived below)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ufm
from ufm import _hessian, _symmetry, cli
from ufm.landscape import landscape, zero_point

# deep linear with M = 1 is the plain UFM with parameters H, W1; MSE without bias
COUNTS = (5, 3, 2)
LW, LH, D = 0.1, 0.25, 3
SMALL = dict(loss="mse", K=3, n=COUNTS, d=D, depth=1, lambda_W=LW, lambda_H=LH)


def test_lanczos_bottom_matches_the_dense_hessian_off_the_orbit():
    """At an arbitrary point of a deep model (M = 2): the Lanczos bottom of the Hessian
    restricted to the complement of the symmetry's tangents equals eigvalsh of C^T H C, H
    from jax.hessian and C an orthonormal basis of that complement, built here."""
    problem = ufm.make("deep-linear", loss="ce", K=3, n=2, d=4, depth=2, lambda_W=0.01,
                       lambda_H=0.02)  # fmt: skip
    params = problem.init(jax.random.PRNGKey(3), jnp.asarray(1.0))
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    H = np.asarray(jax.hessian(lambda x: problem.loss(unravel(x)))(flat))
    T = np.stack([np.asarray(jax.flatten_util.ravel_pytree(t)[0])
                  for t in problem.symmetry_tangents(params)], axis=1)  # fmt: skip
    U, s, _ = np.linalg.svd(T)
    rank = int(np.sum(s > 1e-9 * s[0]))
    assert rank == 2 * 6  # two generic O(4) orbits: 6 + 6
    C = U[:, rank:]
    expected = np.linalg.eigvalsh(C.T @ H @ C)[:5]
    tangents = problem.symmetry_tangents(params)
    found = _hessian.spectrum(problem, params, tangents, 5, 1e-4, "lanczos")
    assert found.method == "lanczos" and found.symmetry_zeros == rank
    np.testing.assert_allclose(found.smallest, expected, rtol=1e-8, atol=1e-10)
    dense = _hessian.spectrum(problem, params, tangents, 5, 1e-4, "dense")
    np.testing.assert_allclose(dense.smallest, expected, rtol=1e-10, atol=1e-12)
    assert found.largest == pytest.approx(np.abs(np.linalg.eigvalsh(H)).max(), rel=1e-5)


@pytest.mark.parametrize("rank", [0, 1, 2, 4])
def test_orbit_dimension_is_the_formula_for_a_rank_r_point(rank):
    """O(d) acting on the features of a point whose W rows and H columns span r of the
    d = 5 dimensions: the tangents have rank d(d-1)/2 - (d-r)(d-r-1)/2."""
    d, K, N = 5, 4, 8
    rng = np.random.default_rng(rank)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0][:, :rank]
    params = {"W1": rng.standard_normal((K, rank)) @ basis.T,
              "H": basis @ rng.standard_normal((rank, N))}  # fmt: skip
    tangents = _symmetry.rotation_tangents(params, left="W1", right="H")
    flatten = lambda t: np.concatenate([np.ravel(t[k]) for k in sorted(t)])
    Q = _hessian.tangent_basis(tangents, flatten, K * d + d * N, 1.0)
    expected = d * (d - 1) // 2 - (d - rank) * (d - rank - 1) // 2
    assert Q.shape[1] == expected == _symmetry.orbit_dimension(d, rank)
    np.testing.assert_allclose(Q.T @ Q, np.eye(expected), atol=1e-12)


def zero_point_spectrum() -> np.ndarray:
    """The Hessian of f = ||W H - Y||^2/(2N) + lW/2 ||W||^2 + lH/2 ||H||^2 at W = H = 0.

    Only the cross term -<Y, W H>/N is of second order: for each singular pair
    (sigma_k = sqrt(n_k), e_k, y_k/sqrt(n_k)) of Y and each unit e in R^d, the directions
    dW = e_k e^T, dH = e y_k^T/sqrt(n_k) carry the 2 x 2 block [[lW, -s], [-s, lH]] with
    s = sqrt(n_k)/N: eigenvalues (lW+lH)/2 -+ sqrt(((lW-lH)/2)^2 + s^2), d times each. The
    rest of H (columns orthogonal to Y's rows: d (N - K) directions) has curvature lH."""
    N = sum(COUNTS)
    values = []
    for n_k in COUNTS:
        s = np.sqrt(n_k) / N
        r = np.sqrt(((LW - LH) / 2) ** 2 + s**2)
        values += [(LW + LH) / 2 - r] * D + [(LW + LH) / 2 + r] * D
    values += [LH] * (D * (N - len(COUNTS)))
    return np.sort(values)


@pytest.fixture(scope="module")
def small_census():
    problem = ufm.make("deep-linear", **SMALL)
    return problem, landscape(problem, 4, points={"zero": zero_point(problem)}, bottom=50)


def test_zero_point_is_a_saddle_with_the_analytic_index_and_spectrum(small_census):
    problem, result = small_census
    zero = result.points[0]
    expected = zero_point_spectrum()
    np.testing.assert_allclose(zero.spectrum.smallest, expected, rtol=1e-12, atol=1e-14)
    # negative iff n_k / N^2 > lW lH: here classes of 5 and 3 samples (6.25e-2 > 0.025)
    index = D * sum(n_k / sum(COUNTS) ** 2 > LW * LH for n_k in COUNTS)
    assert zero.kind == "saddle" and zero.index == index == 2 * D
    assert zero.stationary and zero.grad_norm == 0.0 and zero.spectrum.symmetry_zeros == 0


def test_census_finds_the_global_minimum_with_its_orbit(small_census):
    """Every restart of this convex-like case (M = 1) ends at the closed form's minimum; its
    zero eigenvalues are exactly those of the O(d) orbit (rank r of the point)."""
    problem, result = small_census
    assert result.converged == 4 and len(result.groups) == 1
    best = result.groups[0]
    assert best.kind == "global_minimum" and best.count == 4 and best.fraction == 1.0
    assert best.loss == pytest.approx(ufm.theory(problem).loss, rel=1e-10)
    sv = best.invariants["logits_sv"]
    rank = int(np.sum(sv > 1e-8 * sv.max()))
    assert best.spectrum.symmetry_zeros == _symmetry.orbit_dimension(D, rank)
    assert best.spectrum.unexplained_zeros == 0 and best.spectrum.smallest[0] > 0
    assert best.spectrum.symmetry_residual < best.spectrum.zero_tol


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_summary_is_strict_json(small_census):
    _, result = small_census
    data = _strict(json.dumps(result.summary(), allow_nan=False))
    assert data["counts"]["saddle"] == 0 and data["points"][0]["kind"] == "saddle"
    assert data["groups"][0]["hessian"]["symmetry"] == "known"


def test_cli_json_is_strict_and_lists_the_groups(small_census, capsys):
    flags = ["--loss", "mse", "--K", "3", "--n", "5,3,2", "--d", "3", "--depth", "1",
             "--lambda-W", "0.1", "--lambda-H", "0.25"]  # fmt: skip
    assert cli.main(["landscape", "deep-linear", *flags, "--restarts", "4", "--zero-point",
                     "--json"]) == 0  # fmt: skip
    data = _strict(capsys.readouterr().out)
    assert data["restarts"] == 4 and [g["kind"] for g in data["groups"]] == ["global_minimum"]
    assert data["points"][0]["index"] == 2 * D


@pytest.mark.parametrize(
    "flags, name",
    [(["--restarts", "0"], "restarts"), (["--bottom", "0"], "bottom"),
     (["--zero-rtol", "-1"], "zero_rtol"), (["--gtol", "0"], "gtol")],
)  # fmt: skip
def test_cli_bad_input_exits_2_naming_the_parameter(flags, name, capsys):
    assert cli.main(["landscape", "deep-linear", "--K", "3", "--d", "3", *flags]) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err


def test_bad_points_are_refused_before_any_solve():
    problem = ufm.make("deep-linear", **SMALL)
    with pytest.raises(ufm.InputError, match="points"):
        landscape(problem, 2, points={"bad": {"H": np.zeros((2, 2))}})


def test_model_hooks_mixup_fixed_etf_keeps_only_the_rotations_off_its_rows():
    """mixup: a learned W has the whole O(d); a fixed simplex ETF (K - 1 = 2 rows' span in
    d = 5) leaves O(3) acting on the complement, which fixes features inside the span; the
    vicinity model has no symmetry ([]), a model without the hook says None."""
    d = 5
    fixed = ufm.make("mixup", K=3, n=2, d=d, mix="0.5")
    W = np.asarray(fixed.fixed_classifier(np.float64))
    rng = np.random.default_rng(0)
    columns = fixed.counts.size
    flatten = lambda t: np.concatenate([np.ravel(t[k]) for k in sorted(t)])
    inside = {"H": W.T @ rng.standard_normal((3, columns))}  # features in the rows' span
    general = {"H": rng.standard_normal((d, columns))}
    rank = lambda p: _hessian.tangent_basis(fixed.symmetry_tangents(p), flatten, d * columns,
                                            1.0).shape[1]  # fmt: skip
    assert rank(inside) == 0
    assert rank(general) == _symmetry.orbit_dimension(3, 3)  # O(3) on the complement: 3
    learned = ufm.make("mixup", K=3, n=2, d=d, mix="0.5", classifier="learned")
    params = {"H": general["H"], "W": rng.standard_normal((3, d))}
    Q = _hessian.tangent_basis(learned.symmetry_tangents(params), flatten, d * (columns + 3), 1.0)
    assert Q.shape[1] == _symmetry.orbit_dimension(d, d)
    assert ufm.make("vicinity").symmetry_tangents(None) == []
    assert ufm.AbstractProblem.symmetry_tangents(fixed, inside) is None


@pytest.mark.slow  # ~30 s: two censuses of 32 restarts, compilation included
def test_landscape_figure(tmp_path):
    import importlib.util
    from pathlib import Path

    from test_figures import check_layout

    path = Path(__file__).resolve().parents[1] / "figures" / "landscape.py"
    spec = importlib.util.spec_from_file_location("landscape_figure", path)
    fig_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fig_module)
    data = fig_module.compute(quick=True)
    deep, vicinity = data.values()
    assert [g["kind"] for g in deep["groups"]] == ["global_minimum", "spurious_minimum"]
    assert deep["groups"][0]["loss"] == pytest.approx(deep["theory_loss"], rel=1e-10)
    assert [g["kind"] for g in vicinity["groups"]] == ["global_minimum", "degenerate"]
    assert vicinity["groups"][1]["hessian"]["unexplained_zeros"] == 3  # K - 1
    out = tmp_path / "landscape.png"
    figure = fig_module.plot(data, out)
    try:
        assert 5_000 < out.stat().st_size < 150_000
        check_layout(fig_module, figure, out)
    finally:
        fig_module._style.close(figure)
