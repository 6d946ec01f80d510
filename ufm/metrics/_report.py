"""NC metrics of real networks' features at any scale: streaming `Accumulator`, `report`.

Rows stream through `Accumulator.update` (class counts, means, within-class scatter and
per-class variances in O(K d + d^2) memory, see `_stats`); pair statistics are reduced in
blocks of rows (`_pairs`), so K x K is never held; NC4, which compares every sample's
classifier decision with its nearest class mean, is a second pass over the samples.

Everything is computed in float64 (with x64 on): float16 and float32 inputs are cast
batch by batch. Handling of awkward inputs, each stated in the report's ``notes``:
  - a square H (d = N) is rejected unless `layout` says which axis holds the samples;
  - labels that are not 0..K-1 are relabelled in sorted order (``data.labels``), unless
    `num_classes` fixes K, when they must be integers in 0..K-1; so must they when a
    classifier fixes K, unless they take exactly K values: W's row k is then the class of
    the k-th smallest label (`_inputs.class_codes`); a nan label is an error naming its
    index, never a class of its own;
  - empty classes (possible only when K is fixed) are left out of every metric;
  - classes with one sample count fully, with zero within-class variance (ddof 0);
    `cdnv_ddof1` is then undefined (nan);
  - K > d+1: no simplex ETF exists; ``geometry`` gives the least ETF (and OF) Gram error
    any configuration in d dimensions can have;
  - rows holding nan or inf are an error naming the first such row, unless
    ``drop_nonfinite`` is set, when they are skipped and counted;
  - between-class directions below the pinv cut of nc1 (eigenvalues of Sigma_B at or
    below d eps times the largest: class means that coincide up to rounding) are dropped
    from nc1 and counted (``data.nc1_dropped_directions``); nc1_svd keeps them and is
    then unreliable.
"""

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from . import _core, _stats
from ._data import agreement
from ._definitions import DEFINITIONS
from ._inputs import class_codes, rows_of

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def _bucket(n: int) -> int:
    """Batches are padded to a power of two (at least 64): few shapes, few compiles."""
    return max(64, 1 << (n - 1).bit_length())


@jax.jit
def _nc4_batch(X, y, W, b, means):
    """Per-class agreement counts of one padded batch (label K = padding)."""
    agree = agreement(X.astype(means.dtype).T, W, b, means)
    return jax.ops.segment_sum(agree, y, W.shape[0] + 1)[:-1]


class Accumulator:
    """Streaming class statistics of labelled feature rows, then every metric.

        acc = Accumulator(num_classes=K, dim=d)
        for X, y in batches:          # X (B, d) any float dtype, y (B,) in 0..K-1
            acc.update(X, y)
        out = acc.report(W, b, samples=lambda: batches)   # samples: NC4's second pass

    Memory: K (d + 2) + d^2 float64 numbers, whatever the number of samples.
    """

    def __init__(self, num_classes: int, dim: int, *, drop_nonfinite: bool = False):
        if not isinstance(num_classes, int) or num_classes < 2:
            raise InputError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if not isinstance(dim, int) or dim < 1:
            raise InputError(f"dim must be an int >= 1, got {dim!r}")
        self.K, self.d = num_classes, dim
        self.drop_nonfinite = drop_nonfinite
        self.stats = _stats.empty(num_classes, dim)
        self.rows = 0  # rows seen, dropped ones included
        self.dropped = 0
        self.dtypes: set[str] = set()

    def _clean(self, X: Any, y: Any, count: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Validate one batch; drop (or reject) non-finite rows. Advances `rows`, and
        with `count` the tallies of dtypes and dropped rows (not on NC4's second pass)."""
        X, y = np.asarray(X), np.asarray(y)
        if X.ndim != 2 or X.shape[1] != self.d or y.shape != (X.shape[0],):
            raise InputError(
                f"a batch must be rows X (B, {self.d}) with labels y (B,), got {X.shape} and "
                f"{y.shape}"
            )
        if np.issubdtype(y.dtype, np.floating):
            bad = np.flatnonzero(y != np.round(y))  # nan included: nan != nan
            if bad.size:
                i = int(bad[0])
                raise InputError(
                    f"row {self.rows + i}: label {y[i]} is not an integer class 0..{self.K - 1}"
                )
        elif not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
            raise InputError(f"labels must be integers 0..{self.K - 1}, got dtype {y.dtype}")
        bad = (y < 0) | (y >= self.K)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"row {self.rows + i}: label {y[i]} outside 0..{self.K - 1}")
        if count:
            self.dtypes.add(str(X.dtype))
        finite = np.isfinite(X).all(axis=1)
        if not finite.all():
            if not self.drop_nonfinite:
                i = int(np.flatnonzero(~finite)[0])
                raise InputError(
                    f"row {self.rows + i} of the features is not finite (nan or inf); "
                    "drop such rows with drop_nonfinite=True (ufm metrics --drop-nonfinite)"
                )
            self.dropped += int(np.sum(~finite)) if count else 0
            X, y = X[finite], y[finite]
        self.rows += finite.size
        return X, y

    def _padded(self, X: np.ndarray, y: np.ndarray, size: int) -> Iterator[tuple]:
        for start in range(0, X.shape[0], size):
            # cast here, not in the compiled update: one compile for every input dtype
            Xb = np.asarray(X[start : start + size], dtype=self.stats.means.dtype)
            yb = y[start : start + size]
            pad = _bucket(Xb.shape[0]) - Xb.shape[0]
            if pad:
                Xb = np.concatenate([Xb, np.zeros((pad, self.d), Xb.dtype)])
                yb = np.concatenate([yb, np.full(pad, self.K, yb.dtype)])
            yield Xb, yb.astype(np.int32)

    def update(self, X: Any, y: Any, *, batch_size: int = 4096) -> None:
        """Add rows X (B, d) with labels y (B,) in 0..K-1."""
        X, y = self._clean(X, y)
        for Xb, yb in self._padded(X, y, batch_size):
            # one update in flight: the next batch is read and cast while this one runs, and
            # the queue of dispatched updates (each holding its batch) cannot grow
            jax.block_until_ready(self.stats)
            self.stats = _stats.update(self.stats, Xb, yb)

    def report(
        self,
        W: Any = None,
        b: Any = None,
        *,
        samples: Callable[[], Iterable[tuple[Any, Any]]] | None = None,
        weighted_mean: bool = True,
        pair_block: int | None = None,
        progress: Progress | None = None,
        held_out: bool = False,
    ) -> dict[str, Any]:
        """Every metric of the rows seen so far (see `report` for the result's layout).

        NC4 needs the samples again: `samples()` must yield the same (X, y) batches (rows
        dropped as non-finite are dropped again). Without it NC4 is left out. With
        `held_out`, `samples()` yields ANOTHER set (e.g. validation rows): NC4 is then the
        agreement on those rows of the classifier with the nearest class mean of the rows
        accumulated here (Wu & Papyan's NC4 on held-out data); ``nc4_per_class`` averages
        over the classes that have held-out rows and accumulated rows."""
        counts = np.asarray(self.stats.counts)
        alive = counts > 0
        K = int(alive.sum())
        if K < 2:
            raise InputError(f"at least 2 classes need samples, got {K}")
        W_all, b = _classifier(W, b, self.K, self.d)
        idx = np.flatnonzero(alive)
        stats = _stats.ClassStats(
            self.stats.counts[idx], self.stats.means[:, idx], self.stats.within,
            self.stats.sq_dev[idx],
        )  # fmt: skip
        W_alive = None if W_all is None else W_all[idx]
        block = pair_block or min(K, 1024)
        tick = None if progress is None else (lambda i, n: progress("pairs", i, n))
        pairs = _core.pair_statistics(
            stats, W_alive, weighted_mean=weighted_mean, block=block, progress=tick
        )
        values = _metrics_jit(stats, W_alive, pairs=pairs, weighted_mean=weighted_mean)
        nc1 = {
            "nc1_directions": _core.between_directions(self.d, K),
            "nc1_dropped_directions": int(values["nc1_dropped"]),
            "nc1_pinv_rtol": _core.pinv_rtol(self.d, self.stats.means.dtype),
        }
        if W_all is not None and samples is not None:
            values |= self._nc4(samples, W_all, b, alive, progress, held_out)
        nc4_rows = values.pop("nc4_rows", None)
        values = {k: float(values[k]) for k in DEFINITIONS if k in values}
        notes = self._notes(counts, alive, values, W_all is not None, samples is not None)
        held = {} if nc4_rows is None else {"nc4_held_out_rows": nc4_rows}
        if held:
            notes.append(
                f"nc4 is measured on {nc4_rows} held-out rows against the class means of the "
                f"{int(counts.sum())} accumulated rows"
            )
        return {
            "metrics": values,
            "data": self._data(counts, alive) | nc1 | held,
            "geometry": _geometry(values, K, self.d),
            "notes": _nc1_note(**nc1) + notes,
            "definitions": {k: DEFINITIONS[k] for k in values},
        }

    def _nc4(self, samples, W, b, alive, progress, held_out=False) -> dict[str, float]:
        means = jnp.where(jnp.asarray(alive)[None, :], self.stats.means, jnp.nan)
        hits, tally = np.zeros(self.K), np.zeros(self.K)
        size = max(16, min(4096, 2**22 // self.K))
        rows, seen = 0, self.rows
        self.rows = 0
        for X, y in samples():
            X, y = self._clean(X, y, count=False)
            for Xb, yb in self._padded(X, y, size):
                hits += np.asarray(_nc4_batch(Xb, yb, W, b, means))
            tally += np.bincount(y, minlength=self.K)
            rows += X.shape[0]
            if progress is not None:
                progress("nc4", self.rows, seen)
        self.rows = seen
        counts = np.asarray(self.stats.counts)
        if held_out:
            if rows == 0:
                raise InputError("held-out samples: samples() gave no rows")
            both = alive & (tally > 0)
            return {
                "nc4": float(hits.sum() / rows),
                "nc4_per_class": float(np.mean(hits[both] / tally[both])),
                "nc4_rows": rows,
            }
        if rows != int(counts.sum()):
            raise InputError(f"samples() gave {rows} rows, the accumulated data {counts.sum():g}")
        return {
            "nc4": float(hits.sum() / rows),
            "nc4_per_class": float(np.mean(hits[alive] / counts[alive])),
        }

    def _data(self, counts: np.ndarray, alive: np.ndarray) -> dict[str, Any]:
        n = counts[alive]
        return {
            "N": int(counts.sum()),
            "K": int(alive.sum()),
            "d": self.d,
            "classes_given": self.K,
            "empty_classes": int((~alive).sum()),
            "singleton_classes": int((n == 1).sum()),
            "class_size_min": int(n.min()),
            "class_size_max": int(n.max()),
            "rows_read": self.rows,
            "rows_dropped_nonfinite": self.dropped,
            "input_dtype": ", ".join(sorted(self.dtypes)) or None,
            "dtype": str(self.stats.means.dtype),
        }

    def _notes(self, counts, alive, values, has_W, has_samples) -> list[str]:
        K, d = int(alive.sum()), self.d
        notes = []
        if (~alive).any():
            empty = int((~alive).sum())
            notes.append(
                f"{empty} of {self.K} classes have no samples: left out of every metric "
                f"(K = {K}); their classifier rows count only in nc4"
            )
        singletons = int((counts[alive] == 1).sum())
        if singletons:
            notes.append(
                f"{singletons} classes have one sample: zero within-class variance; "
                "cdnv_ddof1 is undefined (nan)"
            )
        if self.dropped:
            rows = "row was" if self.dropped == 1 else "rows were"
            notes.append(f"{self.dropped} {rows} dropped: nan or inf features")
        low = sorted(self.dtypes - {"float64"})
        if low:
            notes.append(f"input {', '.join(low)} was converted to {self.stats.means.dtype}")
        if K > d + 1:
            notes.append(
                f"K = {K} > d + 1 = {d + 1}: no simplex ETF exists in d = {d}; see "
                "geometry.nc2_floor and GNC2"
            )
        if has_W and not has_samples:
            notes.append("nc4 needs a second pass over the samples: not computed")
        if np.any(counts[alive] != counts[alive][0]):
            notes.append("imbalanced classes: mu_G is sample-weighted; Sigma_W divides by N")
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            notes.append(
                f"not finite: {', '.join(bad)} (coinciding or zero class means, "
                "singletons under ddof 1, or overflow)"
            )
        return notes


_metrics_jit = jax.jit(_core.metrics, static_argnames=("weighted_mean", "riesz_s"))


def _nc1_note(nc1_directions: int, nc1_dropped_directions: int, nc1_pinv_rtol: float):
    if not nc1_dropped_directions:
        return []
    return [
        f"nc1: {nc1_dropped_directions} of {nc1_directions} between-class directions were "
        f"below the pinv cut (an eigenvalue of Sigma_B <= {nc1_pinv_rtol:.3g} x the largest: "
        "class means that coincide up to rounding) and were dropped; nc1_svd inverts them "
        "and is unreliable"
    ]


def _classifier(W: Any, b: Any, K: int, d: int):
    if W is None:
        if b is not None:
            raise InputError("a bias was given without a classifier W")
        return None, None
    W = jnp.asarray(np.asarray(W, dtype=np.float64))
    if W.shape != (K, d):
        raise InputError(f"the classifier W must have shape (K, d) = ({K}, {d}), got {W.shape}")
    if not bool(jnp.all(jnp.isfinite(W))):
        raise InputError("the classifier W holds nan or inf")
    if b is not None:
        b = jnp.asarray(np.asarray(b, dtype=np.float64))
        if b.shape != (K,):
            raise InputError(f"the bias b must have shape (K,) = ({K},), got {b.shape}")
    return W, b


def _geometry(values: dict[str, float], K: int, d: int) -> dict[str, Any]:
    """The class-mean geometry against the nearest simplex ETF and orthogonal frame.

    A Gram G of rank <= d with ||G||_F = 1 has <G, P_K> <= sum of its eigenvalues
    <= sqrt(d), so its distance to P_K/sqrt(K-1) is at least sqrt(2 - 2 sqrt(d/(K-1))),
    reached by any K points whose centred Gram is a multiple of a rank-d projector inside
    range(P_K) (e.g. the regular K-gon for d = 2); the same with I_K for the OF.
    """
    etf_floor = math.sqrt(2 - 2 * math.sqrt(d / (K - 1))) if d < K - 1 else 0.0
    of_floor = math.sqrt(2 - 2 * math.sqrt(d / K)) if d < K else 0.0
    cos_max = values["nc2_cos_max"]
    angle = math.nan
    if math.isfinite(cos_max):
        angle = math.degrees(math.acos(min(1.0, max(-1.0, cos_max))))
    return {
        "etf_exists": d >= K - 1,
        "nc2": values["nc2"],
        "nc2_floor": etf_floor,
        "of_exists": d >= K,
        "nc2_of": values["nc2_of"],
        "nc2_of_floor": of_floor,
        "nearest": "simplex_etf" if values["nc2"] <= values["nc2_of"] else "orthogonal_frame",
        "cos_mean": values["nc2_cos_mean"],
        "cos_etf": -1 / (K - 1),
        "min_angle_deg": angle,
        "min_angle_etf_deg": math.degrees(math.acos(-1 / (K - 1))),
        "gnc2_log_mean": values["gnc2_log_mean"],
        "gnc2_log_mean_etf": -0.5 * math.log(2 * K / (K - 1)),
    }


def report(
    H: Any,
    labels: Any,
    W: Any = None,
    b: Any = None,
    *,
    layout: str | None = None,
    num_classes: int | None = None,
    weighted_mean: bool = True,
    drop_nonfinite: bool = False,
    batch_size: int = 4096,
    pair_block: int | None = None,
    progress: Progress | None = None,
    held_out: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Every NC metric of features H with `labels`, optionally against a classifier W, b.

    held_out: (H2, labels2), another set in the same layout and classes (e.g. validation
    features): NC4 is then measured on it against the class means of H (see
    `Accumulator.report`); every other metric is H's.

    H: (d, N) samples as columns (ufm's convention) or (N, d) rows as networks save them;
    `layout` says which, or None infers it from len(labels). Any array with slicing works,
    a `np.load(..., mmap_mode="r")` memmap included: it is read `batch_size` rows at a time.
    labels: N values of any kind. With `num_classes` they must be integers in 0..K-1, and
    classes without samples are reported as empty; so too with W (K, d), unless the labels
    take exactly K other values: W's row k is then the class of the k-th smallest label.

    Returns {"metrics": {name: float}, "data": {...}, "geometry": {...}, "notes": [...],
    "definitions": {name: formula and source}}. Metric names match `summary` (nc1 is the
    pinv form, nc2 the ETF Gram error, nc3 the self-duality, nc4 the agreement) plus every
    variant (`DEFINITIONS`). `progress(stage, done, total)` is called as the work advances.
    """
    labels = np.asarray(labels)
    rows = rows_of(H, labels.shape[0] if labels.ndim == 1 else -1, layout)
    codes, K, label_desc = class_codes(labels, num_classes, None if W is None else np.shape(W)[0])
    if K < 2:
        raise InputError(f"labels: at least 2 classes are needed, the labels hold {K}")
    N, d = rows.shape
    acc = Accumulator(K, d, drop_nonfinite=drop_nonfinite)

    def batches() -> Iterator[tuple[Any, np.ndarray]]:
        for start in range(0, N, batch_size):
            yield rows[start : start + batch_size], codes[start : start + batch_size]

    for X, y in batches():
        acc.update(X, y, batch_size=batch_size)
        if progress is not None:
            progress("classes", acc.rows, N)
    samples = batches
    if held_out is not None:
        samples = _held_out_batches(held_out, layout, codes, labels, batch_size)
    out = acc.report(
        W, b, samples=samples, weighted_mean=weighted_mean, pair_block=pair_block,
        progress=progress, held_out=held_out is not None,
    )  # fmt: skip
    out["data"]["labels"] = label_desc
    if "classifier_rows" in label_desc:
        out["notes"].append(f"labels are not 0..{K - 1}: {label_desc['classifier_rows']}")
    return out


def _held_out_batches(held_out, layout, codes, labels, batch_size):
    """Batches of the held-out set, its labels coded as the first set's (a label the first
    set does not have is an error: NC4 per class needs the class)."""
    H2, labels2 = held_out
    labels2 = np.asarray(labels2)
    rows2 = rows_of(H2, labels2.shape[0] if labels2.ndim == 1 else -1, layout)
    lookup = {label: code for label, code in zip(labels.tolist(), codes.tolist(), strict=True)}
    unknown = [x for x in np.unique(labels2).tolist() if x not in lookup]
    if unknown:
        raise InputError(f"held_out: labels {unknown[:5]} do not occur in the first set")
    codes2 = np.array([lookup[x] for x in labels2.tolist()], dtype=codes.dtype)

    def batches() -> Iterator[tuple[Any, np.ndarray]]:
        for start in range(0, rows2.shape[0], batch_size):
            yield rows2[start : start + batch_size], codes2[start : start + batch_size]

    return batches
