"""The contract every model satisfies: a frozen pytree with a loss, an init and its theory."""

import abc
import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..theory import Theory


@dataclasses.dataclass(frozen=True)
class Hyper:
    """One keyword of `ufm.make` (and one flag of `ufm solve`)."""

    name: str
    kind: str  # "int", "float", "floats" (one or one per layer), "counts", "choice", "flag"
    default: Any
    help: str
    choices: tuple[str, ...] = ()


class AbstractProblem(eqx.Module):
    """A model instance. Sizes are static fields, hyperparameters are array leaves."""

    name: ClassVar[str]
    hypers: ClassVar[tuple[Hyper, ...]]

    @classmethod
    @abc.abstractmethod
    def make(cls, **hyper) -> "AbstractProblem":
        """Validate the keywords of `ufm.make` and build the problem."""

    @abc.abstractmethod
    def loss(self, params: dict[str, Array]) -> Float[Array, ""]: ...

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray, scale: Float[Array, ""]) -> dict[str, Array]: ...

    @abc.abstractmethod
    def theory(self) -> Theory: ...

    @abc.abstractmethod
    def hyperparameters(self) -> dict[str, Any]:
        """The keywords that rebuild this problem with `ufm.make` (JSON-able)."""

    def classifier(self, params: dict[str, Array]) -> Array:
        """The end-to-end classifier (K, d) applied to ``params["H"]``."""
        return params["W"]

    def optimal_features(self, params: dict[str, Array]) -> Array | None:
        """The exact minimizer over H of the loss with every other parameter fixed, if the
        model has one in closed form (MSE: a ridge regression); None otherwise."""
        return None

    def layers(self, params: dict[str, Array]) -> list[dict[str, Array]]:
        """Deep models: per layer its weight ``W``, input features ``H`` and ``head``."""
        return []

    @property
    @abc.abstractmethod
    def labels(self) -> np.ndarray:
        """Class of every column of H, shape (N,)."""
