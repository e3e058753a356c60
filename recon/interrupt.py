"""Ctrl-C (SIGINT) and `kill` (SIGTERM) end a run the same way: one line saying where it stopped and
how to resume, finished work kept, no stack dump.

Why a handler of our own:
- pycolmap installs glog's failure handler when it is imported, which prints a C++ stack dump of
  about 40 lines on SIGTERM. `install()` imports pycolmap first, then replaces it.
- A KeyboardInterrupt raised inside a numba kernel surfaces as a chain of
  "SystemError: CPUDispatcher(...) returned a result with an exception set". So while a loop
  polls (`polling()`, the optimiser between steps), a signal only sets a flag; the loop saves a
  checkpoint and raises `Interrupted`. Elsewhere the first signal raises KeyboardInterrupt, and the
  pipeline turns whatever comes out of the stage into `Interrupted` (`received()` tells it).
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

_received: int | None = None
_polling = 0


class Interrupted(BaseException):
    """The run stopped on a signal; the message says where. A BaseException, as KeyboardInterrupt:
    code that records a failure and carries on (a batch's `except Exception`) must let it pass."""

    def __init__(self, signum: int, where: str) -> None:
        self.signum, self.where = signum, where
        super().__init__(f"interrupted ({signal.Signals(signum).name}) {where}")


def _handler(signum: int, frame) -> None:  # noqa: ARG001 - the signal module's signature
    global _received
    first = _received is None
    _received = signum
    if not first or not _polling:
        raise KeyboardInterrupt


def install() -> None:
    """Handle SIGINT and SIGTERM from now on (call from the main thread of a command)."""
    try:  # glog's handler comes with pycolmap's import: import it before replacing the handler
        import pycolmap  # noqa: F401
    except ImportError:
        pass
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def received() -> int | None:
    """The signal that asked the run to stop, or None."""
    return _received


def reset() -> None:
    global _received
    _received = None


@contextmanager
def polling() -> Iterator[None]:
    """Within this block a signal only sets the flag: the caller checks `received()` and stops."""
    global _polling
    _polling += 1
    try:
        yield
    finally:
        _polling -= 1
