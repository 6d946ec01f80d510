"""The features and labels `ufm.metrics.report` reads: which axis holds the samples, and
the class of every label."""

from typing import Any

import numpy as np

from ..errors import InputError


def rows_of(H: Any, n_labels: int, layout: str | None) -> Any:
    """H as (N, d) rows: `layout` "rows" (N, d), "columns" (d, N, ufm's convention), or None
    to infer it from the number of labels. A square H (d = N) cannot say which axis holds
    the samples: without `layout` it is an error, never a guess."""
    if not hasattr(H, "ndim"):
        H = np.asarray(H)
    if H.ndim != 2:
        raise InputError(f"features must be a 2-D array, got shape {H.shape}")
    if layout not in (None, "rows", "columns"):
        raise InputError(f"layout must be 'rows', 'columns' or None, got {layout!r}")
    if layout is None:
        if H.shape[0] == H.shape[1] == n_labels:
            raise InputError(
                f"features of shape {H.shape} are square, so the samples could be either the "
                f"rows or the columns: pass layout='rows' (N, d) or layout='columns' (d, N)"
            )
        layout = "columns" if H.shape[1] == n_labels else "rows"
    rows = H.T if layout == "columns" else H
    if rows.shape[0] != n_labels:
        raise InputError(
            f"features of shape {H.shape} do not match {n_labels} labels "
            f"(samples as {layout}; pass layout='rows' or 'columns')"
        )
    if not (np.issubdtype(rows.dtype, np.floating) or np.issubdtype(rows.dtype, np.integer)):
        raise InputError(f"features must be real numbers, got dtype {rows.dtype}")
    return rows


def class_codes(
    labels: np.ndarray, num_classes: int | None, classifier_rows: int | None
) -> tuple[np.ndarray, int, dict]:
    """`encode_labels`, with the number of classes fixed by `num_classes` or by a classifier
    of `classifier_rows` rows (they must agree). Labels 0..K-1 name their row of W; when only
    W fixes K, labels that take exactly K other values (3, 7, 9, 12) are taken in sorted
    order, W's row k being the class of the k-th smallest label."""
    if classifier_rows is None:
        return encode_labels(labels, num_classes)
    if num_classes is not None:
        if num_classes != classifier_rows:
            raise InputError(f"num_classes = {num_classes} but W has {classifier_rows} rows")
        return encode_labels(labels, num_classes)
    try:
        return encode_labels(labels, classifier_rows)
    except InputError:
        codes, K, desc = encode_labels(labels, None)
        if K != classifier_rows:
            raise
    return codes, K, desc | {"classifier_rows": "W's row k is the k-th smallest label"}


def encode_labels(labels: Any, num_classes: int | None) -> tuple[np.ndarray, int, dict]:
    """(codes 0..K-1 as int32, K, description). With `num_classes` the labels must be
    integers in 0..num_classes-1; otherwise their distinct values, sorted, are the classes."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InputError(f"labels must be 1-D, got shape {labels.shape}")
    missing = _nan_labels(labels)
    if missing.size:
        raise InputError(
            f"labels[{missing[0]}] is nan ({missing.size} nan labels): a label must name a "
            "class; drop those samples first"
        )
    if num_classes is not None:
        if np.issubdtype(labels.dtype, np.floating):
            bad = np.flatnonzero(labels != np.round(labels))
            if bad.size:
                raise InputError(f"labels must be integers: labels[{bad[0]}] = {labels[bad[0]]}")
        elif not np.issubdtype(labels.dtype, np.integer):
            raise InputError(f"labels must be integers 0..K-1 here, got dtype {labels.dtype}")
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if bad.size:
            raise InputError(
                f"labels must lie in 0..{num_classes - 1} (K = {num_classes}): "
                f"labels[{bad[0]}] = {labels[bad[0]]}"
            )
        return labels.astype(np.int32), num_classes, {"encoding": f"0..{num_classes - 1}"}
    values, codes = np.unique(labels, return_inverse=True)
    K = values.size
    contiguous = np.issubdtype(values.dtype, np.integer) and np.array_equal(values, np.arange(K))
    desc = {"encoding": f"0..{K - 1}" if contiguous else "relabelled"}
    if not contiguous:
        desc["values"] = f"{K} distinct values, {values[0]!s} .. {values[-1]!s}, class k = k-th"
    return codes.astype(np.int32).reshape(-1), K, desc


def _nan_labels(labels: np.ndarray) -> np.ndarray:
    """Indices of the nan entries of 1-D `labels` (floats, or objects such as float('nan'))."""
    if np.issubdtype(labels.dtype, np.inexact):
        return np.flatnonzero(np.isnan(labels))
    if labels.dtype == object:

        def nan(value: Any) -> bool:
            try:
                return bool(value != value)
            except (TypeError, ValueError):
                return False

        return np.flatnonzero([nan(value) for value in labels])
    return np.zeros(0, dtype=np.intp)
