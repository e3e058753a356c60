"""`CpuShare`: run the CPU optimiser on fewer threads while other processes are busy.

Every torch op and numba kernel of a training step is a parallel region whose threads meet at a
barrier. When another process holds a core (a browser drawing WebGL in software, a compiler), a
thread of ours waits in the run queue, and so does every region behind it: on 2 cores a
software-WebGL Chromium made 200 steps of the fast preset 13x slower (docs/benchmarks.md), where
one thread would have been only 1.8x slower than two on an idle machine. So a sampler thread
reads how much CPU the rest of the machine uses (Linux /proc) and proposes to leave them the
cores they fill (`threads_for`), never more threads than the run started with. The optimiser
applies the proposal between steps, on its own thread (torch's and numba's thread counts are
per calling thread). Results then depend on the load through the order floats are summed in, which is why
`recon eval` keeps it off (equal threads, equal numbers).
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import numba
import torch

SAMPLE_SECONDS = 1.0
WINDOW = 2
"""Samples averaged: a decision needs 2 s of evidence, so a burst does not flip it back and forth."""
GIVE_UP = 0.5
"""Leave a core once the others take this much of it, measured while we run on all threads."""
TAKE_BACK = 0.7
"""Take it back once they use less than this of it, measured while we run on fewer."""


def _machine_busy_ticks() -> int | None:
    """Clock ticks all CPUs spent busy since boot (user, nice, system, irq, softirq, steal).
    Niced processes count: a Chromium at nice 19 still made two optimiser threads over 3x slower
    (Linux 6.18), as a thread woken at a barrier does not get its core back from it at once."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return user + nice + system + irq + softirq + steal


def _own_ticks() -> int | None:
    """Clock ticks this process (all its threads) has run."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def threads_for(others: float, cores: int, max_threads: int, current: int) -> int:
    """Threads to run on, now running `current`, while other processes use `others` cores.

    Two thresholds, because what we measure depends on what we run: on 2 cores a one-thread busy
    loop shows as 0.65 cores beside our 2 threads (it gets its fair share of 3) and as 1.0 beside
    1, a loop busy half the time as 0.37 and 0.5. Measured on 200 fast-preset steps, 1 thread
    beats 2 beside the full loop (56 s against 78 s), ties beside a 75% one (53 s, 51 s) and
    loses beside a 50% one (58 s, 49 s); GIVE_UP and TAKE_BACK put the switch there both ways.
    """
    down = cores - math.floor(others + (1 - GIVE_UP))
    up = cores - math.floor(others + (1 - TAKE_BACK))
    n = down if current > down else up if current < up else current
    return max(1, min(max_threads, n))


class CpuShare:
    """Watches the machine's load and proposes a thread count; `apply()` on the optimiser's thread.

    max_threads: the most threads to use (default: torch's current count, the run's setting).
    `changes` records the new thread count each time it changed; `reduced_steps` counts the
    `apply()` calls (steps) that ran on fewer threads than max_threads, for the run log.
    """

    def __init__(self, max_threads: int | None = None, cores: int | None = None) -> None:
        self.max_threads = max_threads or torch.get_num_threads()
        self.cores = cores or os.cpu_count() or 1
        self.proposed = self.max_threads
        self.others = 0.0  # cores the rest of the machine used, averaged over the window
        self.changes: list[int] = []
        self.reduced_steps = 0
        self._applied = torch.get_num_threads()
        self._numba_max = numba.get_num_threads()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if _machine_busy_ticks() is not None and _own_ticks() is not None and self.cores > 1:
            self._thread = threading.Thread(target=self._sample, name="recon-cpu-share", daemon=True)
            self._thread.start()

    @property
    def active(self) -> bool:
        """False where /proc is missing (not Linux) or with one core: nothing to adapt."""
        return self._thread is not None

    def observe(self, others: float) -> None:
        """Take one averaged measurement of the other processes' cores (the sampler calls this)."""
        self.others = others
        self.proposed = threads_for(others, self.cores, self.max_threads, self.proposed)

    def apply(self) -> int:
        """Set this thread's torch and numba thread counts to the proposal; returns the count."""
        n = self.proposed
        if n != self._applied:
            torch.set_num_threads(n)
            numba.set_num_threads(max(1, min(n, self._numba_max)))
            self._applied = n
            self.changes.append(n)
        self.reduced_steps += n < self.max_threads
        return n

    def close(self) -> None:
        """Stop sampling and restore the thread counts the run started with (on this thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._applied != self.max_threads:
            torch.set_num_threads(self.max_threads)
            self._applied = self.max_threads
        numba.set_num_threads(self._numba_max)

    def __enter__(self) -> "CpuShare":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sample(self) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        history: list[float] = []
        busy0, own0 = _machine_busy_ticks(), _own_ticks()
        while not self._stop.wait(SAMPLE_SECONDS):
            busy1, own1 = _machine_busy_ticks(), _own_ticks()
            if busy1 is None or own1 is None or busy0 is None or own0 is None:
                return
            history = (history + [max(0.0, (busy1 - busy0) - (own1 - own0)) / hz / SAMPLE_SECONDS])[-WINDOW:]
            busy0, own0 = busy1, own1
            if len(history) == WINDOW:
                self.observe(sum(history) / WINDOW)
