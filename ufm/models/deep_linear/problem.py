"""Deep linear unconstrained features model: M linear layers on free features, CE or MSE.

    L = (1/N) sum_i loss(W_M ... W_1 h_i + b, y_i)
        + sum_m lambda_Wm/2 ||W_m||_F^2 + lambda_H/2 ||H||_F^2

loss(z, y) is -log softmax(z)_y ("ce") or 1/2 ||z - e_y||^2 ("mse"); the optional bias b
sits on the last layer and is unregularized. Shapes: H = H_1 (d, N), W_1 ... W_{M-1} (d, d),
W_M (K, d), b (K,); params are named ``H``, ``W1`` ... ``WM``, ``b``. N = sum_k n_k columns
sorted by class. M = 1 is the plain UFM (``ufm.make("plain", ...)``) and gives its answers.

Closed forms: derived in derivations/deep_linear.py (step numbers below).
  MSE (Dang et al. 2023, arXiv 2301.00437; abstract and official code read): every singular
  direction of the target solves its own scalar problem (`ufm._theory.direction_minimizer`,
  steps 1-3); orthogonal frame at every layer (balanced, no bias), simplex ETF (last-layer
  bias), general orthogonal frame with minority classes switched off (imbalanced, step 4).
  CE, balanced: Dang et al.'s abstract says the simplex ETF at every layer is global (the
  theorem's hypotheses were not read); the abstract of Garrod & Keating (arXiv 2410.23169)
  says such high-rank solutions are not generally optimal, and their regime is recalled as
  K >= 4 with M >= 3, or K >= 6 with M = 2. The theory here is the best of the known
  candidates (zero, the best ETF and, for even K, the rank-K/2 orthoplex; step 6), named as
  such; for M >= 2 no theorem certifies it.
"""

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ... import _budget, _checks, _symmetry
from ... import _theory as th
from ...problem import AbstractClassProblem, Hyper
from ..plain.problem import PlainProblem
from .theory import (
    SOURCE_CE,
    SOURCE_CE_M1,
    SOURCE_MSE,
    SOURCE_MSE_BIAS_IMB,
    etf_beaten,
    etf_best,
    etf_logits,
    minority_threshold,
    mu,
    orthoplex_best,
    orthoplex_logits,
)


class DeepLinearProblem(AbstractClassProblem):
    """The deep linear UFM; build it with ``ufm.make("deep-linear", ...)``."""

    summary: ClassVar[str] = "The deep linear UFM: M linear layers on free features, CE or MSE."
    name: ClassVar[str] = "deep-linear"
    hypers: ClassVar[tuple[Hyper, ...]] = (
        Hyper("loss", "choice", "mse", "data loss", ("ce", "mse")),
        Hyper("K", "int", 10, "number of classes (>= 2)"),
        Hyper("n", "counts", 100, "samples per class: one count, or K of them (imbalanced)"),
        Hyper("d", "int", 64, "feature dimension and hidden width (>= 1)"),
        Hyper("depth", "int", 3, "number of weight matrices M (>= 1; 1 = the plain UFM)"),
        Hyper("bias", "flag", False, "add an unregularized bias on the last layer"),
        Hyper("lambda_W", "floats", 5e-4, "weight decay per layer: one value or M of them (> 0)"),
        Hyper("lambda_H", "float", 5e-4, "weight decay on the features H (> 0)"),
    )

    loss_name: str = eqx.field(static=True)
    counts: tuple[int, ...] = eqx.field(static=True)
    d: int = eqx.field(static=True)
    bias: bool = eqx.field(static=True)
    lambda_W: Float[Array, " M"] = eqx.field(converter=jnp.asarray)
    lambda_H: Float[Array, ""] = eqx.field(converter=jnp.asarray)

    @classmethod
    def make(
        cls, *, loss="mse", K=10, n=100, d=64, depth=3, bias=False, lambda_W=5e-4, lambda_H=5e-4
    ) -> "DeepLinearProblem":
        K = _checks.integer("K", K, 2)
        depth = _checks.integer("depth", depth, 1)
        bias = _checks.flag("bias", bias)
        return cls(
            loss_name=_checks.choice("loss", loss, ("ce", "mse")),
            counts=_checks.counts(n, K),
            d=_checks.integer("d", d, 1),
            bias=bias,
            lambda_W=np.array(_checks.reals("lambda_W", lambda_W, depth)),
            lambda_H=_checks.real("lambda_H", lambda_H, positive=True),
        )

    @property
    def depth(self) -> int:
        return self.lambda_W.shape[0]

    @classmethod
    def claims(cls) -> tuple:
        from .claims import CLAIMS  # claims solve problems: imported when asked for

        return CLAIMS

    @classmethod
    def sizes(cls, values: dict[str, Any]) -> _budget.Sizes:
        K, d = _budget.positive(values["K"]), _budget.positive(values["d"])
        M = _budget.positive(values["depth"])
        N = _budget.total(values["n"], K)
        # the report computes every layer's features: M of d x N
        unknowns = (M - 1) * d * d + K * d + d * N + K * (values["bias"] is True)
        return _budget.Sizes(unknowns, d * N, K * N, K, M * d * N, ridge=values["loss"] == "mse")

    def hyperparameters(self) -> dict[str, Any]:
        lam = [float(x) for x in np.asarray(self.lambda_W)]
        return {
            "loss": self.loss_name,
            "K": self.K,
            "n": self.counts[0] if self.balanced else list(self.counts),
            "d": self.d,
            "depth": self.depth,
            "bias": self.bias,
            "lambda_W": lam[0] if len(set(lam)) == 1 else lam,
            "lambda_H": float(self.lambda_H),
        }

    def weights(self, params: dict[str, Array]) -> list[Array]:
        """[W_1, ..., W_M]."""
        return [params[f"W{m}"] for m in range(1, self.depth + 1)]

    def classifier(self, params: dict[str, Array]) -> Array:
        """The end-to-end classifier W = W_M ... W_1 (K, d) acting on H = H_1."""
        weights = self.weights(params)
        W = weights[-1]
        for Wm in reversed(weights[:-1]):
            W = W @ Wm
        return W

    def layers(self, params: dict[str, Array]) -> list[dict[str, Array]]:
        """Per layer m = 1..M: its weight ``W``, its input features ``H`` = W_{m-1}...W_1 H_1
        and the ``head`` W_M ... W_m that maps them to the logits."""
        weights = self.weights(params)
        out, H = [], params["H"]
        for m, Wm in enumerate(weights):
            head = weights[-1]
            for Wj in reversed(weights[m:-1]):
                head = head @ Wj
            out.append({"W": Wm, "H": H, "head": head})
            H = Wm @ H
        return out

    def symmetry_tangents(self, params: dict[str, Array]) -> list[dict[str, Array]]:
        """One O(d) per hidden feature space: Q_0 between H and W_1 (H -> Q_0 H,
        W_1 -> W_1 Q_0^T) and Q_m between W_m and W_{m+1} (W_m -> Q_m W_m,
        W_{m+1} -> W_{m+1} Q_m^T), m = 1..M-1; the bias is unchanged."""
        names = ["H"] + [f"W{m}" for m in range(1, self.depth + 1)]
        out = []
        for right, left in zip(names[:-1], names[1:], strict=True):
            out += _symmetry.rotation_tangents(params, left=left, right=right)
        return out

    def loss(self, params: dict[str, Array]) -> Float[Array, ""]:
        Z = self.classifier(params) @ params["H"]  # (K, d) first: cheaper than pushing H up
        if self.bias:
            Z = Z + params["b"][:, None]
        data = self.data_loss(Z)
        penalty = self.lambda_H / 2 * jnp.sum(params["H"] ** 2)
        for m, Wm in enumerate(self.weights(params)):
            penalty = penalty + self.lambda_W[m] / 2 * jnp.sum(Wm**2)
        return data + penalty

    def init(self, key: PRNGKeyArray, scale: Float[Array, ""]) -> dict[str, Array]:
        """W_m = sqrt(2) scale Q_m with Q_m random (semi-)orthogonal; H with i.i.d.
        N(0, (0.3 scale)^2/d) entries; b = 0.

        Orthogonal factors keep every direction of the product alive at the start (random
        Gaussian factors multiply into near-zero directions that the penalty then kills:
        spurious minima). With `solve`'s default spread of init scales over restarts
        (0.5x to 2x), 8 restarts found the global minimum at every MSE point of
        tests/test_deep_linear.py for M <= 6; the constants were chosen there.
        """
        M, d = self.depth, self.d
        keys = jax.random.split(key, M + 1)
        dtype = self.lambda_H.dtype
        orthogonal = jax.nn.initializers.orthogonal(scale=1.0)
        shapes = [(d, d)] * (M - 1) + [(self.K, d)]
        params = {
            f"W{m + 1}": float(np.sqrt(2)) * scale * orthogonal(k, s, dtype)
            for m, (k, s) in enumerate(zip(keys[:M], shapes, strict=True))
        }
        params["H"] = (
            0.3 * scale / float(np.sqrt(d)) * jax.random.normal(keys[M], (d, self.N), dtype)
        )
        if self.bias:
            params["b"] = jnp.zeros(self.K, dtype)
        return params

    # ------------------------------------------------------------------------------------
    def theory(self) -> th.Theory:
        if self.loss_name == "ce" and not self.balanced:
            if self.depth == 1:  # the plain model's zero certificate, or its refusal
                return self._as_plain().theory()
            return th.not_applicable(
                "imbalanced cross-entropy with depth >= 2: no closed form (and no certificate "
                "for the zero solution: the deep penalty is a Schatten quasi-norm, not convex)",
                "not derived: derivations/deep_linear.py step 6 (ours) covers balanced classes "
                "only, and step 1 gives the quasi-norm penalty",
            )
        if self.loss_name == "ce":
            return self._theory_ce()
        return self._theory_mse()

    def _as_plain(self) -> PlainProblem:
        return PlainProblem.make(
            loss=self.loss_name,
            K=self.K,
            n=list(self.counts) if not self.balanced else self.counts[0],
            d=self.d,
            bias=self.bias,
            lambda_W=float(self.lambda_W[0]),
            lambda_H=float(self.lambda_H),
        )

    def _mu(self) -> float:
        return mu(float(self.lambda_H), np.asarray(self.lambda_W))

    def _theory_mse(self) -> th.Theory:
        K, M = self.K, self.depth
        n = np.array(self.counts, dtype=float)
        logits, loss, active, nonzero, b, *_ = th.spectral_mse(n, self._mu(), M, self.bias)
        if active == 0:
            regime, geometry = "zero", "zero"
        else:
            regime = "minority_collapse" if active < nonzero else "collapsed"
            if self.bias:
                geometry = "simplex_etf" if self.balanced else "general_frame"
            else:
                geometry = "orthogonal_frame" if self.balanced else "general_orthogonal_frame"
        if self.bias:
            source = SOURCE_MSE if self.balanced else SOURCE_MSE_BIAS_IMB
            reason = f"{active} of {nonzero} directions of the centred labels are on"
        else:
            source = SOURCE_MSE
            cut = minority_threshold(self.N, float(self.lambda_H), np.asarray(self.lambda_W))
            reason = f"{active} of {K} classes on (class k is off iff n_k <= {cut:.6g})"
        return self._prediction(regime, geometry, loss, reason, source, logits, b)

    def _theory_ce(self) -> th.Theory:
        K, n, M = self.K, self.counts[0], self.depth
        mu_ = self._mu()
        a_etf, etf_loss = etf_best(K, n, mu_, M)
        candidates = {"simplex_etf": (etf_loss, etf_logits(K, a_etf))}
        if M >= 2 and K >= 4 and K % 2 == 0:
            a_o, o_loss = orthoplex_best(K, n, mu_, M)
            candidates["orthoplex"] = (o_loss, orthoplex_logits(K, a_o))
        geometry = min(candidates, key=lambda g: candidates[g][0])
        loss, logits = candidates[geometry]
        text = ", ".join(f"{g} {v[0]:.10g}" for g, v in candidates.items())
        if M == 1:
            source, reason = SOURCE_CE_M1, f"best ETF margin a = {a_etf:.6g} (M = 1: proven)"
        elif etf_beaten(K, M) and K % 2:
            return th.not_applicable(
                f"K={K}, M={M}: no ETF is global (Garrod & Keating) and odd K has no closed-form "
                f"low-rank solution; the best ETF loss {etf_loss:.10g} is only an upper bound",
                SOURCE_CE,
            )
        else:
            source = SOURCE_CE
            reason = f"best known candidate ({text}); for M >= 2 no theorem certifies it"
        if not np.any(logits):
            geometry = "zero"
        regime = {"simplex_etf": "collapsed", "orthoplex": "low_rank", "zero": "zero"}[geometry]
        b = np.zeros(K) if self.bias else None
        return self._prediction(regime, geometry, loss, reason, source, logits, b)

    def _prediction(self, regime, geometry, loss, reason, source, logits, b) -> th.Theory:
        n = np.array(self.counts)
        rank = th.logits_rank(logits)
        if rank > self.d:
            return th.not_applicable(
                f"d={self.d} is below the rank {rank} of the predicted solution ({geometry}); "
                "the narrow network is more constrained than the theory assumes",
                source,
            )
        lambdas = (float(self.lambda_H), *map(float, np.asarray(self.lambda_W)))
        factors, quantities = th.realize(logits, n, self.d, lambdas)
        params = {"H": factors[0][:, self.labels]}
        params |= {f"W{m}": X for m, X in enumerate(factors[1:], start=1)}
        self._finish_prediction(quantities, params, b)
        quantities["logits_sv"] = np.linalg.svd(logits, compute_uv=False)
        layers = tuple(
            th.layer_quantities(layer, self.labels, self.K) for layer in self.layers(params)
        )
        if geometry == "orthoplex":  # which classes pair up is arbitrary: spectra only
            quantities = {k: quantities[k] for k in ("logits_sv", "b_centred") if k in quantities}
            layers = tuple({k: q[k] for k in ("W_sv", "W_norm2")} for q in layers)
        return th.Theory(regime, geometry, loss, reason, source, quantities, params, layers)
