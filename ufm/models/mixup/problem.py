"""Mixup UFM (Fisher, Meng, Papyan, ICLR 2024): one free feature per mixed example.

A mixed example (c1, c2, lam) mixes an input of class c1 with one of class c2; its label is
the soft label y~ = lam e_c1 + (1 - lam) e_c2 and it has its own feature h (the input is
mixed, the feature is free: not manifold mixup). With mu_m the number of mixed examples of
column m (sum mu_m = N = K n),

    f = (1/N) sum_m mu_m loss(W h_m, y~_m) + lambda_W/2 ||W||_F^2 + lambda_H/2 sum_m mu_m ||h_m||^2

loss = CE(z, y~) = logsumexp(z) - y~.z or 1/2 ||z - y~||^2. Identical mixed examples have the
same optimal feature (the loss is strictly convex in h for fixed W), so each distinct
(c1, c2, lam) is one column carrying its multiplicity; every column then sees the per-example
feature penalty lambda_bar = N lambda_H (derivations/mixup.py step 1).

`mix` sets the pairs and coefficients (every sample is mixed once, its partner's class uniform,
so each ordered class pair (c1, c2), same-class pairs included, carries n/K examples):
  * a list of coefficients, e.g. [0.25, 0.5, 0.75] or "0.25,0.5,0.75": equal weights;
  * "beta:ALPHA:NODES": lam ~ Beta(ALPHA, ALPHA) by NODES-point Gauss-Jacobi quadrature;
  * "beta:ALPHA:sampled:SEED": N mixed examples drawn (partner class and lam), one column each.
`classifier="etf"` fixes W to a simplex ETF with rows of norm `w_norm`; `"learned"` optimizes W.

Closed forms (derived in derivations/mixup.py; only the paper's abstract was read, so this
formulation is ufm's, tested against the numerics):
  fixed ETF, CE: the centred logits solve z = kappa (y~ - softmax(z)), kappa =
  w_norm^2 K / ((K-1) lambda_bar); same-class features are lam-independent and on the
  classifier ray, different-class ones in span{w_c1, w_c2}, on the decision boundary at 1/2.
  fixed ETF, MSE: h = W^T (W W^T + lambda_bar I)^{-1} y~, linear in lam.
  learned, CE: the best simplex-ETF classifier (a scalar problem in its norm), the assumption
  the paper's abstract states; `ufm.check` says whether the solver finds a lower loss.
  learned, MSE: exact, the singular values of the weighted soft-label matrix soft-thresholded
  (step 7, from the factorization bound); W is then not an ETF (its rows keep a mean).
"""

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special
from jaxtyping import Array, Float, PRNGKeyArray

from ... import _budget, _checks, _linalg, _symmetry, geometry
from ... import _theory as th
from ...errors import InputError
from ...problem import AbstractProblem, Hyper
from .._soft_labels import soft_label_terms
from .data import make_columns, parse_mix, soft_labels
from .theory import (
    SOURCE_ETF,
    SOURCE_LEARNED_CE,
    SOURCE_LEARNED_MSE,
    ce_logits,
    kappa,
)


class MixupProblem(AbstractProblem):
    """Mixup UFM: a free feature per mixed example, soft labels, CE or MSE."""

    summary: ClassVar[str] = "Mixup UFM: a free feature per mixed example, soft labels, CE or MSE."
    name: ClassVar[str] = "mixup"
    collapsed_columns: ClassVar[bool] = False
    hypers: ClassVar[tuple[Hyper, ...]] = (
        Hyper("loss", "choice", "ce", "data loss on the soft labels", ("ce", "mse")),
        Hyper("K", "int", 3, "number of classes (>= 2)"),
        Hyper("n", "int", 100, "samples per class, each mixed once (>= 1)"),
        Hyper("d", "int", 4, "feature dimension (>= K-1)"),
        Hyper("classifier", "choice", "etf", "fixed simplex ETF or learned W", ("etf", "learned")),
        Hyper("w_norm", "float", 1.0, "row norm of the fixed ETF classifier (> 0)"),
        Hyper("lambda_W", "float", 5e-4, "weight decay on a learned W (> 0)"),
        Hyper("lambda_H", "float", 1e-3, "weight decay on the features (> 0)"),
        Hyper(
            "mix",
            "mix",
            "beta:1:8",
            "mixing coefficients: '0.25,0.5,0.75', 'beta:ALPHA:NODES' (Gauss-Jacobi) or "
            "'beta:ALPHA:sampled:SEED'",
        ),
    )

    loss_name: str = eqx.field(static=True)
    K: int = eqx.field(static=True)
    n: int = eqx.field(static=True)
    d: int = eqx.field(static=True)
    learned: bool = eqx.field(static=True)
    mix: dict = eqx.field(static=True)
    w_norm: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    lambda_W: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    lambda_H: Float[Array, ""] = eqx.field(converter=jnp.asarray)
    targets: Float[Array, "K M"] = eqx.field(converter=jnp.asarray)
    counts: Float[Array, " M"] = eqx.field(converter=jnp.asarray)

    @classmethod
    def make(
        cls,
        *,
        loss="ce",
        K=3,
        n=100,
        d=4,
        classifier="etf",
        w_norm=1.0,
        lambda_W=5e-4,
        lambda_H=1e-3,
        mix="beta:1:8",
    ) -> "MixupProblem":
        K = _checks.integer("K", K, 2)
        d = _checks.integer("d", d, 1)
        if d < K - 1:
            raise InputError(f"d must be >= K-1 = {K - 1} (a simplex ETF needs it); got d={d}")
        n = _checks.integer("n", n, 1)
        spec = parse_mix(mix)
        columns = make_columns(K, n, spec)
        return cls(
            loss_name=_checks.choice("loss", loss, ("ce", "mse")),
            K=K,
            n=n,
            d=d,
            learned=_checks.choice("classifier", classifier, ("etf", "learned")) == "learned",
            mix=spec,
            w_norm=_checks.real("w_norm", w_norm, positive=True),
            lambda_W=_checks.real("lambda_W", lambda_W, positive=True),
            lambda_H=_checks.real("lambda_H", lambda_H, positive=True),
            targets=soft_labels(K, columns),
            counts=columns["count"],
        )

    @classmethod
    def claims(cls) -> tuple:
        from .claims import CLAIMS  # claims solve problems: imported when asked for

        return CLAIMS

    @classmethod
    def sizes(cls, values: dict[str, Any]) -> _budget.Sizes:
        K, d = _budget.positive(values["K"]), _budget.positive(values["d"])
        n = _budget.positive(values["n"])
        spec = parse_mix(values["mix"])
        if spec["kind"] == "sampled":
            columns = K * n
        else:
            nodes = len(spec["lams"]) if spec["kind"] == "fixed" else spec["nodes"]
            columns = K * K * nodes
        learned = values["classifier"] == "learned"
        unknowns = d * columns + K * d * learned
        ridge = values["loss"] == "mse" and learned
        return _budget.Sizes(unknowns, d * columns, K * columns, K, (K + 6) * columns, ridge=ridge)

    def hyperparameters(self) -> dict[str, Any]:
        spec = self.mix
        if spec["kind"] == "fixed":  # repr: make(**hyperparameters()) rebuilds it exactly
            mix = ",".join(repr(x) for x in spec["lams"])
        elif spec["kind"] == "quadrature":
            mix = f"beta:{spec['alpha']!r}:{spec['nodes']}"
        else:
            mix = f"beta:{spec['alpha']!r}:sampled:{spec['seed']}"
        return {
            "loss": self.loss_name,
            "K": self.K,
            "n": self.n,
            "d": self.d,
            "classifier": "learned" if self.learned else "etf",
            "w_norm": float(self.w_norm),
            "lambda_W": float(self.lambda_W),
            "lambda_H": float(self.lambda_H),
            "mix": mix,
        }

    # ------------------------------------------------------------------------------------
    @property
    def columns(self) -> dict[str, np.ndarray]:
        """For every column of H: classes ``c1``, ``c2``, coefficient ``lam`` and ``count``
        (its number of mixed examples; they sum to N)."""
        return make_columns(self.K, self.n, self.mix)

    @property
    def N(self) -> int:
        return self.K * self.n

    @property
    def lambda_bar(self) -> float:
        """N lambda_H: the feature penalty every mixed example sees
        (derivations/mixup.py step 1)."""
        return self.N * float(self.lambda_H)

    @property
    def labels(self) -> np.ndarray:
        """The first class c1 of every column (metrics group the columns by it)."""
        return self.columns["c1"]

    def with_lambda_H(self, value: float) -> "MixupProblem":
        """The same problem with another feature decay (same shapes: no recompilation)."""
        value = _checks.real("lambda_H", value, positive=True)
        return eqx.tree_at(lambda p: p.lambda_H, self, jnp.asarray(value, self.lambda_H.dtype))

    def fixed_classifier(self, dtype=None) -> Array:
        """The simplex ETF (K, d) with rows of norm w_norm (`ufm.geometry.simplex_etf`)."""
        return geometry.simplex_etf(self.K, self.d, self.w_norm, dtype=dtype)

    def classifier(self, params: dict[str, Array]) -> Array:
        return params["W"] if self.learned else self.fixed_classifier(params["H"].dtype)

    def weight_decay(self) -> Float[Array, ""]:
        """Column m's penalty is count_m lambda_H/2 |h_m|^2; lambda_W counts only if W is
        learned."""
        features = self.lambda_H * jnp.min(self.counts)
        return jnp.minimum(features, self.lambda_W) if self.learned else features

    def loss(self, params: dict[str, Array]) -> Float[Array, ""]:
        H = params["H"]
        W = self.classifier(params)
        weights = self.counts / self.N  # the shared weighted soft-label objective
        data, penalty = soft_label_terms(
            W @ H, H, self.targets, weights, self.counts, self.lambda_H, self.loss_name
        )
        if self.learned:
            penalty = penalty + self.lambda_W / 2 * jnp.sum(W**2)
        return data + penalty

    def symmetry_tangents(self, params: dict[str, Array]) -> list[dict[str, Array]]:
        """Learned W: O(d) on the feature space (W -> W Q^T, H -> Q H; the per-column penalty
        counts_m |h_m|^2 is rotation invariant). Fixed ETF: only the rotations that fix W's
        rows are left, those of the d - (K-1) dimensions orthogonal to them (H -> Q H)."""
        if self.learned:
            return _symmetry.rotation_tangents(params, left="W", right="H")
        rows = np.asarray(self.fixed_classifier(np.float64))
        _, sv, Vt = np.linalg.svd(rows, full_matrices=True)
        complement = Vt[int(np.sum(sv > 1e-12 * sv[0])) :].T  # K-1 rows span K-1 dimensions
        return _symmetry.rotation_tangents(params, left=None, right="H", within=complement)

    def init(self, key: PRNGKeyArray, scale: Float[Array, ""]) -> dict[str, Array]:
        """H (and a learned W) with i.i.d. N(0, scale^2/d) entries."""
        kW, kH = jax.random.split(key)
        dtype = self.lambda_H.dtype
        std = scale / float(np.sqrt(self.d))
        params = {"H": std * jax.random.normal(kH, (self.d, self.counts.size), dtype)}
        if self.learned:
            params["W"] = std * jax.random.normal(kW, (self.K, self.d), dtype)
        return params

    def eliminates_features(self) -> bool:
        return self.loss_name == "mse" and self.learned

    def optimal_features(self, params: dict[str, Array]) -> Array | None:
        """MSE with a learned W: h = W^T (W W^T + lambda_bar I)^{-1} y~ per column (the
        K x K inverse: see `VicinityProblem.optimal_features` on CPU triangular solves)."""
        if self.loss_name != "mse" or not self.learned:
            return None
        W = params["W"]
        S = W @ W.T + self.N * self.lambda_H * jnp.eye(self.K, dtype=W.dtype)
        return W.T @ (_linalg.inverse(S) @ self.targets)

    def extra_quantities(self, params: dict[str, Array]) -> dict[str, np.ndarray]:
        """The Gram ``H_gram`` of the features and the logits of every column,
        ``column_logits`` (``H`` itself is among `ufm.check.found_quantities` already)."""
        H = params["H"]
        return {"H_gram": H.T @ H, "column_logits": self.classifier(params) @ H}

    # ------------------------------------------------------------------------------------
    def _column_features(self, W: np.ndarray) -> tuple[np.ndarray, float]:
        """Optimal H for a fixed classifier W that is a simplex ETF of row norm r (CE: the
        Newton logits; MSE: the ridge solution), and the loss without W's penalty."""
        K, lbar = self.K, self.lambda_bar
        Y = np.asarray(self.targets, dtype=float)
        weights = np.asarray(self.counts, dtype=float) / self.N
        if self.loss_name == "ce":
            r = float(np.linalg.norm(W[0]))
            Z = ce_logits(Y, kappa(K, r, lbar))
            P = scipy.special.softmax(Z, axis=0)
            H = W.T @ (Y - P) / lbar
            data = scipy.special.logsumexp(Z, axis=0) - np.sum(Y * Z, axis=0)
        else:
            H = W.T @ np.linalg.solve(W @ W.T + lbar * np.eye(K), Y)
            data = np.sum((W @ H - Y) ** 2, axis=0) / 2
        per_column = data + lbar / 2 * np.sum(H**2, axis=0)
        return H, float(np.sum(weights * per_column))

    def theory(self) -> th.Theory:
        if not self.learned:
            W = np.asarray(self.fixed_classifier(np.float64))
            H, loss = self._column_features(W)
            reason = (
                f"fixed simplex ETF of row norm {float(self.w_norm):g}: every column solves its "
                f"own strictly convex problem (lambda_bar = N lambda_H = {self.lambda_bar:.6g})"
            )
            return self._prediction("simplex_etf", loss, reason, SOURCE_ETF, W, H)
        if self.loss_name == "ce":
            return self._learned_ce()
        return self._learned_mse()

    def _learned_ce(self) -> th.Theory:
        """The best simplex-ETF classifier W = r E (E of unit rows): its loss is
        F(r) = sum_m w_m phi_m(kappa(r)) + lambda_W K r^2 / 2, and by the envelope theorem
        F'(r) = lambda_W K r - sum_m w_m ||z_m||^2 / (kappa r) (z_m the optimal centred
        logits), so r* is a root of the second factor, found by bracketing on a log grid
        and brentq; the zero solution (F = log K) is compared."""
        etf = np.asarray(geometry.simplex_etf(self.K, self.d, 1.0, dtype=np.float64))
        lW, K, lbar = float(self.lambda_W), self.K, self.lambda_bar
        weights = np.asarray(self.counts, dtype=float) / self.N
        Y = np.asarray(self.targets, dtype=float)
        total = lambda r: self._column_features(r * etf)[1] + lW / 2 * K * r**2

        last = [None]  # warm start: consecutive calls have nearby r

        def slope(log_r):  # F'(r) r, whose sign is that of F'
            r = np.exp(log_r)
            k = kappa(K, r, lbar)
            last[0] = Z = ce_logits(Y, k, last[0])
            return lW * K * r**2 - float(np.sum(weights * np.sum(Z**2, axis=0))) / k

        from scipy.optimize import brentq  # on first use: a slow import

        grid = np.linspace(np.log(1e-3), np.log(1e3), 19)  # r* outside: reported as zero
        signs = np.sign([slope(t) for t in grid])
        roots = [
            brentq(slope, a, b, xtol=1e-14, rtol=4 * np.finfo(float).eps)
            for a, b, sa, sb in zip(grid, grid[1:], signs, signs[1:], strict=False)
            if sa < 0 < sb  # F' from - to +: a local minimum
        ]
        zero = float(np.log(K))  # W = 0, H = 0: uniform predictions
        candidates = [(total(np.exp(t)), float(np.exp(t))) for t in roots]
        if not candidates or zero <= min(candidates)[0]:
            M = self.counts.size
            reason = "the zero solution beats every simplex-ETF classifier"
            return self._prediction("zero", zero, reason, SOURCE_LEARNED_CE,
                                    np.zeros((K, self.d)), np.zeros((self.d, M)))  # fmt: skip
        loss, r = min(candidates)
        H, _ = self._column_features(r * etf)
        reason = (
            f"assumes W is a simplex ETF (the paper's assumption); its best row norm is "
            f"r* = {r:.10g}. A lower loss found by the solver refutes the assumption"
        )
        return self._prediction("simplex_etf", loss, reason, SOURCE_LEARNED_CE, r * etf, H)

    def _learned_mse(self) -> th.Theory:
        """Exact: with H' = H M^{1/2} and T = Y~ M^{1/2} (M = diag(counts)) the loss is the plain
        MSE UFM on targets T, solved by soft-thresholding the singular values of T."""
        counts = np.asarray(self.counts, dtype=float)
        T = np.asarray(self.targets, dtype=float) * np.sqrt(counts)[None, :]
        mu = float(np.sqrt(self.lambda_W * self.lambda_H))
        U, s, Vt = np.linalg.svd(T, full_matrices=False)
        a, value = th.direction_minimizer(s, self.N, mu, 1)
        Z = (U * (a * s)) @ Vt / np.sqrt(counts)[None, :]
        rank = th.logits_rank(Z)
        if rank > self.d:
            return th.not_applicable(
                f"d={self.d} is below the rank {rank} of the predicted logits", SOURCE_LEARNED_MSE
            )
        (H, W), _ = th.realize(Z, counts, self.d, (float(self.lambda_H), float(self.lambda_W)))
        residual = (np.sum(T**2) - np.sum(s**2)) / (2 * self.N)  # T outside its row space: 0
        reason = (
            f"{int(np.sum(a > 0))} of {s.size} singular directions of the weighted soft labels "
            f"survive the threshold N sqrt(lambda_W lambda_H) = {self.N * mu:.6g}"
        )
        geometry_name = "general_frame" if np.any(a > 0) else "zero"
        return self._prediction(geometry_name, float(value.sum() + residual), reason,
                                SOURCE_LEARNED_MSE, W, H)  # fmt: skip

    def _prediction(self, geometry_name, loss, reason, source, W, H) -> th.Theory:
        """A fixed W makes H unique; a learned one leaves a rotation, so only Grams count."""
        regime = "zero" if geometry_name == "zero" else "collapsed"
        quantities = {"W_gram": W @ W.T, "column_logits": W @ H}
        quantities |= {"H_gram": H.T @ H} if self.learned else {"H": H}
        params = {"H": H} | ({"W": W} if self.learned else {})
        return th.Theory(regime, geometry_name, loss, reason, source, quantities, params)

    def extra_report(self, params: dict[str, Any], theory=None) -> dict[str, Any]:
        """The mixup properties (`properties`) of the solution and of the prediction."""
        t = self.theory() if theory is None else theory
        found = properties(self, params)
        predicted = properties(self, t.params) if t.params is not None else {}
        return {"mixup": {"found": found, "predicted": predicted}}

    @staticmethod
    def report_lines(section: dict[str, Any]) -> list[str]:
        """The ``"mixup"`` section of the report in words, for `ufm solve`'s text output."""
        f, p = section["found"], section["predicted"]
        keys = ("span_residual", "same_class_spread", "boundary_gap", "calibration_error")
        found = ", ".join(f"{k} {f[k]:.2e}" for k in keys)
        lines = [f"mixup     {found}"]
        if "calibration_error" in p:
            lines.append(f"          predicted calibration_error {p['calibration_error']:.6g}")
        return lines

    def data_arrays(self) -> dict[str, np.ndarray]:
        """The classes, coefficient and multiplicity of every column (`columns`)."""
        return self.columns


# ----------------------------------------------------------------------------------------


def properties(problem: MixupProblem, params: dict[str, Any]) -> dict[str, Any]:
    """The geometry the paper describes, measured on features H with the problem's W:

    span_residual: max over different-class columns of ||h - P h||, P the projector onto
        span{w_c1, w_c2}, over the largest feature norm max_m ||h_m||;
    same_class_spread: max over classes of the spread of its same-class features over lam,
        relative to their mean norm (0: lam-independent);
    boundary_gap: max |z_c1 - z_c2| over different-class columns with lam = 1/2;
    calibration_error: max over different-class columns with 0 < lam < 1 of
        |(z_c1 - z_c2) - log(lam/(1-lam))| (-> 0 as the regularization vanishes, for CE);
    pairs: per unordered class pair (c < c'), the logit gap and the log-odds at every lam.
    """
    H = np.asarray(params["H"], dtype=float)
    W = np.asarray(problem.classifier({k: jnp.asarray(v) for k, v in params.items()}))
    cols = problem.columns
    c1, c2, lam = cols["c1"], cols["c2"], cols["lam"]
    Z = W @ H
    idx = np.arange(lam.size)
    mixed = c1 != c2
    gap = Z[c1, idx] - Z[c2, idx]
    out: dict[str, Any] = {}
    residuals = []
    largest = max(float(np.max(np.linalg.norm(H, axis=0), initial=0.0)), 1e-300)
    for m in np.flatnonzero(mixed):
        basis = np.linalg.qr(W[[c1[m], c2[m]]].T)[0]
        h = H[:, m]
        # relative to the largest feature, not to ||h||: at K=2, lam=1/2 the optimum is h = 0
        # and its round-off would otherwise read as a residual of order one
        residuals.append(np.linalg.norm(h - basis @ (basis.T @ h)) / largest)
    out["span_residual"] = float(max(residuals, default=0.0))
    spreads = []
    for c in range(problem.K):
        same = H[:, (c1 == c) & (c2 == c)]
        if same.shape[1] > 1:
            mean = same.mean(axis=1, keepdims=True)
            scale = max(np.linalg.norm(mean), 1e-300)
            spreads.append(float(np.max(np.linalg.norm(same - mean, axis=0)) / scale))
    out["same_class_spread"] = max(spreads, default=0.0)
    half = mixed & np.isclose(lam, 0.5, rtol=0, atol=1e-12)
    out["boundary_gap"] = float(np.max(np.abs(gap[half]), initial=0.0))
    inner = mixed & (lam > 0) & (lam < 1)
    odds = np.log(lam[inner] / (1 - lam[inner]))
    out["calibration_error"] = float(np.max(np.abs(gap[inner] - odds), initial=0.0))
    pairs = []
    with np.errstate(divide="ignore"):
        log_odds = np.log(lam / (1 - lam))
    log_odds = [float(x) if np.isfinite(x) else None for x in log_odds]
    if problem.mix["kind"] != "sampled":
        for a in range(problem.K):
            for b in range(a + 1, problem.K):
                sel = np.flatnonzero((c1 == a) & (c2 == b))
                pairs.append(
                    {
                        "classes": [a, b],
                        "lam": lam[sel].tolist(),
                        "logit_gap": gap[sel].tolist(),
                        "log_odds": [log_odds[m] for m in sel],
                        "feature_norm": np.linalg.norm(H[:, sel], axis=0).tolist(),
                    }
                )
    out["pairs"] = pairs
    return out
