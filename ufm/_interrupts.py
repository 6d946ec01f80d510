"""SIGINT and SIGTERM during a sweep: a flag checked between chunks, never a lost exception.

Python's own SIGINT handler raises KeyboardInterrupt wherever the main thread happens to be.
Under JAX that is often inside the garbage collector's callback (``gc.callbacks`` holds
``jax._src.lib._xla_gc_callback``, run at every collection: very often while JAX traces and
compiles), and an exception raised in a gc callback is printed as "Exception ignored in" and
dropped, so the sweep ran on to the end. `interrupts()` installs handlers that only set a flag
(nothing to drop); the sweep checks it between chunks and while it waits, saves and stops. A
second signal stops at once (the chunk in flight is lost), except inside a store write, which
always completes.
"""

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by SIGINT/SIGTERM (or Ctrl-C) after saving what it had.

    signum: the signal (SIGINT for a KeyboardInterrupt raised otherwise); saved and total:
    points (x seeds; `unit`, e.g. "runs" for trainings) in the store and in the grid; out:
    the store (None: in memory); stored: whether the store exists (False: stopped before it
    was created); forced: a second signal stopped it at once (a computation may still be
    running on the devices, which the process waits for at exit unless it leaves with
    ``os._exit``); job: what to run again to continue ("sweep", "training").
    """

    def __init__(
        self, signum: int, saved: int, total: int, out, stored: bool, forced: bool,
        unit: str = "points", job: str = "sweep",
    ):  # fmt: skip
        super().__init__(signum, saved, total, out, stored, forced)
        self.signum, self.saved, self.total = signum, saved, total
        self.out, self.stored, self.forced = out, stored, forced
        self.unit, self.job = unit, job  # what is counted ("runs"), what to run again

    @property
    def signame(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        return self.describe("resume=True")

    def describe(self, resume: str) -> str:
        """What was saved and how to go on (`resume`: "--resume" for the command line)."""
        if self.out is None:
            return f"interrupted by {self.signame}; the results were in memory and are lost"
        if not self.stored:
            return (
                f"interrupted by {self.signame} before anything was solved; "
                f"{self.out} was not created"
            )
        return (
            f"interrupted by {self.signame}; {self.saved} of {self.total} {self.unit} are saved "
            f"in {self.out}; run the same {self.job} with {resume} to continue"
        )


class Guard:
    """The state of one sweep's interrupts: `requested` after the first signal, `forced` after
    the second. Store writes run inside `critical()`, where the second signal does not raise."""

    def __init__(self, active: bool):
        self.active = active  # handlers installed (main thread)
        self.signum: int | None = None
        self.count = 0
        self._critical = 0

    @property
    def requested(self) -> bool:
        return self.count > 0

    @property
    def forced(self) -> bool:
        return self.count > 1

    def handler(self, signum, frame) -> None:
        self.count += 1
        self.signum = self.signum or signum
        name = signal.Signals(signum).name
        if self.count == 1:
            sys.stderr.write(
                f"\nufm: {name}: stopping after the chunk in flight and saving; "
                "send it again to stop at once (the chunk in flight is then lost)\n"
            )
        elif not self._critical:
            raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if a second signal asked to stop at once."""
        if self.forced:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1

    def wait(self, arrays, idle=lambda: None) -> None:
        """Block until `arrays` (jax.Arrays) are computed, calling `idle` and checking for a
        forced stop at least every 50 ms meanwhile."""
        pause = 1e-3
        while not all(x.is_ready() for x in arrays):
            self.check()
            idle()
            time.sleep(pause)
            pause = min(2 * pause, 0.05)

    def result(self, future, idle=lambda: None):
        """`future.result()`, calling `idle` and checking for a forced stop while it waits."""
        while True:
            self.check()
            try:
                return future.result(timeout=0.05)
            except TimeoutError:
                idle()


_active: Guard | None = None
pending: int | None = None  # a SIGINT that came before `interrupts()`, recorded by `early`


def early() -> None:
    """For the ``ufm`` command, called before anything heavy is imported: SIGINT raises
    KeyboardInterrupt as usual but is also remembered, so that one dropped by a gc callback
    while the command starts still stops the sweep (`interrupts` takes it over)."""

    def handler(signum, frame):
        global pending
        pending = pending or signum
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)


@contextlib.contextmanager
def interrupts() -> Iterator[Guard]:
    """SIGINT and SIGTERM set a flag for the duration (the previous handlers are restored
    after). Nested uses share the outer guard; outside the main thread nothing is installed."""
    global _active, pending
    if _active is not None:
        yield _active
        return
    if threading.current_thread() is not threading.main_thread():
        yield Guard(active=False)
        return
    guard = Guard(active=True)
    if pending is not None:  # an earlier SIGINT, maybe dropped: honoured here
        guard.signum, guard.count, pending = pending, 1, None
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    _active = guard
    try:
        for s in SIGNALS:
            signal.signal(s, guard.handler)
        yield guard
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        _active = None
