"""Classification data that needs no download: scikit-learn's bundled digits and a seeded
Gaussian mixture, with a recorded train/test split and optional class counts (imbalance).

Training samples are sorted by class (ufm's column order), the split and the subsampling are
drawn from ``data_seed``, and `Dataset.settings` plus `Dataset.sha1` (a hash of the arrays)
say exactly what a run trained on. A dataset may carry a teacher's logits (`with_teacher`,
made by ``ufm.networks.training.teach``): the targets of knowledge distillation.
"""

import dataclasses
import hashlib
from typing import Any

import numpy as np

from ..errors import InputError

NAMES = ("digits", "gaussian")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """x_* (samples, inputs) float64; y_* class labels 0..K-1; train sorted by class.

    train_index / test_index: the rows of the source data (digits: of `load_digits()`;
    gaussian: of the generated pool) that went to each split. teacher_train / teacher_test:
    a teacher's logits (samples, K) on each split, or None; teacher: what that teacher was
    (settings, errors), JSON."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    K: int
    settings: dict[str, Any]
    teacher_train: np.ndarray | None = None
    teacher_test: np.ndarray | None = None
    teacher: dict[str, Any] | None = None

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(int(c) for c in np.bincount(self.y_train, minlength=self.K))

    @property
    def sha1(self) -> str:
        digest = hashlib.sha1()
        arrays = [self.x_train, self.y_train, self.x_test, self.y_test]
        if self.teacher_train is not None:  # datasets without a teacher: the hash as before
            arrays += [self.teacher_train, self.teacher_test]
        for a in arrays:
            digest.update(np.ascontiguousarray(a).tobytes())
        return digest.hexdigest()

    def with_teacher(self, train_logits, test_logits, about: dict[str, Any]) -> "Dataset":
        """This dataset carrying a teacher's logits (float64, (samples, K) per split)."""
        logits = [np.asarray(a, dtype=np.float64) for a in (train_logits, test_logits)]
        for name, a, x in zip(("train", "test"), logits, (self.x_train, self.x_test), strict=True):
            if a.shape != (x.shape[0], self.K) or not np.isfinite(a).all():
                raise InputError(
                    f"teacher: {name} logits must be finite, ({x.shape[0]}, {self.K}); got "
                    f"shape {a.shape}"
                )
        return dataclasses.replace(
            self, teacher_train=logits[0], teacher_test=logits[1], teacher=dict(about)
        )


def dataset(name: str = "digits", **settings) -> Dataset:
    """``dataset("digits", train_per_class=None, test_fraction=0.2, data_seed=0)`` or
    ``dataset("gaussian", K=4, dim=20, separation=4.0, per_class=200, test_fraction=0.2,
    data_seed=0)``.

    train_per_class: training samples of each class, an int or one count per class, drawn
    without replacement from that class's training share (None: all of it). This makes
    imbalanced versions, e.g. ``[150] * 5 + [15] * 5``. Inputs are standardized with the
    training set's mean and standard deviation.
    """
    if name not in NAMES:
        raise InputError(f"data: unknown dataset {name!r}; choose one of {', '.join(NAMES)}")
    known = {"train_per_class", "test_fraction", "data_seed"}
    known |= {"K", "dim", "separation", "per_class"} if name == "gaussian" else set()
    if unknown := sorted(set(settings) - known):
        raise InputError(
            f"data: {name!r} takes {', '.join(sorted(known))}; got {', '.join(unknown)}"
        )
    seed = _integer("data_seed", settings.get("data_seed", 0), 0)
    test_fraction = float(settings.get("test_fraction", 0.2))
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction: must lie in (0, 1); got {test_fraction}")
    rng = np.random.default_rng(seed)
    if name == "digits":
        x, y = _digits()
    else:
        x, y = _gaussian(rng, settings)
    K = int(y.max()) + 1
    train, test = _split(y, K, test_fraction, rng)
    train = _subsample(train, y, K, settings.get("train_per_class"), rng)
    train = train[np.argsort(y[train], kind="stable")]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)  # digits has constant pixels
    scale = lambda rows: (x[rows] - mean) / std
    full = {"test_fraction": test_fraction, "data_seed": seed} | {
        k: v for k, v in settings.items() if k not in ("test_fraction", "data_seed")
    }
    full["train_per_class"] = _jsonable(settings.get("train_per_class"))
    return Dataset(name, scale(train), y[train], scale(test), y[test], train, test, K, full)


def _jsonable(value):
    if value is None or isinstance(value, int):
        return value
    return [int(v) for v in np.atleast_1d(value)]


def _integer(name: str, value, low: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < low:
        shown = value.item() if isinstance(value, np.generic) else value
        raise InputError(f"{name}: must be an integer >= {low}; got {shown!r}")
    return int(value)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # reads a file inside the sklearn package

    data = load_digits()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target, dtype=np.int64)


def _gaussian(rng, settings) -> tuple[np.ndarray, np.ndarray]:
    """K isotropic unit-variance Gaussians in `dim` dimensions whose means are `separation`
    apart (a scaled simplex in a random orientation), `per_class` samples each."""
    K = _integer("K", settings.get("K", 4), 2)
    dim = _integer("dim", settings.get("dim", 20), 1)
    per = settings.get("per_class", 200)
    counts = np.broadcast_to(np.asarray(per), (K,)) if np.ndim(per) == 0 else np.asarray(per)
    if counts.shape != (K,):
        raise InputError(f"per_class: give one count or K={K} counts; got {per!r}")
    for c in counts:
        _integer("per_class", c, 2)
    separation = float(settings.get("separation", 4.0))
    if not separation > 0:
        raise InputError(f"separation: must be > 0; got {separation}")
    if dim < K - 1:
        raise InputError(f"dim: must be >= K - 1 = {K - 1} for {K} separated means; got {dim}")
    simplex = np.eye(K) - 1 / K  # rows: centred simplex vertices, |v_i - v_j| = sqrt 2
    coords = simplex @ np.linalg.qr(simplex)[0][:, : K - 1]  # the same, in K - 1 coordinates
    frame = np.linalg.qr(rng.standard_normal((dim, K - 1)))[0]  # random orthonormal columns
    means = separation / np.sqrt(2) * coords @ frame.T
    y = np.repeat(np.arange(K), counts)
    x = means[y] + rng.standard_normal((y.size, dim))
    return x, y


def _split(y, K: int, test_fraction: float, rng) -> tuple[np.ndarray, np.ndarray]:
    train, test = [], []
    for k in range(K):
        rows = rng.permutation(np.flatnonzero(y == k))
        cut = int(round(test_fraction * rows.size))
        if rows.size - cut < 1 or cut < 1:
            raise InputError(
                f"test_fraction: {test_fraction} leaves class {k} ({rows.size} samples) with "
                f"{rows.size - cut} training and {cut} test samples; each needs at least one"
            )
        test.append(rows[:cut])
        train.append(rows[cut:])
    return np.concatenate(train), np.sort(np.concatenate(test))


def _subsample(train, y, K: int, per_class, rng) -> np.ndarray:
    if per_class is None:
        return train
    counts = np.broadcast_to(np.asarray(per_class), (K,)) if np.ndim(per_class) == 0 else None
    counts = np.asarray(per_class) if counts is None else counts
    if counts.shape != (K,):
        raise InputError(f"train_per_class: give one count or K={K} counts; got {per_class!r}")
    kept = []
    for k, c in enumerate(counts):
        rows = train[y[train] == k]
        c = _integer("train_per_class", c, 1)
        if c > rows.size:
            raise InputError(
                f"train_per_class: class {k} has {rows.size} training samples; asked for {c}"
            )
        kept.append(rng.choice(rows, size=c, replace=False))
    return np.concatenate(kept)
