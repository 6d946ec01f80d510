"""Strict numerics for every test: float64, strict dtype promotion, no rank promotion."""

import os
from pathlib import Path

import jax
import matplotlib
import pytest

matplotlib.use("Agg")
jax.config.update("jax_enable_x64", True)
# JAX's persistent compilation cache: most of the suite's time is compiling (a cold run of
# tests/test_plain.py took 89 s, a warm one 27 s); the numbers are the same either way
_cache = os.environ.get("UFM_TEST_CACHE_DIR", str(Path.home() / ".cache" / "ufm" / "jax-tests"))
jax.config.update("jax_compilation_cache_dir", _cache)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)
