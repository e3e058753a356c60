"""Checkpoints of a Trainer: its whole state, written atomically to one file in the run folder every
few seconds of training and when the run is interrupted; a rerun of the same command resumes from
it (the file sits in the optimise stage's cache folder, so a changed config starts afresh)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import torch

from recon.cache import atomic_write_bytes
from recon.errors import ReconError

FORMAT = 1  # bump when the state's layout changes: an old checkpoint is then ignored


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

    def load(self) -> dict | None:
        """The saved state, or None when there is none (or it is from another format)."""
        if self.path is None or not self.path.is_file():
            return None
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - a damaged checkpoint only costs the resume
            return None
        return data["state"] if isinstance(data, dict) and data.get("format") == FORMAT else None

    def remove(self) -> None:
        if self.path is not None and self.path.exists():
            self.path.unlink()
