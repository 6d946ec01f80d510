"""What every figure script shares: paper sizes and fonts, the round-off band, saving.

Sizes are those of a two-column paper: a figure is one column (3.4 in) or the full text
width (7 in) wide, drawn at that size with fonts of 7 to 8 pt, so it is printed at 100 %.

Round-off: a quantity whose exact value is 0 (a collapsed NC1, the distance of an orthogonal
frame from an orthogonal frame, the rank-deficient part of a spectrum) comes out of float64
arithmetic as a number at the size of its rounding errors, which says nothing about the
model. Each script derives, per quantity, the largest value round-off can produce (its
floor); `floored` draws values above it as data and values at or below it as hollow markers
inside a shaded band labelled ``round-off (exact)``, never as data points.
"""

import contextlib
import io
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

COLUMN = 3.4  # inches: one column of a two-column paper
DOUBLE = 7.0  # inches: the full text width
DPI = 200  # of the written PNGs: 1400 px across a double-column figure
ROUNDOFF_LABEL = "round-off (exact)"
ROUNDOFF_GID = "roundoff"  # the gid of the markers drawn in the band (tests look for it)
BAND_DECADES = 1.5  # the band's height on a log axis: it spans floor 10^-1.5 .. floor
BAND_COLOR = "0.88"
# A relative loss gap loss / predicted - 1 compares two sums of at most a few hundred terms
# (N K squared residuals or log-sum-exps, plus the penalties), each rounded to eps relative:
# each sum carries up to ~(terms) eps ~ 4e-14 relative (48 x 4 terms here), and so does the
# gap. Below 1e-13 the solver's loss equals the prediction to round-off.
LOSS_GAP_FLOOR = 1e-13

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 8,
    "legend.frameon": False,
    "lines.markersize": 4,
    "lines.linewidth": 1.1,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "hatch.linewidth": 0.6,
    "savefig.dpi": DPI,
    "figure.dpi": 100,
}


@contextlib.contextmanager
def context():
    """rcParams for paper figures, restored on exit (the scripts run inside tests too)."""
    with mpl.rc_context(RC):
        yield


def band_marker_y(floor: float) -> float:
    """Where a value at or below `floor` is drawn: the middle of the band (log axis)."""
    return floor * 10 ** (-BAND_DECADES / 2)


def floor_band(ax, floor: float) -> None:
    """Shade everything up to `floor` on a log y axis and keep the band in view."""
    bottom = floor * 10**-BAND_DECADES
    ax.axhspan(bottom, floor, color=BAND_COLOR, lw=0, zorder=0)
    ax.set_ylim(bottom=bottom)
    ax.set_yscale("log")


def floored(ax, x, y, floor: float, fmt: str = "o", *, color, label=None, **kw):
    """Draw |y| against x on a log axis: values above `floor` as ordinary data (fmt), values
    at or below it (exact zeros included) as hollow markers in the round-off band, never
    joined to the data. Returns the data line."""
    x = np.asarray(x, dtype=float)
    y = np.abs(np.asarray(y, dtype=float))
    above = y > floor
    (line,) = ax.plot(x, np.where(above, y, np.nan), fmt, color=color, label=label, **kw)
    ax.set_yscale("log")
    if not above.all():
        marker = line.get_marker() if line.get_marker() not in ("None", "", None) else "o"
        ax.plot(
            x[~above],
            np.full(int((~above).sum()), band_marker_y(floor)),
            ls="none",
            marker=marker,
            mfc="white",
            mec=color,
            mew=0.9,
            ms=kw.get("ms", kw.get("markersize", 4)),
            gid=ROUNDOFF_GID,
            zorder=2.5,
        )
        floor_band(ax, floor)
    return line


def value_text(value: float, floor: float, fmt: str = ".0e") -> str:
    """`value` for a title, or "0 (round-off)" where |value| is at or below its floor."""
    return "0 (round-off)" if abs(value) <= floor else format(value, fmt)


def roundoff_handle():
    """A legend entry for the band and its hollow markers."""
    return (
        Patch(facecolor=BAND_COLOR, edgecolor="none"),
        Line2D([], [], ls="none", marker="o", mfc="white", mec="0.3", ms=4),
    )


def mark_unconverged(ax) -> int:
    """Make the hatched cells `ufm.plot.phase_diagram` draws where no seed converged visible
    at print size (a cell of a 48 x 48 grid is ~1.5 mm): paled and densely hatched, never
    hidden. Returns how many there are."""
    cells = [p for p in ax.patches if p.get_hatch()]
    for cell in cells:
        cell.set(fill=True, facecolor=(1, 1, 1, 0.55), edgecolor="k", hatch="xxxx", lw=0)
    return len(cells)


def unconverged_handle():
    return Patch(facecolor=(1, 1, 1, 0.55), edgecolor="k", hatch="xxxx", lw=0)


def render(draw, data, out: Path, quantize: bool = False):
    """`draw(data)` in the paper style, written to `out` (`save`); returns the figure (open:
    the caller closes it)."""
    with context():
        fig = draw(data)
        save(fig, out, quantize=quantize)
    return fig


def save(fig, out: Path, quantize: bool = False) -> None:
    """Write `fig` trimmed to its artists (titles and outside legends included); with
    `quantize`, as a 256-colour PNG (a third of the size, for the README's figures)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not quantize:
        fig.savefig(out, dpi=DPI, bbox_inches="tight", pad_inches=0.02)
        return
    import PIL.Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.02)
    image = PIL.Image.open(buffer).convert("RGB")
    image = image.quantize(256, dither=PIL.Image.Dither.NONE)
    image.save(out, optimize=True, dpi=(DPI, DPI))


def close(fig) -> None:
    plt.close(fig)
