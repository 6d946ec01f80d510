"""Perturbed-vicinity UFM (Tirer, Huang, Niles-Weed, ICML 2023): MSE features kept near H0.

    f(W, H; H0) = (1/(2N)) ||W H - Y||_F^2 + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2
                  + beta/2 ||H - H0||_F^2

No bias; N = sum_k n_k columns sorted by class. H0 (d, N) holds the features of a shallower
layer: an array, a ``.npy``/``.npz`` file, or generated as the collapsed minimizer of the
beta-free problem (the plain MSE UFM) plus Gaussian noise. The paper's normalization
(lambda_W^T = K lambda_W, lambda_H^T = N lambda_H, beta^T = N beta) is accepted with
``units="paper"`` (`from_paper`).

Closed forms: derived in derivations/vicinity.py (the paper's main body was read in its
ICLR 2023 submission; theorem numbers as there).
  Cor 2.2 (step 3): if H0 is a collapsed minimizer (c = K sqrt(n lW lH) < 1, d >= K), the minimizer
  is (W*(H0), H0). H0 = 0: the plain MSE UFM with lambda_H + beta. Otherwise there is no
  closed form; `central_path` and `linear_response` (this package) give the flow and first-order
  predictions (Thm 3.1, Thm 4.1-4.2).

Landscape (found by ufm, not in the paper's main body): at d = K the minimizers of f_0 are
{Q H*: Q in O(K)}, which has two components, so f(.; H*) keeps a spurious local minimum near
a mirror image Q H* (Q a reflection, tr Q = K - 2), about 2 beta n rho above the global one
for small beta; about half of random starts end there. These mirror minima form a (K-1)-
dimensional family (one per reflection axis, all at the same loss), so the Hessian there has
K-1 zero eigenvalues (`ufm.landscape`; ufm/models/vicinity/landscape_claims.py). For d > K
the orbit is connected and every start we tried finds the global minimizer. Use restarts at
d = K.
"""

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ... import _budget, _checks, _linalg
from ... import _theory as th
from ...errors import InputError
from ...problem import AbstractClassProblem, Hyper
from ..plain.problem import PlainProblem
from ..plain.theory import mse_rho, threshold
from .data import _generate, _load
from .theory import SOURCE, SOURCE_COR22, from_paper

COLLAPSED_RTOL = 1e-10  # H0 this close (relative) to a collapsed minimizer counts as one
DEFAULTS = {"K": 4, "n": 5, "d": 6}  # the sizes of the worked example in derivations/vicinity.py


class VicinityProblem(AbstractClassProblem):
    """Perturbed-vicinity UFM: MSE features kept near given features H0."""

    summary: ClassVar[str] = "Perturbed-vicinity UFM: MSE features kept near given features H0."
    name: ClassVar[str] = "vicinity"
    hypers: ClassVar[tuple[Hyper, ...]] = (
        Hyper("K", "int", None, "number of classes (>= 2; default: H0's labels, else 4)"),
        Hyper("n", "counts", None, "samples per class (default: from H0, else 5)"),
        Hyper("d", "int", None, "feature dimension (default: H0's rows, else 6)"),
        Hyper("lambda_W", "float", 0.05, "weight decay on W (> 0)"),
        Hyper("lambda_H", "float", 0.01, "weight decay on H (> 0)"),
        Hyper("beta", "float", 5.0, "weight of beta/2 ||H - H0||^2 (> 0)"),
        Hyper(
            "H0",
            "path",
            None,
            "features to stay near: .npy (d x N, columns sorted by class) or .npz with "
            "'H0' (d x N) or 'features' (N x d), optionally 'labels'; default: generated",
        ),
        Hyper("noise", "float", 0.0, "generated H0: relative size of the Gaussian noise"),
        Hyper("noise_seed", "int", 0, "generated H0: seed of the noise"),
        Hyper(
            "units",
            "choice",
            "canonical",
            "'paper': lambda_W, lambda_H, beta in Tirer et al.'s normalization",
            ("canonical", "paper"),
        ),
    )

    counts: tuple[int, ...] = eqx.field(static=True)
    d: int = eqx.field(static=True)
    lambda_W: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    lambda_H: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    beta: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    H0: Float[Array, "d N"] = eqx.field(converter=jnp.asarray)
    origin: dict = eqx.field(static=True)  # how H0 was made; a file's labels per class
    loss_name: str = eqx.field(static=True, default="mse")
    bias: bool = eqx.field(static=True, default=False)

    @classmethod
    def make(
        cls,
        *,
        K=None,
        n=None,
        d=None,
        lambda_W=0.05,
        lambda_H=0.01,
        beta=5.0,
        H0=None,
        noise=0.0,
        noise_seed=0,
        units="canonical",
    ) -> "VicinityProblem":
        _checks.choice("units", units, ("canonical", "paper"))
        lam = {
            name: _checks.real(name, value, positive=True)
            for name, value in (("lambda_W", lambda_W), ("lambda_H", lambda_H), ("beta", beta))
        }
        noise = _checks.real("noise", noise, positive=False)
        noise_seed = _checks.integer("noise_seed", noise_seed, 0)
        if H0 is None:
            K = _checks.integer("K", DEFAULTS["K"] if K is None else K, 2)
            counts = _checks.counts(DEFAULTS["n"] if n is None else n, K)
            d = _checks.integer("d", DEFAULTS["d"] if d is None else d, 1)
            origin = {"H0": None, "noise": noise, "noise_seed": noise_seed}
        else:
            if noise:
                raise InputError(f"noise={noise} only applies to a generated H0 (H0 was given)")
            H0, K, counts, origin = _load(H0, K, n, d)
            d = H0.shape[0]
        if units == "paper":
            if len(set(counts)) > 1:
                raise InputError("units='paper' needs balanced classes (one n)")
            lam = from_paper(K, counts[0], **lam)
        if H0 is None:
            H0 = _generate(K, counts, d, lam["lambda_W"], lam["lambda_H"], noise, noise_seed)
        return cls(counts=counts, d=d, H0=H0, origin=origin, **lam)

    @classmethod
    def claims(cls) -> tuple:
        from .claims import CLAIMS  # claims solve problems: imported when asked for

        return CLAIMS

    @classmethod
    def sizes(cls, values: dict[str, Any]) -> _budget.Sizes | None:
        if values["H0"] is not None:
            return None  # sizes from the file: the check on the built problem sees them
        K = _budget.positive(DEFAULTS["K"] if values["K"] is None else values["K"])
        d = _budget.positive(DEFAULTS["d"] if values["d"] is None else values["d"])
        N = _budget.total(DEFAULTS["n"] if values["n"] is None else values["n"], K)
        # H0, its generation, a copy
        return _budget.Sizes(K * d + d * N, d * N, K * N, K, 4 * d * N, ridge=True)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "K": self.K,
            "n": self.counts[0] if self.balanced else list(self.counts),
            "d": self.d,
            "lambda_W": float(self.lambda_W),
            "lambda_H": float(self.lambda_H),
            "beta": float(self.beta),
        } | {k: v for k, v in self.origin.items() if k != "labels"}

    # ------------------------------------------------------------------------------------
    def _Y(self, dtype) -> Array:
        return jax.nn.one_hot(self.labels, self.K, dtype=dtype).T

    def loss(self, params: dict[str, Array]) -> Float[Array, ""]:
        return self.beta_free_loss(params) + self.beta / 2 * jnp.sum((params["H"] - self.H0) ** 2)

    def symmetry_tangents(self, params: dict[str, Array]) -> list[dict[str, Array]]:
        """[]: beta/2 ||H - H0||^2 is not invariant under H -> Q H (H0 pins the rotation
        that W -> W Q^T, H -> Q H is in the plain model), and nothing else leaves f fixed."""
        return []

    def weight_decay(self) -> Float[Array, ""]:
        """W has curvature lambda_W from its penalty, H lambda_H + beta."""
        return jnp.minimum(self.lambda_W, self.lambda_H + self.beta)

    def beta_free_loss(self, params: dict[str, Array]) -> Float[Array, ""]:
        """f_0: the loss without the beta term (the plain MSE UFM, Eq. 1)."""
        W, H = params["W"], params["H"]
        penalty = self.lambda_W / 2 * jnp.sum(W**2) + self.lambda_H / 2 * jnp.sum(H**2)
        return self.data_loss(W @ H) + penalty

    def init(self, key: PRNGKeyArray, scale: Float[Array, ""]) -> dict[str, Array]:
        """W with i.i.d. N(0, scale^2/d) entries; H = H0."""
        std = scale / float(np.sqrt(self.d))
        W = std * jax.random.normal(key, (self.K, self.d), self.lambda_W.dtype)
        return {"W": W, "H": self.H0.astype(W.dtype)}

    def optimal_features(self, params: dict[str, Array]) -> Array:
        """H*(W) = (W^T W + a I)^{-1} B, a = N (lambda_H + beta), B = W^T Y + N beta H0.

        Computed through an explicit inverse of the smaller SPD matrix (eigenvalues >= a):
        for K <= d by Woodbury, H* = (B - W^T (W W^T + a I)^{-1} W B) / a. On XLA's CPU
        backend a float64 triangular solve with N right-hand sides is about 100x slower than
        this (measured: 26 ms against 0.24 ms at K=10, d=64, N=1000)."""
        W = params["W"]
        K, d = W.shape
        a = self.N * (self.lambda_H + self.beta)
        B = W.T @ self._Y(W.dtype) + self.N * self.beta * self.H0
        if K <= d:
            S = W @ W.T + a * jnp.eye(K, dtype=W.dtype)
            return (B - W.T @ (_linalg.inverse(S) @ (W @ B))) / a
        return _linalg.inverse(W.T @ W + a * jnp.eye(d, dtype=W.dtype)) @ B

    def optimal_classifier(self, H: Float[Array, "d N"]) -> Float[Array, "K d"]:
        """The central path's classifier W*(H) = Y H^T (H H^T + N lambda_W I)^{-1}."""
        A = H @ H.T + self.N * self.lambda_W * jnp.eye(self.d, dtype=H.dtype)
        return jnp.linalg.solve(A, H @ self._Y(H.dtype).T).T

    def reduced_loss(self, H: Float[Array, "d N"]) -> Float[Array, ""]:
        """L(H) = f_0(W*(H), H): the beta-free loss along the central path."""
        return self.beta_free_loss({"W": self.optimal_classifier(H), "H": H})

    def reduced_gradient(self, H: Float[Array, "d N"]) -> Float[Array, "d N"]:
        """grad L(H) = W*^T (W* H - Y)/N + lambda_H H (envelope theorem)."""
        W = self.optimal_classifier(H)
        return W.T @ (W @ H - self._Y(H.dtype)) / self.N + self.lambda_H * H

    # ------------------------------------------------------------------------------------
    def collapsed_base(self) -> tuple[np.ndarray | None, float]:
        """The collapsed minimizer of the beta-free problem nearest to H0, and the relative
        distance ||H0 - base|| / ||base|| (absolute when base = 0).

        Balanced, c < 1, d >= K: class means sqrt(rho) R with R the orthonormal polar factor
        of H0's class means (orthogonal Procrustes); c >= 1: zero. None when d < K or the
        classes are imbalanced (no orthogonal frame minimizer to be near)."""
        K, n, d = self.K, self.counts[0], self.d
        lW, lH = float(self.lambda_W), float(self.lambda_H)
        H0 = np.asarray(self.H0, dtype=float)
        if not self.balanced:
            return None, float("nan")
        if threshold(K, n, lW, lH) >= 1:
            return np.zeros_like(H0), float(np.linalg.norm(H0))
        if d < K:
            return None, float("nan")
        means = H0 @ np.eye(K)[self.labels] / n
        U, _, Vt = np.linalg.svd(means, full_matrices=False)
        base = (np.sqrt(mse_rho(K, n, lW, lH)) * U @ Vt)[:, self.labels]
        return base, float(np.linalg.norm(H0 - base) / np.linalg.norm(base))

    def theory(self) -> th.Theory:
        K, d = self.K, self.d
        lW, lH, beta = float(self.lambda_W), float(self.lambda_H), float(self.beta)
        H0 = np.asarray(self.H0, dtype=float)
        n = self.counts if not self.balanced else self.counts[0]
        if not np.any(H0):  # f(.; 0) is the plain MSE UFM with lambda_H + beta
            plain = PlainProblem.make(loss="mse", K=K, n=n, d=d, lambda_W=lW, lambda_H=lH + beta)
            t = plain.theory()
            reason = f"H0 = 0: the plain MSE UFM with lambda_H + beta; {t.reason}"
            # H itself is fixed only at H = 0: otherwise every rotation is a minimizer
            zero = t.params is not None and not np.any(t.params["H"])
            quantities = t.quantities | ({"H": t.params["H"]} if zero else {})
            return th.Theory(t.regime, t.geometry, t.loss, reason, t.source, quantities, t.params)
        if not self.balanced:
            return th.not_applicable(
                "imbalanced classes: the vicinity theory (Cor 2.2, Thms 3.1-4.2) is for "
                "balanced classes; the solver still finds the minimizer",
                SOURCE,
            )
        base, distance = self.collapsed_base()
        if base is None:
            return th.not_applicable(
                f"d={d} < K={K}: no orthogonal-frame minimizer to be near (Cor 2.2 needs d >= K)",
                SOURCE_COR22,
            )
        if distance > COLLAPSED_RTOL:
            return th.not_applicable(
                f"H0 is not a collapsed minimizer (relative distance {distance:.3g} to the "
                "nearest one): no closed form for the minimizer; `ufm solve vicinity` reports "
                "the first-order predictions (explicit step, linear response) under "
                "vicinity.first_order",
                SOURCE,
            )
        plain = PlainProblem.make(loss="mse", K=K, n=n, d=d, lambda_W=lW, lambda_H=lH).theory()
        W = np.asarray(self.optimal_classifier(jnp.asarray(H0)))
        reason = (
            f"Cor 2.2: H0 is a collapsed minimizer (c = {threshold(K, n, lW, lH):.6g} < 1, "
            f"d >= K), so the minimizer is (W*(H0), H0) for every beta = {beta:g} > 0"
        )
        return th.Theory(
            plain.regime,
            plain.geometry,
            plain.loss,
            reason,
            SOURCE_COR22,
            plain.quantities | {"H": H0},
            {"W": W, "H": H0},
        )

    def with_parameter(self, name: str, value: float) -> "VicinityProblem":
        """The same problem with one of lambda_W, lambda_H, beta changed (canonical units).
        A generated H0 is regenerated for the new lambdas (same noise and seed, so it stays
        near the new collapsed minimizer); a given H0 is kept."""
        if name not in ("lambda_W", "lambda_H", "beta"):
            raise InputError(f"name must be 'lambda_W', 'lambda_H' or 'beta'; got {name!r}")
        value = _checks.real(name, value, positive=True)
        if self.origin["H0"] is None:
            return VicinityProblem.make(**(self.hyperparameters() | {name: value}))
        # the old value's dtype and weak type (`make` stores weak-typed scalars): another
        # input type would make jit compile the same solve again
        new = jax.lax.full_like(getattr(self, name), value)
        return eqx.tree_at(lambda p: getattr(p, name), self, new)

    def data_arrays(self) -> dict[str, np.ndarray]:
        """``H0``, sorted by class as the solver sees it."""
        return {"H0": np.asarray(self.H0)}

    def extra_report(self, params: dict[str, Any], theory=None) -> dict[str, Any]:
        """Under ``"vicinity"``: ``nc1_trace_H0`` and ``nc1_trace`` (Tr Sigma_W / Tr Sigma_B,
        the paper's Eq. 3) of H0 and of the solution, the first-order predictions of the
        latter (`linear_response`), and ``H0_labels`` when H0 came with labels (class k
        holds the k-th smallest)."""
        from . import linear_response

        section = linear_response.nc1_report(self, params)
        if "labels" in self.origin:
            section["H0_labels"] = list(self.origin["labels"])
        return {"vicinity": section}

    @staticmethod
    def report_lines(section: dict[str, Any]) -> list[str]:
        """The ``"vicinity"`` section of the report in words, for `ufm solve`'s text output."""
        first = section["first_order"]
        predicted = ", ".join(f"{k} {v['nc1_trace']:.4g}" for k, v in first.items())
        return [
            f"nc1_trace H0 {section['nc1_trace_H0']:.4g} -> solution "
            f"{section['nc1_trace']:.4g}; first order: {predicted}"
        ]
