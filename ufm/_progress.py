"""Progress of a long solve, reported from inside the compiled loop.

`ufm.solve(progress=...)` compiles the loop with a ``jax.debug.callback`` to `report` after
every step; `reporting` sets where those reports go for the duration of one solve. A
vmapped loop (restarts) reports each restart's step in turn.
"""

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np

Sink = Callable[[int, float, float, float], None]
_sink: Sink | None = None  # the solve in progress, set by `reporting`
AUTO_UNKNOWNS = 1_000_000  # progress=None shows progress from this many unknowns x restarts


def report(step, loss, grad_norm, tol) -> None:
    """Called by the compiled loop: (step, loss, gradient norm, tolerance) of one restart."""
    if _sink is not None:
        _sink(int(np.asarray(step)), float(loss), float(grad_norm), float(tol))


@contextlib.contextmanager
def reporting(sink: Sink) -> Iterator[None]:
    global _sink
    previous, _sink = _sink, sink
    try:
        yield
    finally:
        _sink = previous


class Printer:
    """One line on `stream` at most every `interval` seconds, and a last one at `close`."""

    def __init__(self, max_steps: int, stream=None, interval: float = 2.0):
        self.max_steps, self.stream, self.interval = max_steps, stream or sys.stderr, interval
        self.began = self.shown = time.perf_counter()
        self.last: tuple[int, float, float, float] | None = None

    def __call__(self, step: int, loss: float, grad_norm: float, tol: float) -> None:
        self.last = (step, loss, grad_norm, tol)
        if time.perf_counter() - self.shown >= self.interval:
            self.show()

    def show(self) -> None:
        if self.last is None:
            return
        step, loss, grad_norm, tol = self.last
        elapsed = time.perf_counter() - self.began
        print(
            f"solve: step {step}/{self.max_steps}, loss {loss:.12g}, |grad| {grad_norm:.2e} "
            f"(converged at {tol:.2e}), {elapsed:.1f} s",
            file=self.stream,
            flush=True,
        )
        self.shown = time.perf_counter()

    def close(self) -> None:
        self.show()
