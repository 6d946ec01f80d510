"""`ufm features OUT.npz`: an example features file, near collapse, for trying `ufm metrics`
and `ufm solve vicinity --H0` without a network at hand.

The K class means are the rows of a simplex ETF (`ufm.geometry.simplex_etf`: unit norm,
pairwise cosine -1/(K-1)). A simplex ETF exists only for d >= K-1, so a smaller d is
refused rather than replaced by another frame (an orthogonal frame needs d >= K). Every
sample is its class mean plus Gaussian noise with standard deviation noise/sqrt(d) per
coordinate: its expected squared distance to the mean is noise^2, and Tr Sigma_W / Tr Sigma_B
is about noise^2. The .npz holds

    features  (N, d) float64   one row per sample (the layout networks save), rows shuffled
    labels    (N,) int64       K distinct values from 3 up (3, 7, 9, 12, ...), so not the
                               codes 0..K-1 (as labels often are)
    W         (K, d) float64   row k: the mean direction of the class with the k-th
                               smallest label (the classifier of exact collapse)

`ufm metrics` reads W's row k as that class too (labels that are not 0..K-1 but take K
values), and `ufm solve vicinity --H0` takes the features as H0 and the labels' classes.
"""

from pathlib import Path

import numpy as np

from . import _budget, _checks, _output
from ._argv import integer
from .cli import unwritten
from .errors import InputError


def add_parser(commands, **options) -> None:
    p = commands.add_parser(
        "features",
        help="write an example features file (near-collapsed classes) for ufm metrics and "
        "ufm solve vicinity --H0",
        description="Write an .npz with features (N, d), labels (N,) and a classifier W (K, d): "
        "class means on a simplex ETF plus Gaussian noise.",
        **options,
    )
    p.add_argument("out", type=Path, metavar="OUT.npz", help="the file to write")
    p.add_argument("--K", type=integer, default=4, help="number of classes (>= 2)")
    p.add_argument("--n", type=integer, default=5, help="samples per class (>= 1)")
    p.add_argument("--d", type=integer, default=6, help="feature dimension (>= K-1)")
    p.add_argument(
        "--noise",
        type=float,
        default=0.2,
        help="root-mean-square distance of a sample to its class mean (>= 0; the means have "
        "norm 1)",
    )
    p.add_argument(
        "--seed", type=integer, default=0, help="seed of the labels, the noise and the row order"
    )


def run(args) -> int:
    """Validate the flags, generate, write OUT (atomically) and say what it holds."""
    K = _checks.integer("--K", args.K, 2)
    n = _checks.integer("--n", args.n, 1)
    d = _checks.integer("--d", args.d, 1)
    if d < K - 1:
        raise InputError(
            f"--d must be an integer >= K-1 = {K - 1} (a simplex ETF of K={K} classes needs "
            f"K-1 dimensions); got {d}"
        )
    noise = _checks.real("--noise", args.noise, positive=False)
    seed = _checks.integer("--seed", args.seed, 0)
    _budget._refuse(
        f"ufm features --K {K} --n {n} --d {d}",
        _budget.FLOAT * (3 * K * n * d + 2 * K * max(K, d)),
        "the (K n) x d features, a shuffled copy and the ETF",
        "use a smaller --K, --n or --d",
    )
    arrays = example(K, n, d, noise, seed)
    try:
        _output.write_npz(args.out, arrays)
    except OSError as error:
        unwritten("OUT", args.out, error, then="nothing was written")
        return 1
    values = np.unique(arrays["labels"])
    print(
        f"{args.out}: features {arrays['features'].shape}, labels {values.size} values "
        f"{values[0]}..{values[-1]}, W {arrays['W'].shape}"
    )
    return 0


def example(K: int, n: int, d: int, noise: float, seed: int) -> dict[str, np.ndarray]:
    """The arrays of the module docstring, from `seed` alone."""
    import jax.numpy as jnp

    from .geometry import simplex_etf

    rng = np.random.default_rng(seed)
    means = np.asarray(simplex_etf(K, d, dtype=jnp.float64))
    values = 2 + np.cumsum(rng.integers(1, 5, size=K))  # increasing from 3 or more
    codes = np.repeat(np.arange(K), n)
    features = rng.standard_normal((K * n, d))
    features *= noise / np.sqrt(d)
    features += means[codes]
    order = rng.permutation(K * n)
    return {"features": features[order], "labels": values[codes][order], "W": means}
