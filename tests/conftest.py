"""Strict numerics for every test: float64, strict dtype promotion, no rank promotion."""

import gc

import jax
import matplotlib
import pytest

matplotlib.use("Agg")
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
# No persistent compilation cache inside the test process: tests call `ufm.cli.main`
# in-process, whose set-up turns the cache on for the rest of the session, and JAX 0.10
# has aborted the whole process inside its cache write (compilation_cache.
# put_executable_and_time) twice in long slow runs. Subprocess tests (the examples, the
# entry-point and sweep CLI tests) still run the command as users do, cache included.
jax.config.update("jax_enable_compilation_cache", False)


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


@pytest.fixture(autouse=True, scope="module")
def _release_executables():
    """Drop JAX's compiled executables after every test module. Each one holds memory
    mappings of its own, and the whole suite compiles thousands: in one process they reached
    Linux's vm.max_map_count (65530) and XLA segfaulted inside a compilation. Tests in one
    module still share their compilations."""
    yield
    jax.clear_caches()
    gc.collect()
