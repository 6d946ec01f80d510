"""An independent, dense numpy computation of every NC metric `ufm.metrics.report` gives,
by its textbook formula (every K x K matrix at once), for the metric tests to compare with."""

import math

import numpy as np


def reference(H, y, W=None, b=None):
    """Every metric by its textbook formula, dense, in numpy (H (d, N), labels 0..K-1)."""
    d, N = H.shape
    K = int(y.max()) + 1
    counts = np.bincount(y, minlength=K).astype(float)
    means = np.stack([H[:, y == k].mean(axis=1) for k in range(K)], axis=1)
    Mt = means - H.mean(axis=1, keepdims=True)
    D = H - means[:, y]
    SW, SB = D @ D.T / N, Mt @ Mt.T / K
    out = {"nc1": np.trace(SW @ np.linalg.pinv(SB)) / K}
    lam, U = np.linalg.eigh(SB)
    top = np.argsort(lam)[::-1][: min(K - 1, d)]
    out["nc1_svd"] = sum(U[:, i] @ SW @ U[:, i] / lam[i] for i in top) / K
    out["nc1_trace"] = np.trace(SW) / np.trace(SB)
    sq_dev = np.array([np.sum(D[:, y == k] ** 2) for k in range(K)])
    off = ~np.eye(K, dtype=bool)
    dist2 = np.sum((means[:, :, None] - means[:, None, :]) ** 2, axis=0)
    for name, var, p in (
        ("cdnv", sq_dev / counts, 1),
        ("cdnv_ddof1", sq_dev / np.where(counts > 1, counts - 1, np.nan), 1),
        ("cdnv_lc", sq_dev / counts, 2),
    ):
        out[name] = np.mean((var[:, None] + var[None, :])[off] / 2 / dist2[off] ** p)
    P = np.eye(K) - 1 / K
    G, Gu = Mt.T @ Mt, means.T @ means
    out["nc2"] = np.linalg.norm(G / np.linalg.norm(G) - P / np.sqrt(K - 1))
    out["nc2_of"] = np.linalg.norm(Gu / np.linalg.norm(Gu) - np.eye(K) / np.sqrt(K))
    norms = np.linalg.norm(Mt, axis=0)
    out["nc2_equinorm"] = norms.std() / norms.mean()
    out["nc2_equinorm_sq"] = (norms**2).std() / (norms**2).mean()
    cos = (G / np.outer(norms, norms))[off]
    out["nc2_equiangularity"] = cos.std()
    out["nc2_maxangle"] = np.mean(np.abs(cos + 1 / (K - 1)))
    out["nc2_cos_mean"], out["nc2_cos_max"] = cos.mean(), cos.max()
    u = Mt / norms
    dist = np.sqrt(np.sum((u[:, :, None] - u[:, None, :]) ** 2, axis=0))[off]
    out["gnc2"], out["gnc2_log_mean"] = np.log(1 / dist).var(), np.log(1 / dist).mean()
    s = d - 2
    riesz = math.copysign(1.0, s) * dist ** (-float(s))  # sign(0) = +1 (rhubarbwu's copysign)
    out["gnc2_riesz_mean"], out["gnc2_riesz_var"] = riesz.mean(), riesz.var()
    if W is None:
        return out
    wn = np.linalg.norm(W, axis=1)
    GW, A = W @ W.T, W @ Mt
    out["nc2_W"] = np.linalg.norm(GW / np.linalg.norm(GW) - P / np.sqrt(K - 1))
    out["nc2_W_equinorm"] = wn.std() / wn.mean()
    out["nc3"] = np.sum((W.T / np.linalg.norm(W) - Mt / np.linalg.norm(Mt)) ** 2)
    out["nc3_uncentred"] = np.sum((W.T / np.linalg.norm(W) - means / np.linalg.norm(means)) ** 2)
    out["nc3_alignment"] = np.linalg.norm(A / np.linalg.norm(A) - P / np.sqrt(K - 1))
    duality = np.sum(W * Mt.T, axis=1) / (wn * norms)
    out["nc3_cos_mean"], out["unc3"] = duality.mean(), duality.std() / duality.mean()
    logits = W @ H + (0 if b is None else b[:, None])
    nearest = np.argmin(np.sum((H[:, None, :] - means[:, :, None]) ** 2, axis=0), axis=0)
    agree = np.argmax(logits, axis=0) == nearest
    out["nc4"] = agree.mean()
    out["nc4_per_class"] = np.mean([agree[y == k].mean() for k in range(K)])
    return out


def random_features(seed=0, K=5, d=6, n=(4, 7, 3, 5, 9), classifier=True, spread=2.0):
    rng = np.random.default_rng(seed)
    n = np.broadcast_to(n, (K,))
    y = np.repeat(np.arange(K), n)
    H = spread * rng.standard_normal((d, K))[:, y] + rng.standard_normal((d, y.size))
    W = rng.standard_normal((K, d)) if classifier else None
    b = rng.standard_normal(K) if classifier else None
    return H, y, W, b
