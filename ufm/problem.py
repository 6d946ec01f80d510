"""The contract every model satisfies: a frozen pytree with a loss, an init and its theory."""

import abc
import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from . import _budget, _linalg
from ._theory import Theory


def cross_entropy(Z: Float[Array, "K N"], Y: Float[Array, "K N"]) -> Float[Array, " N"]:
    """Per column, logsumexp(z) - z_y (one-hot Y), accurate to rounding of the result.

    Written as m + log1p(expm1(-m) + sum_{j != y} e^{d_j - m}) with d = z - z_y and
    m = max(d) >= 0 (the same function). Near collapse at small weight decay the margins
    are ~ln(1/lambda) and the loss ~lambda: logsumexp(z) - z_y would subtract two numbers
    of size ~30 and keep an absolute error ~1e-15, i.e. 1e-5 of a loss of 1e-10.
    """
    d = Z - jnp.sum(Y * Z, axis=0, keepdims=True)
    # the value does not depend on m, so neither does the gradient: no max in the backward
    # pass (as fast as logsumexp - z_y on the headline problem, ~0.3 ms per value and grad)
    m = jax.lax.stop_gradient(jnp.max(d, axis=0))
    others = jnp.sum((1 - Y) * jnp.exp(d - m[None, :]), axis=0)
    return m + jnp.log1p(jnp.expm1(-m) + others)


@dataclasses.dataclass(frozen=True)
class Hyper:
    """One keyword of `ufm.make` (and one flag of `ufm solve`)."""

    name: str
    kind: str  # "int", "float", "floats" (one or per layer), "counts", "choice", "flag", "path"
    default: Any
    help: str
    choices: tuple[str, ...] = ()


class AbstractProblem(eqx.Module):
    """A model instance. Sizes are static fields, hyperparameters are array leaves.

    The contract every model meets is written down in docs/contract.md (with a model added
    from outside ufm, step by step, in docs/tutorial.md). A subclass sets the class
    attributes `name` (the registered model name) and `hypers` (a tuple of `Hyper`, one per
    keyword of `make`), and implements the classmethod `make` (validating its keywords with
    one-line `ufm.InputError` s), `loss`, `init`, `theory`, `hyperparameters` and the
    property `labels`. The other methods are optional hooks with defaults: `classifier`,
    `feature_columns`, `weight_decay`, `optimal_features`, `extra_report`, `data_arrays`,
    `extra_quantities`, `layers`, `symmetry_tangents`, `certificate`, `claims`, `sizes`,
    `collapsed`, `collapsed_columns`, `nonnegative` (and `critical_mu`, read by `ufm plot`
    where a model has it). `ufm.solve` also reads the dtype of an array field `lambda_W`.
    Register a class with `ufm.register` or the ``ufm.models`` entry-point group.
    """

    name: ClassVar[str]  # the model's registered name, e.g. "plain"
    hypers: ClassVar[tuple[Hyper, ...]]  # the keywords of `make`, in CLI order

    # Plain attribute access. equinox wraps every method fetched from a module in a new
    # BoundMethod module (so a method can cross jit as a pytree), about 0.1 ms per call;
    # the closed forms call many small methods, and a sweep evaluates thousands of them:
    # this makes `theory()` 3x faster. Problems pass methods to transformations only
    # inside closures, never as pytree arguments.
    __getattribute__ = object.__getattribute__
    # whether the theory's features are collapsed onto class means (check then reports the
    # within-class spread as an error); mixup's columns are not
    collapsed_columns: ClassVar[bool] = True

    @classmethod
    @abc.abstractmethod
    def make(cls, **hyper) -> "AbstractProblem":
        """Validate the keywords of `ufm.make` and build the problem."""

    @abc.abstractmethod
    def loss(self, params: dict[str, Array]) -> Float[Array, ""]:
        """The whole objective at `params`, a jax scalar, in ufm's convention (a mean data
        term over the N columns, penalties lambda/2 ||.||_F^2); it runs under jit and vmap.
        `theory().loss` is its predicted minimum."""

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray, scale: Float[Array, ""]) -> dict[str, Array]:
        """One starting point: the arrays `loss` takes (features ``H``, d x N, and the
        classifier's), drawn from `key` with magnitude `scale`, in the hyperparameters'
        dtype."""

    @abc.abstractmethod
    def theory(self) -> Theory:
        """The closed-form prediction (numpy, float64): a `ufm.Theory` with the minimum, the
        regime, rotation-invariant quantities and one minimizer; ``not_applicable`` with the
        reason where no closed form applies."""

    @abc.abstractmethod
    def hyperparameters(self) -> dict[str, Any]:
        """The keywords that rebuild this problem with `ufm.make` (JSON-able)."""

    @classmethod
    def claims(cls) -> tuple:
        """Optional: the `ufm.claims.Claim` s that `ufm verify` checks for this model (their
        ``model`` is the registered name). None by default."""
        return ()

    @classmethod
    def sizes(cls, values: dict[str, Any]) -> "_budget.Sizes | None":
        """Optional: how many float64 numbers a problem built from `values` (every keyword of
        `make`, defaults filled in) holds, computed without building it, so that a solve or
        sweep that cannot fit is refused before `make` allocates. None (the default): the
        check runs on the built problem only."""
        return None

    def classifier(self, params: dict[str, Array]) -> Array:
        """The end-to-end classifier (K, d) applied to `feature_columns`."""
        return params["W"]

    def feature_columns(self, params: dict[str, Array]) -> Array:
        """The features (d, N) that the classifier applies to: ``params["H"]`` by default. A
        model that optimizes in other coordinates (next-token: S = H D^{1/2}) maps them
        back here; `ufm.check`, the NC metrics and sweeps read features only through it."""
        return params["H"]

    def weight_decay(self) -> Float[Array, ""]:
        """The smallest curvature the penalties give the objective: `ufm.solve` judges the
        gradient relative to it (see `ufm.solve.tolerance`). Default: the smallest positive
        ``lambda_*`` hyperparameter (1 if there is none); a model whose penalties weigh
        parameters differently overrides it."""
        lambdas = [
            jnp.ravel(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name.startswith("lambda_") and eqx.is_array(getattr(self, f.name))
        ]
        if not lambdas:
            return jnp.asarray(1.0)
        values = jnp.concatenate(lambdas)
        positive = jnp.where(values > 0, values, jnp.inf)
        smallest = jnp.min(positive)
        return jnp.where(jnp.isfinite(smallest), smallest, jnp.ones_like(smallest))

    def nonnegative(self) -> tuple[str, ...]:
        """The names of the parameters (keys of `init`'s dict) constrained to be >= 0 entry
        by entry (post-ReLU features: ``("H",)``). `ufm.solve` then keeps them >= 0 and
        judges convergence by the projected gradient (`ufm._bounds`); feature elimination
        and `ufm.landscape` do not apply. Default: none, the problem is unconstrained."""
        return ()

    def collapsed(self) -> "eqx.Module | None":
        """Optional: this problem restricted to collapsed features (one column per class),
        where every global minimizer is proven collapsed: an object with `loss`, `init`,
        `weight_decay`, `optimal_features`, `classifier`, `nonnegative` over its own
        parameters and `expand(params)`, which gives this problem's. `ufm.solve` then
        optimizes it and judges the expanded point on this problem's gradient (its
        ``route="collapsed"``). None (the default): no such reduction."""
        return None

    def optimal_features(self, params: dict[str, Array]) -> Array | None:
        """The exact minimizer over H of the loss with every other parameter fixed, if the
        model has one in closed form (MSE: a ridge regression); None otherwise."""
        return None

    def eliminates_features(self) -> bool:
        """Whether `optimal_features` gives the features in closed form, so that `ufm.solve`
        optimizes the other parameters only. The default traces it once (shapes only);
        a model overrides it with a cheap static answer, since every solve asks."""
        shapes = jax.eval_shape(self.init, jax.random.PRNGKey(0), jnp.asarray(1.0))
        return jax.eval_shape(self.optimal_features, shapes) is not None

    def extra_report(
        self, params: dict[str, Array], theory: Theory | None = None
    ) -> dict[str, Any]:
        """Model-specific entries of the `ufm solve` report (JSON-able); none by default.
        `theory`: ``self.theory()`` if the caller has it already."""
        return {}

    def data_arrays(self) -> dict[str, np.ndarray]:
        """The problem's own data, saved beside the minimizer by ``ufm solve --params``."""
        return {}

    def extra_quantities(self, params: dict[str, Array]) -> dict[str, np.ndarray]:
        """Model-specific found quantities that `Theory.quantities` may predict."""
        return {}

    def layers(self, params: dict[str, Array]) -> list[dict[str, Array]]:
        """Deep models: per layer its weight ``W``, input features ``H`` and ``head``."""
        return []

    def symmetry_tangents(self, params: dict[str, Array]) -> list[dict[str, Array]] | None:
        """The tangent vectors at `params` of the loss's continuous symmetries, one pytree
        like `params` per generator (`ufm._symmetry.rotation_tangents` builds those of O(d)
        acting on a feature axis). `ufm.landscape` counts the Hessian's zero eigenvalues
        along them apart from unexplained ones. None (the default): no symmetry is known;
        ``[]``: the model has none."""
        return None

    def certificate(self, params: dict[str, Any], loss: float) -> dict[str, Any] | None:
        """A certificate that `params` (objective value `loss`) is a global minimum, computed
        from the point alone: at least ``gap`` (loss minus a proven lower bound on the
        minimum) and ``certified`` (the gap is within rounding). None (the default): the
        model has no certificate; `ufm.check` says so."""
        return None

    @property
    @abc.abstractmethod
    def labels(self) -> np.ndarray:
        """Class of every column of H, shape (N,)."""


class AbstractCountedProblem(AbstractProblem):
    """A UFM whose columns are samples sorted by class, `counts` per class."""

    counts: eqx.AbstractVar[tuple[int, ...]]

    @property
    def K(self) -> int:
        return len(self.counts)

    @property
    def N(self) -> int:
        return sum(self.counts)

    @property
    def balanced(self) -> bool:
        return len(set(self.counts)) == 1

    @property
    def labels(self) -> np.ndarray:
        return np.repeat(np.arange(self.K), self.counts)


class AbstractClassProblem(AbstractCountedProblem):
    """A UFM on labelled columns: class counts, CE or MSE on logits, an optional last-layer
    bias. Holds what the plain and deep linear models share; subclasses set the fields."""

    loss_name: eqx.AbstractVar[str]
    bias: eqx.AbstractVar[bool]
    lambda_H: eqx.AbstractVar[Float[Array, ""]]

    def data_loss(self, Z: Float[Array, "K N"]) -> Float[Array, ""]:
        """(1/N) sum_i CE(z_i, y_i), or (1/(2N)) ||Z - Y||_F^2 for MSE."""
        Y = jax.nn.one_hot(self.labels, self.K, dtype=Z.dtype).T  # constant; beats a gather
        if self.loss_name == "ce":
            return jnp.sum(cross_entropy(Z, Y)) / self.N
        return jnp.sum((Z - Y) ** 2) / (2 * self.N)

    def eliminates_features(self) -> bool:
        return self.loss_name == "mse"  # what `optimal_features` below solves

    def optimal_features(self, params: dict[str, Array]) -> Array | None:
        """MSE: H*(W, b) = Hbar* Y with Hbar* = (W^T W + N lambda_H I)^{-1} W^T (I - b 1^T).

        Each column solves the ridge problem min_h |W h + b - e_y|^2/(2N) + lambda_H/2 |h|^2,
        so features are collapsed and only K columns are solved for (W: the end-to-end
        classifier). `ufm.solve` minimizes over the other parameters with H = H*, which has
        the same minimizers and, by the envelope theorem, the same gradient.
        """
        Hbar = self.optimal_class_means(params)
        return None if Hbar is None else Hbar[:, self.labels]

    def optimal_class_means(self, params: dict[str, Array]) -> Array | None:
        """MSE: Hbar* (d x K), the optimal column of every class (`optimal_features`); None
        for CE."""
        if self.loss_name != "mse":
            return None
        W = self.classifier(params)
        K, d = W.shape
        target = jnp.eye(K, dtype=W.dtype)
        if self.bias:
            target = target - params["b"][:, None]
        A = W.T @ W + self.N * self.lambda_H * jnp.eye(d, dtype=W.dtype)
        return _linalg.solve(A, W.T @ target)

    def _finish_prediction(
        self, quantities: dict[str, np.ndarray], params: dict[str, np.ndarray], b
    ) -> None:
        """Add the bias (centred for CE, which is invariant under b -> b + t 1) and the squared
        norms of the classifier rows and class means to a realized prediction, in place."""
        if b is not None:
            params["b"] = b
            if self.loss_name == "ce" and float(getattr(self, "lambda_b", 0.0)) == 0:
                quantities["b_centred"] = b - b.mean()  # a free bias: up to b + t 1
            else:
                quantities["b"] = b
        quantities["w_norm2"] = np.diag(quantities["W_gram"]).copy()
        quantities["hbar_norm2"] = np.diag(quantities["Hbar_gram"]).copy()
