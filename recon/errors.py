"""One exception type for problems a user can fix: the CLI prints it as one line and exits nonzero."""

from __future__ import annotations

from pathlib import Path


class ReconError(Exception):
    """A user-facing error. The message names the file (when there is one) and the problem."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class NoCameras(ReconError):
    """A folder holds images but no camera files: the poses stage must estimate them."""
