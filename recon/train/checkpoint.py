"""Checkpoints of a Trainer: its whole state, written atomically to one file in the run folder every
few seconds of training and when the run is interrupted; a rerun of the same command resumes from
it (the file sits in the optimise stage's cache folder, so a changed config starts afresh). A
checkpoint that cannot be read (truncated, garbage, another format) costs only the resume: one line
says so and training starts from step 0."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from recon.cache import UNREADABLE_ERRORS, atomic_write_bytes, reason
from recon.errors import ReconError

FORMAT = 1  # bump when the state's layout changes: an old checkpoint is then ignored


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Checkpointer:
    """Saves `trainer.state_dict()` to `path` every `every_s` seconds (0 = only when asked)."""

    def __init__(self, path: Path | None, every_s: float = 60.0) -> None:
        self.path = None if path is None else Path(path)
        self.every_s = every_s
        self.saved_step: int | None = None
        self._last = time.perf_counter()

    def __call__(self, trainer) -> None:
        """The Trainer's on_step hook: save when the interval is up or the run is stopping."""
        from recon import interrupt

        due = self.every_s > 0 and time.perf_counter() - self._last >= self.every_s
        if self.path is not None and (due or interrupt.received() is not None):
            self.save(trainer)

    def save(self, trainer) -> None:
        buf = io.BytesIO()
        torch.save({"format": FORMAT, "state": trainer.state_dict()}, buf)
        try:
            atomic_write_bytes(self.path, buf.getvalue())
        except OSError as e:
            raise ReconError(f"cannot write the checkpoint ({e.strerror})", self.path) from None
        self.saved_step = trainer.step
        self._last = time.perf_counter()

    def load(self, say: Callable[[str], None] | None = None) -> dict | None:
        """The saved state, or None when there is none. A checkpoint that is there but cannot be
        used (damaged, or from another format) is None too, and `say` gets one line naming it."""
        if self.path is None or not self.path.exists():
            return None
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=False)
        except UNREADABLE_ERRORS as e:
            self.unusable(reason(e), say)
            return None
        if not isinstance(data, dict) or not isinstance(data.get("state"), dict):
            self.unusable(f"it holds a {type(data).__name__}, not a checkpoint", say)
            return None
        if data.get("format") != FORMAT:
            self.unusable(f"format {data.get('format')}, this recon writes format {FORMAT}", say)
            return None
        return data["state"]

    def unusable(self, why: str, say: Callable[[str], None] | None = None) -> None:
        """Say in one line (to `say`, else stderr) that the checkpoint cannot be resumed from and
        training starts afresh."""
        (say or _stderr)(f"optimize: the checkpoint {self.path} is unreadable ({why}); training starts from step 0")

    def remove(self) -> None:
        if self.path is not None and self.path.exists():
            self.path.unlink()
