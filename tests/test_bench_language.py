"""benchmarks/bench_language.py compares ufm's training step with a PyTorch twin: the twin is
the same model (same loss and gradients on ufm's weights and windows, float32 rounding)."""

import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ufm.language.transformer import Transformer

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_language.py"


def _bench():
    sys.path.insert(0, str(BENCH.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_language", BENCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH.parent))
    return module


def test_torch_twin_is_the_same_model():
    torch = pytest.importorskip("torch")
    bench = _bench()
    model = Transformer(50, 16, 2, 4, 12, key=jax.random.PRNGKey(1), dtype=jnp.float32)
    net = bench.torch_twin(torch, model, heads=4)
    windows = np.random.default_rng(0).integers(0, 50, (3, 13)).astype(np.int32)
    loss_gap, grad_gap = bench.same_model_check(torch, model, net, windows)
    assert loss_gap < 1e-5 and grad_gap < 1e-4
    # a twin with one weight changed is told apart
    with torch.no_grad():
        net.unembedding.weight[0, 0] += 0.5
    assert bench.same_model_check(torch, model, net, windows)[0] > 1e-4
