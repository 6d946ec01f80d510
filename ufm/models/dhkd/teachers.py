"""Teacher logits for the distillation UFM: Zt (K, N), one column per sample, sorted by class.

- ``collapsed``: every sample of class c gets zt = m 1 + a_t (e_c - 1/K 1): logit margin a_t
  (target minus any other class), mean logit (common shift) m;
- ``ce``: the class-mean logits of the plain CE UFM's global minimizer with the same K, n, d
  and decays (a teacher trained like the student, on its own), plus the shift m;
- ``dark``: "dark knowledge": the collapsed teacher plus class similarity (classes in groups
  of `group` consecutive ones; another class of the same group gets `similarity` a_t more
  than the classes outside it), per-sample Gaussian noise of standard deviation
  noise a_t, and a fraction `mistakes` of samples whose largest logit is moved to a wrong
  class (its target and a random other class swap logits); seeded;
- ``file``: logits read from a .npy (N x K, rows sorted by class) or a .npz with ``logits``
  (N x K) and optionally ``labels`` (N,), as a network's output is laid out.
"""

from pathlib import Path

import numpy as np

from ...errors import InputError

KINDS = ("collapsed", "ce", "dark", "file")


def collapsed(K: int, counts: tuple[int, ...], margin: float, shift: float) -> np.ndarray:
    """zt_i = shift + margin (e_{y_i} - 1/K), as (K, N)."""
    class_means = shift + margin * (np.eye(K) - 1.0 / K)
    return class_means[:, np.repeat(np.arange(K), counts)]


def dark(
    K: int,
    counts: tuple[int, ...],
    margin: float,
    shift: float,
    *,
    similarity: float,
    group: int,
    noise: float,
    mistakes: float,
    seed: int,
) -> np.ndarray:
    """The collapsed teacher with class-similarity groups, noise and mistakes (module doc)."""
    labels = np.repeat(np.arange(K), counts)
    same_group = (np.arange(K)[:, None] // group == np.arange(K)[None, :] // group).astype(float)
    similar = same_group - np.eye(K)  # other classes of the same group
    similar = similar - similar.mean(axis=0, keepdims=True)  # keeps the mean logit at shift
    Zt = collapsed(K, counts, margin, shift) + (similarity * margin * similar)[:, labels]
    rng = np.random.default_rng(seed)
    Zt = Zt + noise * margin * rng.standard_normal(Zt.shape)
    wrong = rng.random(labels.size) < mistakes
    for i in np.flatnonzero(wrong):
        other = rng.choice([k for k in range(K) if k != labels[i]])
        top = Zt[:, i].max()
        Zt[other, i], Zt[labels[i], i] = top + 1e-3 * abs(margin), Zt[other, i]
    return Zt


def from_file(path, K: int | None) -> tuple[np.ndarray, tuple[int, ...]]:
    """(Zt (K, N) sorted by class, counts) from a .npy or .npz file (module doc)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"teacher_file: no such file {str(path)!r}")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"teacher_file: cannot read {str(path)!r} as .npy/.npz ({e})") from None
    labels = None
    if isinstance(data, np.lib.npyio.NpzFile):
        if "logits" not in data:
            raise InputError(f"teacher_file: {str(path)!r} has no array 'logits' (N x K)")
        logits, labels = data["logits"], data["labels"] if "labels" in data else None
    else:
        logits = data
    logits = np.asarray(logits, dtype=float)
    if logits.ndim != 2 or logits.shape[1] < 2 or not np.all(np.isfinite(logits)):
        raise InputError(
            f"teacher_file: logits must be a finite N x K array with K >= 2; got shape "
            f"{logits.shape}"
        )
    K_file = logits.shape[1]
    if K is not None and K != K_file:
        raise InputError(f"K={K} does not match the teacher file's {K_file} classes")
    return _sorted(logits, labels, K_file, path)


def _sorted(logits, labels, K, path) -> tuple[np.ndarray, tuple[int, ...]]:
    N = logits.shape[0]
    if labels is None:  # .npy: rows sorted by class, equal counts
        if N % K:
            raise InputError(
                f"teacher_file: {N} rows of a .npy must split into K={K} equal classes "
                "(or give a .npz with 'labels')"
            )
        return logits.T.copy(), (N // K,) * K
    labels = np.asarray(labels)
    if labels.shape != (N,) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"teacher_file: 'labels' must be N={N} integers; got {labels.shape}")
    if labels.min() < 0 or labels.max() >= K:
        raise InputError(f"teacher_file: labels must be in 0..{K - 1}")
    counts = tuple(int(c) for c in np.bincount(labels, minlength=K))
    if min(counts) == 0:
        raise InputError(f"teacher_file: class {counts.index(0)} has no sample in {str(path)!r}")
    order = np.argsort(labels, kind="stable")
    return logits[order].T.copy(), counts


def symmetric(Zt: np.ndarray, labels: np.ndarray, K: int, rtol: float = 1e-12):
    """(margin, shift) if Zt is a collapsed teacher zt_i = shift + margin (e_{y_i} - 1/K)
    (to rtol of its norm), else None."""
    shift = float(Zt.mean())
    target = Zt[labels, np.arange(labels.size)]
    margin = float(target.mean() - shift) * K / (K - 1)
    model = shift + margin * (np.eye(K)[:, labels] - 1.0 / K)
    scale = max(float(np.linalg.norm(Zt)), 1e-300)
    return (margin, shift) if np.linalg.norm(Zt - model) <= rtol * scale else None
