"""Phase diagrams of a sweep: numerics as colored cells, the theory's boundary on top.

``phase_diagram(result, x="lambda_W", y="lambda_H", color="regime")`` draws one cell per
grid point (the best seed: lowest loss among converged seeds), hatches the points where no
seed converged (they are drawn, never hidden), and overlays the theory's phase boundary:
the closed-form curves of the model where it has them (plain UFM: sqrt(lambda_W lambda_H)
= critical values, e.g. K sqrt(n lambda_W lambda_H) = 1), otherwise the edges between grid
cells whose predicted regime (``theory_regime``) differs.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm, Normalize
from matplotlib.patches import Patch, Rectangle

from .errors import InputError
from .sweeps import COORD_NAMES, open_result

FORMATS = (".png", ".pdf", ".svg")
CATEGORY_COLORS = {
    "zero": "#bdbdbd",
    "collapsed": "#3182bd",
    "minority_collapse": "#fd8d3c",
    "low_rank": "#9e9ac8",
    "not_applicable": "#ffffff",
    "agrees": "#31a354",
    "disagrees": "#de2d26",
    "inconclusive": "#bdbdbd",
}
ALIASES = {"gap": "loss_gap"}
SEL_RTOL = 1e-6  # --sel matches a grid value within this relative difference


def best_seed(ds: xr.Dataset) -> xr.Dataset:
    """Per grid point, the seed with the lowest loss among converged ones (else lowest)."""
    if "seed" not in ds.dims:
        return ds
    loss = ds["loss"].fillna(np.inf)
    ranked = xr.where(ds["converged"], loss, np.inf)
    choice = xr.where(ranked.min("seed") < np.inf, ranked.argmin("seed"), loss.argmin("seed"))
    return ds.isel(seed=choice)


def select(ds: xr.Dataset, x: str, y: str | None, sel: dict[str, str]) -> xr.Dataset:
    """The 2-D (or 1-D) slice to draw; every other grid dimension must be chosen in `sel`."""
    coords = {name: COORD_NAMES.get(name, name) for name in [x, y] if name is not None}
    grid_dims = [d for d in ds.dims if d != "seed"]
    for name, coord in coords.items():
        if coord not in grid_dims:
            raise InputError(
                f"{'x' if name == x else 'y'}: {name!r} is not a grid dimension of this sweep; "
                f"grid: {', '.join(grid_dims) or 'none'}"
            )
    if y is not None and coords[x] == coords[y]:
        raise InputError(f"x and y are both {x!r}")
    indexers = {}
    for name, text in sel.items():
        coord = COORD_NAMES.get(name, name)
        if coord not in grid_dims:
            raise InputError(f"sel: {name!r} is not a grid dimension; grid: {', '.join(grid_dims)}")
        values = ds[coord].values
        if values.dtype.kind in "fiu":
            try:
                target = float(text)
            except ValueError:
                raise InputError(f"sel: {name}={text!r} is not a number") from None
            indexers[coord] = _grid_index(name, text, target, values)
        else:
            matches = [i for i, v in enumerate(values) if str(v) == str(text)]
            if not matches:
                raise InputError(f"sel: {name}={text!r}; values: {', '.join(map(str, values))}")
            indexers[coord] = matches[0]
    rest = [d for d in grid_dims if d not in coords.values() and d not in indexers]
    for d in rest:
        if ds.sizes[d] == 1:
            indexers[d] = 0
        else:
            raise InputError(
                f"the sweep also varies {d} ({', '.join(map(str, ds[d].values))}); "
                f"choose one with sel={{{d!r}: VALUE}} (--sel {d}=VALUE)"
            )
    return ds.isel(indexers)


def _grid_index(name: str, text: str, target: float, values: np.ndarray) -> int:
    """The grid value `target` stands for: equal within SEL_RTOL (users type the printed
    value), never merely the nearest."""
    gap = np.abs(values.astype(float) - target)
    k = int(np.argmin(gap))
    if gap[k] <= SEL_RTOL * max(abs(target), abs(float(values[k]))):
        return k
    raise InputError(
        f"sel: {name}={text} is not a value of the grid; {name} is one of "
        f"{', '.join(f'{v:.7g}' for v in values)}"
    )


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    v = np.log(values) if log else values.astype(float)
    if v.size == 1:
        mid = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        inner = (v[1:] + v[:-1]) / 2
        mid = np.concatenate([[2 * v[0] - inner[0]], inner, [2 * v[-1] - inner[-1]]])
    return np.exp(mid) if log else mid


def _is_log(ds: xr.Dataset, coord: str) -> bool:
    values = ds[coord].values
    spacing = ds[coord].attrs.get("spacing")
    if values.dtype.kind not in "fiu" or np.any(values <= 0):
        return False
    return spacing == "log" or (spacing is None and values.max() / values.min() >= 100)


def _positions(ds: xr.Dataset, coord: str):
    """Numeric positions of a coordinate (strings and booleans get 0, 1, ...)."""
    values = ds[coord].values
    if values.dtype.kind in "fiu":
        return values.astype(float), None
    return np.arange(values.size, dtype=float), [str(v) for v in values]


def phase_diagram(
    result,
    x: str,
    y: str | None = None,
    color: str = "regime",
    sel: dict[str, str] | None = None,
    ax=None,
    boundary: bool = True,
    title: str | None = None,
):
    """Draw `color` over the (x, y) grid of a sweep (a Dataset or a saved store's path).

    color: ``regime`` (read off the solutions), ``theory_regime``, ``verdict``, ``gap``
    (|loss_gap| on a log scale), or any numeric variable (``nc1``, ``steps``, ...). Without
    `y`, a line of `color` against `x` (numeric only), non-converged points marked.
    Returns the matplotlib Axes.
    """
    ds = result if isinstance(result, xr.Dataset) else open_result(result)
    color = ALIASES.get(color, color)
    if color not in ds.data_vars:
        names = sorted(set(ds.data_vars) - {"done", "reason", "status"})
        raise InputError(
            f"color: {color!r} is not a variable of this sweep; one of {', '.join(names)}"
        )
    ds = best_seed(select(ds, x, y, dict(sel or {})))
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 5.0), constrained_layout=True)
    if y is None:
        return _line(ds, x, color, ax, title)
    cx, cy = COORD_NAMES.get(x, x), COORD_NAMES.get(y, y)
    ds = ds.transpose(cy, cx)
    logx, logy = _is_log(ds, cx), _is_log(ds, cy)
    px, xlabels = _positions(ds, cx)
    py, ylabels = _positions(ds, cy)
    ex, ey = _edges(px, logx), _edges(py, logy)
    data = ds[color].values

    if data.dtype.kind in "OUT":
        handles = _categories(ax, data, ex, ey)
    else:
        handles = _values(ax, data, color, ex, ey)
    handles += _unfinished(ax, ds, ex, ey)
    if boundary:
        handles += _boundary(ds, x, y, cx, cy, ex, ey, logx, logy, ax)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_xlim(ex[0], ex[-1])
    ax.set_ylim(ey[0], ey[-1])
    for labels, set_ticks, set_labels, pos in (
        (xlabels, ax.set_xticks, ax.set_xticklabels, px),
        (ylabels, ax.set_yticks, ax.set_yticklabels, py),
    ):
        if labels:
            set_ticks(pos)
            set_labels(labels)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or _title(ds, color), fontsize=9)
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best", framealpha=0.85)
    return ax


def _categories(ax, data: np.ndarray, ex: np.ndarray, ey: np.ndarray) -> list:
    """Cells of a categorical variable (regime, verdict, ...) in fixed colors; legend handles."""
    categories = [c for c in CATEGORY_COLORS if c in set(data.ravel())]
    categories += sorted(set(data.ravel()) - set(categories) - {""})
    codes = np.full(data.shape, np.nan)
    for k, c in enumerate(categories):
        codes[data == c] = k
    palette = [CATEGORY_COLORS.get(c, f"C{k}") for k, c in enumerate(categories)]
    cmap = ListedColormap(palette or ["white"])
    norm = BoundaryNorm(np.arange(len(palette) + 1) - 0.5, max(len(palette), 1))
    ax.pcolormesh(ex, ey, codes, cmap=cmap, norm=norm, edgecolors="face")
    return [
        Patch(facecolor=p, edgecolor="k", lw=0.5, label=c)
        for c, p in zip(categories, palette, strict=True)
    ]


def _values(ax, data: np.ndarray, color: str, ex: np.ndarray, ey: np.ndarray) -> list:
    """Cells of a numeric variable with a colorbar (log scale over two decades or more;
    loss_gap as log10 |gap|); no legend handles."""
    values = data.astype(float)
    label = color
    if color == "loss_gap":
        values = np.log10(np.maximum(np.abs(values), 1e-17))
        label = "log10 |loss gap|"
    finite = values[np.isfinite(values)]
    positive = finite.size and finite.min() > 0
    if positive and finite.max() / finite.min() >= 100:
        norm = LogNorm(finite.min(), finite.max())
    else:
        norm = Normalize(*(finite.min(), finite.max()) if finite.size else (0, 1))
    mesh = ax.pcolormesh(ex, ey, np.ma.masked_invalid(values), norm=norm, cmap="viridis")
    ax.figure.colorbar(mesh, ax=ax, label=label)
    return []


def _unfinished(ax, ds: xr.Dataset, ex: np.ndarray, ey: np.ndarray) -> list:
    """Points no seed converged: hatched, never hidden; points not yet solved: counted in the
    legend (their cells stay empty). Returns the legend handles."""
    done = ds["done"].values
    failed = done & ~ds["converged"].values
    for i, j in zip(*np.nonzero(failed), strict=True):
        ax.add_patch(
            Rectangle(
                (ex[j], ey[i]), ex[j + 1] - ex[j], ey[i + 1] - ey[i], fill=False, hatch="xxx", lw=0
            )
        )
    handles = []
    if failed.any():
        handles.append(Patch(fill=False, hatch="xxx", label=f"not converged ({int(failed.sum())})"))
    if (~done).any():
        handles.append(
            Patch(facecolor="white", edgecolor="k", label=f"not solved yet ({int((~done).sum())})")
        )
    return handles


def _boundary(ds, x, y, cx, cy, ex, ey, logx, logy, ax) -> list:
    """The theory's phase boundary: closed-form curves where the model has them (plain UFM,
    lambda_W and lambda_H on the axes), else edges between cells of different theory regime."""
    curves = _critical_curves(ds, x, y)
    if curves is not None:
        handles = []
        styles = iter(["-", "--", ":", "-."] * 4)
        for label, mu in curves:
            style = next(styles)
            xs = np.geomspace(ex[0], ex[-1], 200) if logx else np.linspace(ex[0], ex[-1], 200)
            ax.plot(xs, mu**2 / xs, color="k", ls=style, lw=1.5)
            handles.append(plt.Line2D([], [], color="k", ls=style, label=f"theory: {label}"))
        return handles
    regime = ds["theory_regime"].values
    segments = []
    for i in range(regime.shape[0]):
        for j in range(regime.shape[1]):
            if j + 1 < regime.shape[1] and regime[i, j] != regime[i, j + 1]:
                segments.append(([ex[j + 1], ex[j + 1]], [ey[i], ey[i + 1]]))
            if i + 1 < regime.shape[0] and regime[i, j] != regime[i + 1, j]:
                segments.append(([ex[j], ex[j + 1]], [ey[i + 1], ey[i + 1]]))
    for xs, ys in segments:
        ax.plot(xs, ys, color="k", lw=1.5)
    if not segments:
        return []
    return [plt.Line2D([], [], color="k", label="theory: regime boundary (grid)")]


def _critical_curves(ds, x, y):
    """[(label, mu)] for curves lambda_W lambda_H = mu^2, if the model gives them."""
    if {x, y} != {"lambda_W", "lambda_H"}:
        return None
    from .registry import make

    hyper = dict(ds.attrs.get("fixed", {}))
    for d in ds.dims:
        if d != "seed" and ds[d].size == 1:  # a selected grid dimension
            name = ds[d].attrs.get("hyperparameter", d)
            hyper[name] = ds[d].values.item()
    hyper = {k: v for k, v in hyper.items() if k not in ("lambda_W", "lambda_H")}
    try:
        problem = make(ds.attrs["model"], **hyper)
    except (ValueError, TypeError):
        return None
    if not hasattr(problem, "critical_mu"):
        return None
    return problem.critical_mu()


def _line(ds, x, color, ax, title):
    cx = COORD_NAMES.get(x, x)
    values = ds[color].values
    if values.dtype.kind not in "fiub":
        raise InputError(f"color: {color!r} is categorical; a 1-D plot needs a numeric variable")
    px, labels = _positions(ds, cx)
    values = values.astype(float)
    if color == "loss_gap":
        values = np.abs(values)
    ax.plot(px, values, "o-", ms=3, label=color)
    bad = ds["done"].values & ~ds["converged"].values
    if bad.any():
        ax.plot(px[bad], values[bad], "rx", ms=8, label="not converged")
    if _is_log(ds, cx):
        ax.set_xscale("log")
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() >= 100:
        ax.set_yscale("log")
    if labels:
        ax.set_xticks(px)
        ax.set_xticklabels(labels)
    ax.set_xlabel(x)
    ax.set_ylabel(color)
    ax.set_title(title or _title(ds, color), fontsize=9)
    ax.legend(fontsize=7)
    return ax


def _title(ds, color) -> str:
    fixed = ", ".join(f"{k}={v}" for k, v in ds.attrs.get("fixed", {}).items())
    return f"{ds.attrs.get('model', '')} ({fixed}): {color}"


def save(ax, path) -> Path:
    """Write the figure of `ax` to a .png, .pdf or .svg file."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise InputError(f"out: {str(path)!r} must end in {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise InputError(f"out: directory {str(path.parent)!r} does not exist")
    ax.figure.savefig(path, dpi=150)
    plt.close(ax.figure)
    return path
