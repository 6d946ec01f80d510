"""Plain unconstrained features model (one layer), cross-entropy or MSE, optional bias.

    L(W, H, b) = (1/N) sum_i loss(W h_i + b, y_i)
                 + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2 + lambda_b/2 ||b||^2

loss(z, y) is -log softmax(z)_y ("ce") or 1/2 ||z - e_y||^2 ("mse"); lambda_b = 0 means an
unregularized bias. Shapes: W (K, d), H (d, N), b (K,); N = sum_k n_k columns sorted by class.

Closed forms: derived in derivations/plain_ufm.py (step numbers below).
  CE, balanced: a simplex ETF, the global minimizer by Zhu et al. 2021 (arXiv 2105.02375;
  abstract read, the theorem and its hypotheses recalled); its scale: steps 3-4.
  MSE, balanced, no bias: an orthogonal frame, Tirer & Bruna 2022 (arXiv 2202.08087) Thm 3.1,
  read as restated by Tirer, Huang & Niles-Weed 2023; step 6. Unregularized bias: a simplex
  ETF, step 7 (ours; recalled, not read, as Tirer & Bruna's). Imbalanced MSE, no bias: a
  general orthogonal frame with minority classes switched off, the M = 1 case of Dang et al.
  2023 (arXiv 2301.00437; abstract and official code read); step 8. Imbalanced MSE with an
  unregularized bias: the centred labels, soft-thresholded; steps 5 and 7 (ours).
  The zero solution: the certificate ||grad_Z L(0)||_op <= sqrt(lambda_W lambda_H); step 9.
  MSE with d below the number of label directions the threshold leaves on: the nuclear-norm
  problem under rank Z <= d keeps the d largest (von Neumann); steps 10-11 (ours).
  CE with d < K - 1 has no closed form: not applicable.
"""

import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ... import _budget, _checks, _symmetry
from ... import _theory as th
from ...errors import InputError
from ...problem import AbstractClassProblem, Hyper
from . import convex
from .certificate import certificate
from .collapsed import CollapsedPlain
from .theory import (
    SOURCE_CE,
    SOURCE_CONVEX,
    SOURCE_GOF,
    SOURCE_MSE,
    SOURCE_MSE_BIAS,
    SOURCE_MSE_BIAS_IMB,
    SOURCE_NARROW,
    SOURCE_ZERO,
    ce_margin,
    ce_min_loss,
    gof_alive,
    gof_class_loss,
    gof_own_logit,
    threshold,
)


def _collapsed_means(H: np.ndarray, counts: tuple[int, ...]) -> np.ndarray | None:
    """The class means if every column equals its class's first column exactly, else None."""
    first = np.cumsum(counts) - np.asarray(counts)
    Hbar = H[:, first]
    for k, (start, n) in enumerate(zip(first, counts, strict=True)):
        if not np.array_equal(
            H[:, start : start + n], np.broadcast_to(Hbar[:, k : k + 1], (H.shape[0], n))
        ):
            return None
    return Hbar


class PlainProblem(AbstractClassProblem):
    """The plain UFM; build it with ``ufm.make("plain", ...)``."""

    summary: ClassVar[str] = "The plain UFM: one linear classifier on free features, CE or MSE."
    name: ClassVar[str] = "plain"
    hypers: ClassVar[tuple[Hyper, ...]] = (
        Hyper("loss", "choice", "ce", "data loss", ("ce", "mse")),
        Hyper("K", "int", 10, "number of classes (>= 2)"),
        Hyper("n", "counts", 100, "samples per class: one count, or K of them (imbalanced)"),
        Hyper("d", "int", 64, "feature dimension (>= 1)"),
        Hyper("bias", "flag", False, "add a classifier bias b"),
        Hyper("lambda_W", "float", 5e-4, "weight decay on W (> 0)"),
        Hyper("lambda_H", "float", 5e-4, "weight decay on H (> 0)"),
        Hyper("lambda_b", "float", 0.0, "weight decay on b (>= 0; 0 = unregularized bias)"),
    )

    loss_name: str = eqx.field(static=True)
    counts: tuple[int, ...] = eqx.field(static=True)
    d: int = eqx.field(static=True)
    bias: bool = eqx.field(static=True)
    lambda_W: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    lambda_H: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    lambda_b: Float[Array, ""] = eqx.field(converter=jnp.asarray)

    @classmethod
    def make(
        cls, *, loss="ce", K=10, n=100, d=64, bias=False, lambda_W=5e-4, lambda_H=5e-4, lambda_b=0.0
    ) -> "PlainProblem":
        K = _checks.integer("K", K, 2)
        lambda_b = _checks.real("lambda_b", lambda_b, positive=False)
        bias = _checks.flag("bias", bias)
        if lambda_b and not bias:
            raise InputError(f"lambda_b={lambda_b} needs bias=True (there is no bias to penalize)")
        return cls(
            loss_name=_checks.choice("loss", loss, ("ce", "mse")),
            counts=_checks.counts(n, K),
            d=_checks.integer("d", d, 1),
            bias=bias,
            lambda_W=_checks.real("lambda_W", lambda_W, positive=True),
            lambda_H=_checks.real("lambda_H", lambda_H, positive=True),
            lambda_b=lambda_b,
        )

    @classmethod
    def claims(cls) -> tuple:
        from .claims import CLAIMS  # claims solve problems: imported when asked for

        return CLAIMS

    @classmethod
    def sizes(cls, values: dict[str, Any]) -> _budget.Sizes:
        K, d = _budget.positive(values["K"]), _budget.positive(values["d"])
        N = _budget.total(values["n"], K)
        bias = K * (values["bias"] is True)
        return _budget.Sizes(K * d + d * N + bias, d * N, K * N, K, ridge=values["loss"] == "mse")

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "loss": self.loss_name,
            "K": self.K,
            "n": self.counts[0] if self.balanced else list(self.counts),
            "d": self.d,
            "bias": self.bias,
            "lambda_W": float(self.lambda_W),
            "lambda_H": float(self.lambda_H),
            "lambda_b": float(self.lambda_b),
        }

    def logits(self, params: dict[str, Array]) -> Float[Array, "K N"]:
        Z = params["W"] @ params["H"]
        return Z + params["b"][:, None] if self.bias else Z

    def loss(self, params: dict[str, Array]) -> Float[Array, ""]:
        Z = self.logits(params)
        data = self.data_loss(Z)
        penalty = self.lambda_W / 2 * jnp.sum(params["W"] ** 2)
        penalty = penalty + self.lambda_H / 2 * jnp.sum(params["H"] ** 2)
        if self.bias:
            penalty = penalty + self.lambda_b / 2 * jnp.sum(params["b"] ** 2)
        return data + penalty

    @property
    def bias_setting(self) -> str:
        """``none``, ``free`` (lambda_b = 0) or ``regularized``: how the convex program and
        the certificate treat the bias."""
        if not self.bias:
            return "none"
        return "regularized" if float(self.lambda_b) > 0 else "free"

    def certificate(self, params: dict[str, Any], loss: float) -> dict[str, Any]:
        """The duality-gap certificate (`ufm.models.plain.certificate`), valid for any d."""
        W, H = np.asarray(params["W"], dtype=float), np.asarray(params["H"], dtype=float)
        Hbar = _collapsed_means(H, self.counts)
        # collapsed features (the collapsed route's): one column per class weighted by its
        # count, the same bound from K columns instead of N
        columns, labels = (H, self.labels) if Hbar is None else (Hbar, np.arange(self.K))
        counts = None if Hbar is None else np.asarray(self.counts)
        Z = W @ columns
        if self.bias:
            Z = Z + np.asarray(params["b"], dtype=float)[:, None]
        mu = float(np.sqrt(self.lambda_W * self.lambda_H))
        lb = float(self.lambda_b)
        out = certificate(self.loss_name, Z, labels, mu, loss, self.bias_setting, lb, counts)
        # the convex program's minimizer has rank <= K - 1 (CE, or MSE with a bias) or K:
        # from that width on it is attained, so a gap proves a global minimizer's absence
        out["width_needed"] = self.K - 1 if self.loss_name == "ce" or self.bias else self.K
        out["tight"] = self.d >= out["width_needed"]
        return out

    def collapsed(self) -> CollapsedPlain:
        """The problem over the K class means (`ufm.models.plain.collapsed`): every global
        minimizer of the plain UFM is collapsed, for any counts, loss and bias."""
        return CollapsedPlain(self)

    def symmetry_tangents(self, params: dict[str, Array]) -> list[dict[str, Array]]:
        """O(d) on the feature space: W -> W Q^T, H -> Q H (the bias is unchanged)."""
        return _symmetry.rotation_tangents(params, left="W", right="H")

    def init(self, key: PRNGKeyArray, scale: Float[Array, ""]) -> dict[str, Array]:
        """W, H with i.i.d. N(0, scale^2/d) entries; b = 0."""
        return self.gaussian_start(key, scale, self.N)

    def gaussian_start(self, key, scale, columns: int) -> dict[str, Array]:
        """W (K x d) and `columns` feature columns with i.i.d. N(0, scale^2/d) entries; b = 0
        (`init`, and the collapsed problem's init with one column per class)."""
        kW, kH = jax.random.split(key)
        dtype = self.lambda_W.dtype
        std = scale / float(np.sqrt(self.d))  # a Python float keeps the dtype of `scale`
        params = {
            "W": std * jax.random.normal(kW, (self.K, self.d), dtype),
            "H": std * jax.random.normal(kH, (self.d, columns), dtype),
        }
        if self.bias:
            params["b"] = jnp.zeros(self.K, dtype)
        return params

    # ------------------------------------------------------------------------------------
    def theory(self) -> th.Theory:
        K, N, d = self.K, self.N, self.d
        n = np.array(self.counts, dtype=float)
        lW, lH, lb = float(self.lambda_W), float(self.lambda_H), float(self.lambda_b)
        mu = np.sqrt(lW * lH)
        ce = self.loss_name == "ce"

        zero = self._zero_branch(n, mu)
        if zero is not None:
            return zero

        outside = self._outside_closed_forms(ce, lb)
        if outside is not None:
            return outside

        b = None
        if ce:
            a = float(ce_margin(K, n[0], lW, lH))
            logits = a * (np.eye(K) - 1 / K)
            loss = float(ce_min_loss(K, n[0], lW, lH))
            geometry, source, regime = "simplex_etf", SOURCE_CE, "collapsed"
            reason = f"c = K sqrt(n lambda_W lambda_H) = {threshold(K, n[0], lW, lH):.6g} < 1"
            if self.bias:
                b = np.zeros(K)  # lambda_b = 0: any constant vector; compared centred
        else:
            spec = th.spectral_mse(n, mu, 1, bias=self.bias, width=d)
            if spec.cut:
                return self._theory_narrow_mse(spec)
            if not self.bias:
                logits = np.diag(gof_own_logit(n, N, lW, lH))
                loss = float(np.sum(gof_class_loss(n, N, lW, lH)))
                dead = int(np.sum(~gof_alive(n, N, lW, lH)))
                geometry = "orthogonal_frame" if self.balanced else "general_orthogonal_frame"
                source = SOURCE_MSE if self.balanced else SOURCE_GOF
                # read off the rank, as check.found_regime does: all of min(K, d) used
                regime = "minority_collapse" if K - dead < min(K, d) else "collapsed"
                reason = (
                    f"{K - dead} of {K} classes alive (n_k > N^2 lambda_W lambda_H = "
                    f"{N**2 * lW * lH:.6g})"
                )
            else:
                logits, loss, active, nonzero, b = spec[:5]
                if self.balanced:
                    geometry, source = "simplex_etf", SOURCE_MSE_BIAS
                else:
                    geometry, source = "general_frame", SOURCE_MSE_BIAS_IMB
                regime = "minority_collapse" if active < min(nonzero, d) else "collapsed"
                reason = (
                    f"{active} of {nonzero} directions of the centred labels survive the "
                    f"threshold N sqrt(lambda_W lambda_H) = {N * mu:.6g}"
                )

        rank = th.logits_rank(logits)
        if rank > d:
            need = "d >= K - 1" if geometry == "simplex_etf" else f"d >= {rank}"
            return th.not_applicable(
                f"d={d} is below the rank {rank} of the predicted solution ({geometry} needs "
                f"{need}); the factorized problem is more constrained than the theory assumes",
                source,
            )
        return self._prediction(regime, geometry, loss, reason, source, logits, b)

    def _outside_closed_forms(self, ce: bool, lb: float) -> th.Theory | None:
        """The cases inside the zero threshold that no closed form covers: imbalanced CE is
        solved as its convex program; MSE with a regularized bias is not covered."""
        if ce and not self.balanced:
            return self._theory_convex()
        if not ce and self.bias and lb > 0:
            return th.not_applicable(
                "MSE with a regularized bias (lambda_b > 0): the geometry interpolates between "
                "ETF and orthogonal frame and has no closed form; use lambda_b = 0 or no bias",
                "not derived here; the interpolation is recalled (not read) from Zhou et al. "
                "2022, arXiv 2203.01238",
            )
        return None

    def _theory_convex(self) -> th.Theory:
        """Imbalanced CE: the reduced convex program in the class-mean logits, solved to a
        certified duality gap (`ufm.models.plain.convex`); regime read off its rank."""
        lW, lH, lb = float(self.lambda_W), float(self.lambda_H), float(self.lambda_b)
        setting = self.bias_setting
        exact = convex.solve(self.counts, np.sqrt(lW * lH), setting, lb)
        certificate = {
            "duality_gap": exact.gap,
            "dual": exact.dual,
            "rank": exact.rank,
            "grad_op_over_mu": exact.certificate,
        }
        if not exact.converged:
            return th.not_applicable(
                f"the convex program did not reach its tolerance, so it is no prediction: "
                f"{exact.status}",
                SOURCE_CONVEX,
            )
        full = min(self.K - 1, self.d)
        if exact.rank > self.d:
            return th.not_applicable(
                f"d={self.d} is below the rank {exact.rank} of the convex program's solution; "
                "the factorized problem is more constrained than the program",
                SOURCE_CONVEX,
            )
        regime = (
            "zero"
            if exact.rank == 0
            else ("collapsed" if exact.rank >= full else "minority_collapse")
        )
        reason = (
            f"the convex program in the class-mean logits (bias {setting}), solved to duality "
            f"gap {exact.gap:.2g}; its solution has rank {exact.rank} of {self.K - 1}"
        )
        theory = self._prediction(
            regime,
            "zero" if regime == "zero" else "general_frame",
            exact.value,
            reason,
            SOURCE_CONVEX,
            exact.logits,
            exact.b,
        )
        return dataclasses.replace(theory, certificate=certificate)

    def _theory_narrow_mse(self, spec: th.SpectralMSE) -> th.Theory:
        """MSE (no bias, or an unregularized one) with d below the number of label directions
        that would be on: the d largest are kept (`ufm.theory.spectral_mse`). All d
        dimensions are used, so the regime is ``collapsed`` (as `ufm.check.found_regime`
        reads it off the rank); the classes or directions past d are off.

        Balanced classes, or counts tied at the cut: any d-dimensional choice within the tied
        singular space is a minimizer (the class means form any tight frame of R^d in the
        balanced case), so only the singular values of W Hbar (and b) are predicted."""
        K, d = self.K, self.d
        what = "classes" if not self.bias else "directions of the centred labels"
        if spec.tie:
            geometry = "tight_frame" if self.balanced else "general_frame"
        else:
            geometry = "general_frame" if self.bias else "general_orthogonal_frame"
        reason = (
            f"d={d} is below the {spec.active + spec.cut} {what} that would be on at any "
            f"width: the d largest singular values of the {'centred ' if self.bias else ''}"
            f"labels are kept, {spec.cut} more {'is' if spec.cut == 1 else 'are'} off"
        )
        if spec.tie:
            reason += (
                "; the cut falls between equal singular values, so which combination is "
                "kept is not determined: compared through the singular values of the "
                "class-mean logits (and b) only"
            )
        elif not self.bias:
            off = [k for k in range(K) if spec.logits[k, k] == 0]
            reason += f" (class{'es' if len(off) > 1 else ''} {off} off)"
        theory = self._prediction(
            "collapsed", geometry, spec.loss, reason, SOURCE_NARROW, spec.logits, spec.b
        )
        if not spec.tie:
            return theory
        invariant = {"logits_sv": np.linalg.svd(spec.logits, compute_uv=False)}
        if spec.b is not None:
            invariant["b"] = spec.b
        return dataclasses.replace(theory, quantities=invariant)

    def _zero_point(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(best bias b, softmax or MSE logits p) at W = H = 0; None if b has no closed form."""
        K, N = self.K, self.N
        n = np.array(self.counts, dtype=float)
        lb = float(self.lambda_b)
        ce = self.loss_name == "ce"
        if not self.bias:
            b = np.zeros(K)
            return b, (np.full(K, 1 / K) if ce else b)
        if ce and lb > 0 and not self.balanced:
            return None
        if ce:
            b = np.log(n / N) if lb == 0 else np.zeros(K)
            return b, n / N
        b = n / (N * (1 + lb))
        return b, b

    def critical_mu(self) -> list[tuple[str, float]]:
        """Where the regime changes, as values of mu = sqrt(lambda_W lambda_H), the rest fixed.

        ``zero``: the zero-solution certificate (zero iff mu >= this). MSE without bias, or
        with an unregularized bias: direction i of the (centred) labels, singular value s_i,
        switches off at mu = s_i/N (Dang et al.; without bias s_i = sqrt(n_k): class k
        dies); with width d only the d largest directions ever switch on. Used to draw
        phase boundaries; `theory` decides the regime itself.
        """
        out = []
        zero = self._zero_point()
        if zero is not None:
            out.append(("zero", th.zero_point_gradient_norm(zero[1], np.array(self.counts))))
        if self.loss_name == "mse" and float(self.lambda_b) == 0:
            n = np.array(self.counts, dtype=float)
            if self.bias:
                s = np.sqrt(
                    np.clip(np.linalg.eigvalsh(np.diag(n) - np.outer(n, n) / self.N), 0, None)
                )
            else:
                s = np.sqrt(n)
            s = np.sort(s)[::-1][: self.d]  # the others stay off at any lambda (width d)
            for value in sorted(set(np.round(s[s < s.max() * (1 - 1e-12)], 12)), reverse=True):
                if value > 1e-9:
                    out.append(("minority off", float(value) / self.N))
        return out

    def _zero_branch(self, n: np.ndarray, mu: float) -> th.Theory | None:
        """W = H = 0 with the best bias, if the certificate says it is global (any d)."""
        K, N = self.K, self.N
        lb = float(self.lambda_b)
        ce = self.loss_name == "ce"
        zero = self._zero_point()
        if zero is None:
            return None  # the best bias at W = H = 0 has no closed form
        b, p = zero
        if th.zero_point_gradient_norm(p, np.array(self.counts)) > mu:
            return None
        if ce:
            data = -np.sum(n / N * (np.log(p)))
        else:
            data = np.sum(n * np.sum((b[None, :] - np.eye(K)) ** 2, axis=1)) / (2 * N)
        loss = float(data + (lb / 2 * np.sum(b**2) if self.bias else 0.0))
        reason = "the zero solution passes the certificate ||grad_Z L(0)||_op <= sqrt(lW lH)"
        return self._prediction(
            "zero", "zero", loss, reason, SOURCE_ZERO, np.zeros((K, K)), b if self.bias else None
        )

    def _prediction(self, regime, geometry, loss, reason, source, logits, b) -> th.Theory:
        n = np.array(self.counts)
        lW, lH = float(self.lambda_W), float(self.lambda_H)
        (Hbar, W), quantities = th.realize(logits, n, self.d, (lH, lW))
        params = {"W": W, "H": Hbar[:, self.labels]}
        self._finish_prediction(quantities, params, b)
        return th.Theory(regime, geometry, loss, reason, source, quantities, params)
