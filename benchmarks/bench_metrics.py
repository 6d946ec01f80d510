"""NC metrics of a language-model-sized features file: ufm's streamed, tiled `report`
against a dense in-memory computation, in one run, each in its own process with its peak
memory (the child's maximum resident set size).

Data (issue 7): K = 10,000 classes, d = 512, N = 200,000 samples, float32 rows (N, d) in an
.npy file: class means of norm ~sqrt(d) plus unit within-class noise, Zipf-like class
sizes (at least one sample each). Generated once into a temporary directory.
  ufm: `ufm.metrics.report` on the memory-mapped file (every metric of `DEFINITIONS` but
       NC4; with --classifier also NC4, which is a second pass, a classifier forward pass
       over every sample).
  dense baseline: the textbook way, as peer scripts do it: load everything as float64,
       class means with np.add.at, Sigma_W from all deviations, and the K x K Gram, cosine
       and distance matrices at once for CDNV, NC2 and GNC2 (numpy, all cores).
The script checks that the two agree on every metric they share.

    python benchmarks/bench_metrics.py [--K 10000 --d 512 --N 200000] [--classifier]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = ["nc1", "nc1_trace", "cdnv", "cdnv_lc", "nc2", "nc2_equinorm", "nc2_equiangularity"]
SHARED += ["gnc2", "gnc2_log_mean"]


def make_data(path: Path, K: int, d: int, N: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, K + 1)  # Zipf sizes, as token frequencies
    extra = rng.choice(K, size=N - K, p=weights / weights.sum())
    y = rng.permutation(np.concatenate([np.arange(K), extra])).astype(np.int32)
    means = rng.standard_normal((K, d)).astype(np.float32)
    X = np.lib.format.open_memmap(path / "features.npy", "w+", np.float32, (N, d))
    for start in range(0, N, 20_000):
        rows = slice(start, start + 20_000)
        X[rows] = means[y[rows]] + rng.standard_normal((y[rows].size, d), dtype=np.float32)
    X.flush()
    np.save(path / "labels.npy", y)
    np.save(path / "W.npy", means)


def run_ufm(path: Path, classifier: bool) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    from ufm import metrics

    X = np.load(path / "features.npy", mmap_mode="r")
    y = np.load(path / "labels.npy")
    W = np.load(path / "W.npy") if classifier else None
    start = time.perf_counter()
    stages: dict[str, float] = {}

    def progress(stage, done, total):
        stages[stage] = time.perf_counter() - start

    out = metrics.report(X, y, W, layout="rows", progress=progress)
    return {"seconds": time.perf_counter() - start, "stages": stages, "metrics": out["metrics"]}


def run_dense(path: Path) -> dict:
    start = time.perf_counter()
    X = np.load(path / "features.npy").astype(np.float64)  # (N, d)
    y = np.load(path / "labels.npy")
    N, d = X.shape
    K = int(y.max()) + 1
    counts = np.bincount(y, minlength=K).astype(float)
    sums = np.zeros((K, d))
    np.add.at(sums, y, X)
    means = sums / counts[:, None]
    D = X - means[y]
    SW = D.T @ D / N
    Mt = means - X.mean(axis=0)
    SB = Mt.T @ Mt / K
    out = {"nc1": float(np.trace(SW @ np.linalg.pinv(SB)) / K)}
    out["nc1_trace"] = float(np.trace(SW) / np.trace(SB))
    var = np.bincount(y, weights=np.sum(D**2, axis=1), minlength=K) / counts
    del D, X
    off = ~np.eye(K, dtype=bool)
    G = Mt @ Mt.T  # K x K
    sq = np.diag(G).copy()
    dist2 = np.maximum(sq[:, None] + sq[None, :] - 2 * G, 0)[off]
    pair_var = ((var[:, None] + var[None, :]) / 2)[off]
    out["cdnv"] = float(np.mean(pair_var / dist2))
    out["cdnv_lc"] = float(np.mean(pair_var / dist2**2))
    del dist2, pair_var
    P = np.eye(K) - 1 / K
    out["nc2"] = float(np.linalg.norm(G / np.linalg.norm(G) - P / np.sqrt(K - 1)))
    norms = np.sqrt(sq)
    out["nc2_equinorm"] = float(norms.std() / norms.mean())
    cos = (G / np.outer(norms, norms))[off]
    out["nc2_equiangularity"] = float(cos.std())
    log_kernel = -0.5 * np.log(2 - 2 * cos)
    out["gnc2"], out["gnc2_log_mean"] = float(log_kernel.var()), float(log_kernel.mean())
    return {"seconds": time.perf_counter() - start, "metrics": out}


def measured(worker: str, path: Path, classifier: bool) -> dict:
    """Run a worker in a fresh process; its result and its peak resident memory."""
    argv = [sys.executable, __file__, "--worker", worker, "--data", str(path)]
    argv += ["--classifier"] if classifier else []
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{worker} failed (status {status})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_gb"] = usage.ru_maxrss / 2**20  # kB on Linux
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--K", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--N", type=int, default=200_000)
    parser.add_argument("--classifier", action="store_true", help="also time ufm with NC4")
    parser.add_argument("--no-baseline", action="store_true", help="skip the dense baseline")
    parser.add_argument("--worker", choices=["ufm", "ufm-W", "dense"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = run_dense(args.data) if args.worker == "dense" else run_ufm(
            args.data, args.worker == "ufm-W"
        )  # fmt: skip
        print(json.dumps(result))
        return

    print(f"K={args.K}, d={args.d}, N={args.N}, float32 rows on disk; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        start = time.perf_counter()
        make_data(path, args.K, args.d, args.N)
        size = (path / "features.npy").stat().st_size / 2**30
        print(f"data: {size:.2f} GiB of features, made in {time.perf_counter() - start:.1f} s")
        runs = {"ufm report (streamed, tiled)": measured("ufm", path, False)}
        if args.classifier:
            runs["ufm report with W (+ NC4 pass)"] = measured("ufm-W", path, False)
        if not args.no_baseline:
            runs["dense in-memory baseline"] = measured("dense", path, False)
    print(f"{'':34} {'seconds':>8} {'peak GiB':>9}")
    for name, r in runs.items():
        print(f"{name:34} {r['seconds']:8.1f} {r['peak_gb']:9.2f}")
        if "stages" in r:
            stages = ", ".join(f"{k} done at {v:.1f} s" for k, v in r["stages"].items())
            print(f"{'':34} ({stages})")
    if "dense in-memory baseline" in runs:
        ufm_m = runs["ufm report (streamed, tiled)"]["metrics"]
        dense = runs["dense in-memory baseline"]["metrics"]
        gaps = {k: abs(ufm_m[k] - dense[k]) / max(abs(dense[k]), 1e-300) for k in SHARED}
        worst = max(gaps, key=gaps.get)
        print(f"agreement: largest relative difference {gaps[worst]:.1e} ({worst}) over {SHARED}")
    m = runs["ufm report (streamed, tiled)"]["metrics"]
    print("ufm:", ", ".join(f"{k} {m[k]:.6g}" for k in ("nc1", "nc1_trace", "cdnv", "nc2", "gnc2")))


if __name__ == "__main__":
    main()
