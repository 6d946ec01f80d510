"""The vicinity UFM's fixed features H0: read from a file (checked) or generated near a
collapsed minimizer."""

from pathlib import Path

import numpy as np

from ... import _checks
from ...errors import InputError
from ..plain.problem import PlainProblem


def _read(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(H0 as (d, N), labels or None) from a .npy (d, N) or an .npz holding ``H0`` (d, N)
    or ``features`` (N, d), and optionally ``labels`` (N,)."""
    if not path.is_file():
        raise InputError(f"H0: file {str(path)!r} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises several types for a bad file
        raise InputError(f"H0: cannot read {str(path)!r} as .npy or .npz ({error})") from None
    if isinstance(data, np.ndarray):
        return data, None
    with data:
        keys = set(data.files)
        try:  # a member is read here: pickled or corrupt ones fail now, and are bad input
            labels = data["labels"] if "labels" in keys else None
            if "H0" in keys:
                return data["H0"], labels
            if "features" in keys:
                return np.asarray(data["features"]).T, labels
        except Exception as error:
            raise InputError(f"H0: cannot read a member of {str(path)!r} ({error})") from None
    raise InputError(
        f"H0: {str(path)!r} holds {sorted(keys)}; expected 'H0' (d x N) or 'features' (N x d)"
    )


def _sort_by_labels(H0: np.ndarray, labels, K) -> tuple[np.ndarray, int, tuple[int, ...], str]:
    """Columns sorted by class (stable); classes are the sorted distinct labels."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size != H0.shape[1]:
        raise InputError(
            f"H0: labels must have one entry per column of H0 ({H0.shape[1]}); "
            f"got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"H0: labels must be integers; got dtype {labels.dtype}")
    classes, y, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if K is not None and classes.size != K:
        raise InputError(f"H0: its labels have {classes.size} classes but K={K}")
    order = np.argsort(y, kind="stable")
    return H0[:, order], classes.size, tuple(int(c) for c in counts), tuple(int(c) for c in classes)


def _load(H0, K, n, d) -> tuple[np.ndarray, int, tuple[int, ...], str]:
    """Validate a given H0 and infer K, n, d from it where they are None. Returns (H0 sorted by
    class, K, counts, origin); origin names the file and, if the file had labels, the label
    of each class index (classes are the sorted distinct labels)."""
    source, labels, classes = "array", None, None
    if isinstance(H0, str | Path):
        source = str(H0)
        H0, labels = _read(Path(H0))
    H0 = np.asarray(H0)
    if H0.ndim != 2 or not (
        np.issubdtype(H0.dtype, np.floating) or np.issubdtype(H0.dtype, np.integer)
    ):
        raise InputError(f"H0 must be a real 2-D array (d x N); got shape {H0.shape}, {H0.dtype}")
    H0 = H0.astype(float)
    bad = np.flatnonzero(~np.all(np.isfinite(H0), axis=0))
    if bad.size:
        raise InputError(f"H0 has a non-finite entry (nan or inf) in column {bad[0]}")
    if labels is not None:
        H0, K, counts, classes = _sort_by_labels(H0, labels, K)
        if n is not None and _checks.counts(n, K) != counts:
            raise InputError(f"H0: its labels give class counts {list(counts)}, but n={n!r}")
    else:
        if K is None:
            raise InputError("K is needed when H0 has no labels (its columns sorted by class)")
        K = _checks.integer("K", K, 2)
        N = H0.shape[1]
        if n is None:
            if N % K:
                raise InputError(f"H0 has N={N} columns, not a multiple of K={K}; pass n")
            n = N // K
        counts = _checks.counts(n, K)
        if sum(counts) != N:
            raise InputError(f"H0 has N={N} columns, but n={n!r} gives {sum(counts)} samples")
    if d is not None and _checks.integer("d", d, 1) != H0.shape[0]:
        hint = " (transposed? an .npz 'features' array is N x d)" if H0.shape[1] == d else ""
        raise InputError(f"H0 has shape {H0.shape}; expected d={d} rows{hint}")
    return H0, K, counts, {"H0": source} | ({"labels": classes} if classes else {})


def _generate(K, counts, d, lambda_W, lambda_H, noise, seed) -> np.ndarray:
    """The plain MSE UFM's closed-form minimizer (fixed rotation) plus noise of relative
    Frobenius size `noise` (absolute when the minimizer is zero)."""
    if d < K:  # the plain theory predicts a tight frame there, but Cor 2.2 needs d >= K
        raise InputError(
            f"H0 cannot be generated with d={d} < K={K}: the vicinity theory needs the "
            "orthogonal-frame minimizer (d >= K); pass H0 instead"
        )
    base = PlainProblem.make(loss="mse", K=K, n=list(counts), d=d, lambda_W=lambda_W,
                             lambda_H=lambda_H).theory()  # fmt: skip
    assert base.params is not None  # bias-free MSE always has a prediction
    H = base.params["H"]
    E = np.random.default_rng(seed).standard_normal(H.shape)
    size = np.linalg.norm(H) if np.any(H) else 1.0
    return H + noise * size * E / np.linalg.norm(E)
