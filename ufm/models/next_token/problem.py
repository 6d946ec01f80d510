"""Next-token UFM: one free feature per distinct context, trained with cross-entropy on
that context's empirical next-token distribution (the setting of Wu & Papyan 2024's
linguistic collapse, at the last layer only).

Convention. M distinct contexts are the columns of H (d x M); context m has frequency pi_m
(sum 1) and next-token distribution p_m over the K tokens (columns of ``targets``, K x M);
the unembedding W (K x d) has no bias, as a language model's has none:

    f = sum_m pi_m CE(W h_m, p_m) + lambda_W/2 ||W||_F^2 + lambda_H/2 sum_m pi_m ||h_m||^2,
    CE(z, p) = logsumexp(z) - p.z.

Variables. The solver's unknowns are ``params = {"W": W, "S": S}`` with S = H D^{1/2}
(s_m = sqrt(pi_m) h_m, D = diag(pi)), the coordinates of the convex program: the feature
penalty is then lambda_H/2 ||S||_F^2, the same for every column, and the data term's
curvature in s_m is W^T CE'' W whatever pi_m (in H a column's curvature carries pi_m: pi_m
lambda_H = 9e-8 for the rarest corpus bigram context at V = 1024, which left L-BFGS
ill-conditioned and the gradient test out of reach). The features are ``feature_columns(params)``
= S D^{-1/2}: `ufm.check`, the NC metrics, the Grams and the geometry read them through it,
and `theory().params` is in the same variables (W, S).

This is the canonical ufm loss over the N tokens of a stream (every token is one sample
whose feature is its context's: identical contexts have the same optimal feature), with the
per-token feature decay written as lambda_H = N lambda_H(per sample), exactly mixup's
lambda_bar: mixup's objective is this one with pi = counts/N and the same soft-label code
(`ufm.models._soft_labels`). The data term is at least the entropy sum_m pi_m H(p_m) (the
Bayes next-token loss).

Theory (theory.py, derivations/next_token.py): the convex program in Q = Z D^{1/2}, solved
and certified by the plain model's convex solver; it is the minimum when d >= its rank and a
lower bound otherwise. Balanced one-hot targets (source ``one-hot``): the plain CE UFM's
simplex ETF, in closed form.
"""

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ... import _budget, _checks, _symmetry
from ... import _theory as th
from ...problem import AbstractProblem, Hyper
from .._soft_labels import soft_label_terms
from ..plain.certificate import certificate
from . import data
from .geometry import properties
from .theory import SOURCE, SOURCE_ETF, convex_bound, plain_mapping, realize


class NextTokenProblem(AbstractProblem):
    """Next-token UFM: a free feature per context, soft next-token targets, CE, no bias."""

    summary: ClassVar[str] = (
        "Next-token UFM: a free feature per context, its next-token distribution as target."
    )
    name: ClassVar[str] = "next-token"
    collapsed_columns: ClassVar[bool] = False
    hypers: ClassVar[tuple[Hyper, ...]] = (
        Hyper("source", "choice", "synthetic", "where the contexts come from", data.SOURCES),
        Hyper("K", "int", 16, "vocabulary size V = number of tokens (>= 2; bigram: >= 3)"),
        Hyper("d", "int", 16, "feature dimension (>= 1)"),
        Hyper("zipf_exponent", "float", 1.0, "synthetic: Zipf exponent of pi (>= 0)"),
        Hyper("entropy_rate", "float", None, "synthetic: nats per token (default: midpoint)"),
        Hyper("deterministic", "flag", False, "synthetic: one next token per context"),
        Hyper("language_seed", "int", 0, "synthetic / one-hot: the seed of the language"),
        Hyper("lambda_W", "float", 1e-3, "weight decay on the unembedding W (> 0)"),
        Hyper("lambda_H", "float", 1e-3, "per-token feature decay (> 0)"),
    )

    source: str = eqx.field(static=True)
    K: int = eqx.field(static=True)
    d: int = eqx.field(static=True)
    language: tuple = eqx.field(static=True)  # (zipf_exponent, entropy_rate, deterministic, seed)
    context_tokens: tuple[int, ...] = eqx.field(static=True)
    column_labels: tuple[int, ...] = eqx.field(static=True)
    lambda_W: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    lambda_H: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    targets: Float[Array, "K M"] = eqx.field(converter=jnp.asarray)
    weights: Float[Array, " M"] = eqx.field(converter=jnp.asarray)

    @classmethod
    def make(
        cls,
        *,
        source="synthetic",
        K=16,
        d=16,
        zipf_exponent=1.0,
        entropy_rate=None,
        deterministic=False,
        language_seed=0,
        lambda_W=1e-3,
        lambda_H=1e-3,
    ) -> "NextTokenProblem":
        source = _checks.choice("source", source, data.SOURCES)
        K = _checks.integer("K", K, 3 if source == "bigram" else 2)
        d = _checks.integer("d", d, 1)
        lW = _checks.real("lambda_W", lambda_W, positive=True)
        lH = _checks.real("lambda_H", lambda_H, positive=True)
        zipf = _checks.real("zipf_exponent", zipf_exponent, positive=False)
        if entropy_rate is not None:
            entropy_rate = _checks.real("entropy_rate", entropy_rate, positive=False)
        deterministic = _checks.flag("deterministic", deterministic)
        seed = _checks.integer("language_seed", language_seed, 0)
        ctx = data.load(source, K, zipf, entropy_rate, deterministic, seed)
        language = (zipf, entropy_rate, deterministic, seed)
        return cls.from_contexts(ctx, d, lW, lH, source=source, language=language)

    @classmethod
    def from_contexts(cls, contexts: data.Contexts, d: int, lambda_W: float, lambda_H: float,
                      *, source: str = "synthetic", language=(1.0, None, False, 0)):  # fmt: skip
        """A problem on any contexts (`data.Contexts`: targets, weights): tests and the
        mixup equivalence use it; `hyperparameters` then names the source it was built as."""
        # the NC metrics need every class 0..K-1 to have a column: the most likely next
        # token where these cover all K tokens (one-hot: the next token), else the context
        best = np.argmax(np.asarray(contexts.targets), axis=0)
        labels = best if np.unique(best).size == contexts.targets.shape[0] else contexts.tokens
        return cls(
            column_labels=tuple(int(t) for t in labels),
            source=source,
            K=int(contexts.targets.shape[0]),
            d=int(d),
            language=tuple(language),
            context_tokens=tuple(int(t) for t in contexts.tokens),
            lambda_W=float(lambda_W),
            lambda_H=float(lambda_H),
            targets=np.asarray(contexts.targets, dtype=float),
            weights=np.asarray(contexts.weights, dtype=float),
        )

    @classmethod
    def claims(cls) -> tuple:
        from .claims import CLAIMS  # claims solve problems: imported when asked for

        return CLAIMS

    @classmethod
    def sizes(cls, values: dict[str, Any]) -> _budget.Sizes:
        K, d = _budget.positive(values["K"]), _budget.positive(values["d"])
        M = K  # at most one context per token
        return _budget.Sizes(d * M + K * d, d * M, K * M, K, 2 * K * M + 2 * M)

    def hyperparameters(self) -> dict[str, Any]:
        zipf, entropy_rate, deterministic, seed = self.language
        return {
            "source": self.source,
            "K": self.K,
            "d": self.d,
            "zipf_exponent": zipf,
            "entropy_rate": entropy_rate,
            "deterministic": deterministic,
            "language_seed": seed,
            "lambda_W": float(self.lambda_W),
            "lambda_H": float(self.lambda_H),
        }

    # ------------------------------------------------------------------------------------
    @property
    def contexts(self) -> data.Contexts:
        return data.Contexts(np.asarray(self.targets, float), np.asarray(self.weights, float),
                             np.asarray(self.context_tokens))  # fmt: skip

    @property
    def labels(self) -> np.ndarray:
        """The class of every column for the NC metrics (`column_labels`, fixed at
        construction so that a traced problem has them too)."""
        return np.asarray(self.column_labels)

    @property
    def mu(self) -> float:
        return float(np.sqrt(self.lambda_W * self.lambda_H))

    def weight_decay(self) -> Float[Array, ""]:
        """In the solver's variables (W, S) the penalties are lambda_W/2 ||W||^2 and
        lambda_H/2 ||S||^2: the smallest curvature is the smaller lambda, as in the plain UFM."""
        return jnp.minimum(self.lambda_H, self.lambda_W)

    def feature_columns(self, params: dict[str, Array]) -> Float[Array, "d M"]:
        """The features H = S D^{-1/2} (column m: s_m / sqrt(pi_m)) of the solver's S."""
        return params["S"] / jnp.sqrt(self.weights)[None, :]

    def scaled(self, H: Float[Array, "d M"]) -> Float[Array, "d M"]:
        """The solver's S = H D^{1/2} of features H (the inverse of `feature_columns`)."""
        return H * jnp.sqrt(self.weights)[None, :]

    def loss(self, params: dict[str, Array]) -> Float[Array, ""]:
        """f at W = params["W"], H = feature_columns(params) (module docstring); the feature penalty
        sum_m pi_m ||h_m||^2 is ||S||_F^2."""
        S, W = params["S"], params["W"]
        ones = jnp.ones_like(self.weights)
        data_term, penalty = soft_label_terms(
            W @ self.feature_columns(params),
            S,
            self.targets,
            self.weights,
            ones,
            self.lambda_H,
            "ce",
        )
        return data_term + penalty + self.lambda_W / 2 * jnp.sum(W**2)

    def symmetry_tangents(self, params: dict[str, Array]) -> list[dict[str, Array]]:
        """O(d) on the feature space: W -> W Q^T, S -> Q S (H -> Q H)."""
        return _symmetry.rotation_tangents(params, left="W", right="S")

    def init(self, key: PRNGKeyArray, scale: Float[Array, ""]) -> dict[str, Array]:
        """W and S with i.i.d. N(0, scale^2/d) entries."""
        kW, kS = jax.random.split(key)
        dtype = self.lambda_W.dtype
        std = scale / float(np.sqrt(self.d))
        M = self.weights.size
        return {
            "W": std * jax.random.normal(kW, (self.K, self.d), dtype),
            "S": std * jax.random.normal(kS, (self.d, M), dtype),
        }

    def extra_quantities(self, params: dict[str, Array]) -> dict[str, np.ndarray]:
        """The feature Gram ``H_gram`` (of H, not S) and the logits of every context,
        ``column_logits``."""
        H = self.feature_columns(params)
        return {"H_gram": H.T @ H, "column_logits": params["W"] @ H}

    def certificate(self, params: dict[str, Any], loss: float) -> dict[str, Any]:
        """The duality gap of the convex program at the point's logits: a lower bound on
        the minimum for every d (`ufm.models.plain.certificate` with soft targets)."""
        Z = np.asarray(params["W"], float) @ np.asarray(self.feature_columns(params), float)
        w = np.asarray(self.weights, float)
        out = certificate("ce", Z, None, self.mu, loss, "none", 0.0, w,
                          targets=np.asarray(self.targets, float))  # fmt: skip
        out["width_needed"] = self.bound().rank
        out["tight"] = self.d >= out["width_needed"]
        return out

    # ------------------------------------------------------------------------------------
    def bound(self):
        """The convex program's certified minimum (`theory.convex_bound`)."""
        return convex_bound(np.asarray(self.targets), np.asarray(self.weights), self.mu)

    def theory(self) -> th.Theory:
        if self.source == "one-hot" and self.d >= self.K - 1:
            return self._theory_etf()
        b = self.bound()
        if not b.converged:
            return th.not_applicable(f"the convex program did not converge: {b.status}", SOURCE)
        if b.rank > self.d:
            return th.not_applicable(
                f"lower bound, not attained (rank {b.rank} > d={self.d}): the convex minimum "
                f"{b.value:.12g} bounds the loss from below; the solver must stay above it",
                SOURCE,
            )
        lW, lH = float(self.lambda_W), float(self.lambda_H)
        W, H = realize(b, np.asarray(self.weights), self.d, lW, lH)
        reason = (
            f"the convex program in Q = Z D^(1/2), certified to duality gap {b.gap:.2g}; "
            f"its minimizer has rank {b.rank} <= d={self.d}, so the UFM attains it"
        )
        geometry = "zero" if b.rank == 0 else "general_frame"
        t = self._prediction(geometry, b.value, reason, SOURCE, W, H)
        return th.Theory(**{**t.__dict__, "certificate": b.certificate()})

    def _theory_etf(self) -> th.Theory:
        """One-hot balanced: the plain CE UFM's closed form, columns in context order."""
        from ..plain import PlainProblem

        lW, lH = float(self.lambda_W), float(self.lambda_H)
        plain = PlainProblem.make(**plain_mapping(self.K, self.d, lW, lH)).theory()
        if not plain.applicable:
            return plain
        order = np.argmax(np.asarray(self.targets), axis=0)  # context m -> its next token
        W, H = plain.params["W"], plain.params["H"][:, order]
        reason = f"one-hot balanced targets: the plain CE UFM's {plain.geometry}; {plain.reason}"
        return self._prediction(plain.geometry, plain.loss, reason, SOURCE_ETF, W, H)

    def _prediction(self, geometry, loss, reason, source, W, H) -> th.Theory:
        """The theory of minimizer (W, H): quantities of the features H, params in the
        solver's variables (W, S = H D^{1/2})."""
        regime = "zero" if geometry == "zero" else "collapsed"
        quantities = {"W_gram": W @ W.T, "H_gram": H.T @ H, "column_logits": W @ H}
        S = H * np.sqrt(np.asarray(self.weights, float))[None, :]
        return th.Theory(regime, geometry, float(loss), reason, source, quantities,
                         {"W": W, "S": S})  # fmt: skip

    def extra_report(self, params: dict[str, Any], theory=None) -> dict[str, Any]:
        """The bound, the solver's distance above it, and the geometry (`properties`)."""
        b = self.bound()
        W = np.asarray(params["W"], float)
        loss = float(self.loss({k: jnp.asarray(params[k], float) for k in ("W", "S")}))
        section = {
            "bound": b.value,
            "bound_rank": b.rank,
            "attained": b.rank <= self.d,
            "above_bound": loss - b.value,
            "entropy": self.contexts.entropy,
            "geometry": properties(W, self.contexts.token_frequencies),
        }
        return {"next-token": section}

    @staticmethod
    def report_lines(section: dict[str, Any]) -> list[str]:
        """The ``"next-token"`` section of the report in words."""
        g = section["geometry"]
        state = "attained" if section["attained"] else "NOT attained (lower bound)"
        return [
            f"bound     {section['bound']:.12g} (rank {section['bound_rank']}, {state}); "
            f"solver above it by {section['above_bound']:.3g}; entropy {section['entropy']:.6g}",
            f"geometry  corr(|w_k|, log q_k) {g['norm_logfreq_corr']:.3f}, mean |cos(w_k, w_l)| "
            f"{g['mean_abs_cos']:.3f}, GNC2 log mean {g['gnc2_log_mean']:.4f} "
            f"var {g['gnc2_log_var']:.3g}, rank W {g['W_rank']}",
        ]

    def data_arrays(self) -> dict[str, np.ndarray]:
        """Targets, weights and the token of every context."""
        c = self.contexts
        return {"targets": c.targets, "weights": c.weights, "tokens": c.tokens}
