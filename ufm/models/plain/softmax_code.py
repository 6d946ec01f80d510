"""The softmax code: K unit vectors in R^d whose smallest one-vs-rest distance is largest.

    rho_ovr(W) = min_k dist(w_k, conv{w_j : j != k}),   softmax code = argmax_{|w_k| = 1} rho_ovr

(the classifier geometry that generalized neural collapse predicts for K > d + 1: Jiang et al.
2023, arXiv 2310.05351, abstract read; "softmax code" and "one-vs-rest distance" as named in a
third-party summary of the paper; the distance to the convex hull of the others as computed in
the authors' official code @f933aaf20594, GNC2.py, by the formula of step 2; the theorem not
read). Computed here on its own, independent of the UFM solver:

1. `hull_distance`: the distance of a point to the convex hull of others, a small QP over the
   simplex of weights (nonnegative least squares with the sum-to-one row weighted heavily,
   then polished on its support by the exact equality-constrained least squares).
2. The same distance is max_{|h| <= 1} min_{c in hull} <h, w_k - c> (duality; the authors'
   code computes it this way), so with one unit "feature" h_k per class
       rho_ovr(W) = max_H min_{k, j != k} <w_k - w_j, h_k>    (|w_k| = |h_k| = 1)
   wherever rho_ovr > 0. `softmax_code` maximizes a soft minimum (log-sum-exp at a growing
   inverse temperature beta) of these margins with BFGS from `restarts` random starts
   (deterministic by seed), then polishes the best by SLSQP on the epigraph form (max t, all
   margins >= t, unit rows) and reports rho_ovr of W by step 1.

Known values, for the tests (independent closed forms): the regular K-gon (d = 2) has
rho = 1 - cos(2 pi / K); the simplex (K = d + 1) has 1 + 1/d; the cross-polytope (K = 2d) 1.
The code need not be unique (K = 5, d = 3: the triangular bipyramid and the octahedron less a
vertex both reach 1, as do their relatives): compare values of rho_ovr, not configurations.
"""

import dataclasses

import numpy as np
import scipy.optimize

BETAS = (10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4)  # soft-min inverse temperatures, in turn


@dataclasses.dataclass(frozen=True)
class SoftmaxCode:
    vectors: np.ndarray  # (K, d) unit rows: the classifier directions
    features: np.ndarray  # (K, d) unit rows: h_k attaining dist(w_k, hull of the others)
    rho: float  # rho_ovr(vectors), by `hull_distance`
    restart_rhos: np.ndarray  # rho_ovr of every restart before the polish, best first
    restart_vectors: tuple[np.ndarray, ...]  # their W, in the same order

    def fingerprint_spread(self, within: float = 1e-4) -> float:
        """Largest sorted-pair-cosine difference among the restarts within `within` of rho:
        about 0 when they found one configuration, large when the code is not unique."""
        pairs = zip(self.restart_rhos, self.restart_vectors, strict=True)
        near = [V for r, V in pairs if r >= self.rho - within]
        cos = [np.sort((V @ V.T)[np.triu_indices(len(V), 1)]) for V in near]
        return float(max((np.abs(c - cos[0]).max() for c in cos), default=0.0))


def _unit(V: np.ndarray) -> np.ndarray:
    return V / np.linalg.norm(V, axis=1)[:, None]


def hull_distance(point: np.ndarray, others: np.ndarray) -> float:
    """Euclidean distance from `point` (d,) to the convex hull of the rows of `others` (m, d):
    min |point - others^T lam| over lam >= 0, sum lam = 1."""
    A, p = np.asarray(others, float).T, np.asarray(point, float)
    scale = 1e4 * (1.0 + np.abs(A).max() + np.abs(p).max())
    lam, _ = scipy.optimize.nnls(np.vstack([A, scale * np.ones(A.shape[1])]), np.append(p, scale))
    lam = lam / lam.sum()
    support = lam > 0
    m = int(support.sum())
    As = A[:, support]  # polish: the nearest point of the support's affine hull
    kkt = np.block([[As.T @ As, np.ones((m, 1))], [np.ones((1, m)), np.zeros((1, 1))]])
    exact = np.linalg.lstsq(kkt, np.append(As.T @ p, 1.0), rcond=None)[0][:m]
    if exact.min() >= -1e-12 and np.linalg.norm(As @ exact - p) <= np.linalg.norm(A @ lam - p):
        return float(np.linalg.norm(As @ exact - p))
    return float(np.linalg.norm(A @ lam - p))


def ovr_distances(W: np.ndarray) -> np.ndarray:
    """dist(w_k, conv{w_j : j != k}) for every row k of W (rows used as given)."""
    W = np.asarray(W, float)
    return np.array([hull_distance(W[k], np.delete(W, k, axis=0)) for k in range(len(W))])


def rho_ovr(W: np.ndarray, normalize: bool = True) -> float:
    """The smallest one-vs-rest distance of the rows of W, normalized to unit length first
    unless `normalize` is False."""
    W = np.asarray(W, float)
    return float(ovr_distances(_unit(W) if normalize else W).min())


def _margins(W: np.ndarray, H: np.ndarray) -> np.ndarray:
    """M[k, j] = <w_k - w_j, h_k>, with +inf on the diagonal."""
    G = W @ H.T  # G[j, k] = <w_j, h_k>
    M = np.diag(G)[:, None] - G.T
    np.fill_diagonal(M, np.inf)
    return M


def _softmin_and_grad(x: np.ndarray, K: int, d: int, beta: float) -> tuple[float, np.ndarray]:
    """Minus the soft minimum -1/beta log sum exp(-beta M) of the margins of the normalized
    rows of U, V (x = [U, V] flattened), and its gradient."""
    U, V = x[: K * d].reshape(K, d), x[K * d :].reshape(K, d)
    nu, nv = np.linalg.norm(U, axis=1)[:, None], np.linalg.norm(V, axis=1)[:, None]
    W, H = U / nu, V / nv
    M = _margins(W, H)
    low = M.min()
    E = np.exp(-beta * (M - low))  # 0 on the diagonal
    total = E.sum()
    soft = low - np.log(total) / beta
    P = E / total  # d soft / d M[k, j]
    D = np.diag(P.sum(axis=1)) - P.T  # d soft / d G[j, k]
    gW, gH = D @ H, D.T @ W
    gU = (gW - np.sum(gW * W, axis=1)[:, None] * W) / nu
    gV = (gH - np.sum(gH * H, axis=1)[:, None] * H) / nv
    return -soft, -np.concatenate([gU.ravel(), gV.ravel()])


def _anneal(x: np.ndarray, K: int, d: int) -> np.ndarray:
    for beta in BETAS:
        res = scipy.optimize.minimize(
            _softmin_and_grad, x, args=(K, d, beta), jac=True, method="BFGS",
            options={"maxiter": 1000, "gtol": 1e-10},
        )  # fmt: skip
        x = res.x
    return x


def _split(x: np.ndarray, K: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    return _unit(x[: K * d].reshape(K, d)), _unit(x[K * d : 2 * K * d].reshape(K, d))


def _polish(W: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SLSQP on max t s.t. <w_k - w_j, h_k> >= t (k != j), |w_k|^2 = |h_k|^2 = 1."""
    K, d = W.shape
    off = ~np.eye(K, dtype=bool)
    t0 = _margins(W, H)[off].min()

    def margins(z):
        Wz, Hz = z[: K * d].reshape(K, d), z[K * d : 2 * K * d].reshape(K, d)
        G = Wz @ Hz.T
        return (np.diag(G)[:, None] - G.T)[off] - z[-1]

    def norms(z):
        Wz, Hz = z[: K * d].reshape(K, d), z[K * d : 2 * K * d].reshape(K, d)
        return np.concatenate([np.sum(Wz**2, 1), np.sum(Hz**2, 1)]) - 1.0

    res = scipy.optimize.minimize(
        lambda z: -z[-1],
        np.concatenate([W.ravel(), H.ravel(), [t0]]),
        jac=lambda z: np.eye(len(z))[-1] * -1.0,
        method="SLSQP",
        constraints=[{"type": "ineq", "fun": margins}, {"type": "eq", "fun": norms}],
        options={"maxiter": 500, "ftol": 1e-16},
    )
    return _split(res.x, K, d)


def softmax_code(K: int, d: int, restarts: int = 12, seed: int = 0) -> SoftmaxCode:
    """The best of `restarts` annealed soft-min ascents, polished (see the module docstring).
    Deterministic for a given (K, d, restarts, seed)."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(restarts):
        W, H = _split(_anneal(rng.standard_normal(2 * K * d), K, d), K, d)
        found.append((rho_ovr(W), W, H))
    found.sort(key=lambda item: -item[0])
    _, W, H = found[0]
    Wp, Hp = _polish(W, H)
    if rho_ovr(Wp) >= found[0][0]:
        W, H = Wp, Hp
    rhos = np.array([item[0] for item in found])
    return SoftmaxCode(W, H, rho_ovr(W), rhos, tuple(item[1] for item in found))
