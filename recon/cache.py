"""Artifact cache: each stage's output lives in RUN/cache/STAGE-KEY/, keyed by a hash of its inputs'
keys and its own config, so a rerun with a changed later stage reuses everything before it.
Writes are atomic (temp file + rename): an interrupted run never leaves a half-written artifact."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

from recon.errors import ReconError


def config_digest(obj: Any) -> str:
    """A stable short hash of a (nested) config dataclass / dict / value."""
    return hashlib.sha256(json.dumps(_plain(obj), sort_keys=True, default=str).encode()).hexdigest()[:16]


def chain_key(stage: str, code: str, config: Any, input_keys: list[str]) -> str:
    """The key of a stage's artifact: its name, its code's digest, config and its inputs' keys."""
    return config_digest({"stage": stage, "code": code, "config": config, "inputs": input_keys})


def input_files(folder: Path, skip: Path | None = None) -> list[Path]:
    """Every file under `folder` (or `folder` itself if it is a file), except those under `skip`
    (a run folder inside the input folder must not change the input's key)."""
    folder = Path(folder)
    if not folder.is_dir():
        return [folder]
    skip = None if skip is None else Path(skip).resolve()
    return [p for p in folder.rglob("*") if p.is_file()
            and (skip is None or not p.resolve().is_relative_to(skip))]


def files_digest(paths: list[Path]) -> str:
    """Identify input files by path, size and modification time (cheap; content hashing of large
    photo sets would dominate a cached rerun)."""
    entries = []
    for p in sorted(paths):
        st = p.stat()
        entries.append((str(p.resolve()), st.st_size, int(st.st_mtime)))
    return config_digest(entries)


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`: a reader sees the
    old file or the new one, never half of one. A full or read-only disk is a ReconError naming
    the file, and leaves nothing behind."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; a deliverable gets the usual mode
        os.replace(tmp, path)
    except OSError as e:
        raise ReconError(f"cannot write ({e.strerror or e})", path) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _read_umask()  # read once, at import: os.umask is process-wide, so reading it later races


def writable_folder(path: Path) -> Path:
    """Create the folder `path` (and its parents) and check that a file can be made in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ReconError(f"cannot write the output folder ({e.strerror or e})", path) from None
    return path


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_plain(obj), indent=2, default=str) + "\n")


class ArtifactStore:
    """RUN/cache/<stage>-<key>/artifact.pkl (+ any files the stage writes into that folder)."""

    def __init__(self, run_dir: Path) -> None:
        self.root = Path(run_dir) / "cache"

    def folder(self, stage: str, key: str) -> Path:
        return self.root / f"{stage}-{key}"

    def has(self, stage: str, key: str) -> bool:
        return (self.folder(stage, key) / "artifact.pkl").exists()

    def load(self, stage: str, key: str) -> Any:
        with open(self.folder(stage, key) / "artifact.pkl", "rb") as f:
            return pickle.load(f)

    def save(self, stage: str, key: str, artifact: Any) -> None:
        atomic_write_bytes(self.folder(stage, key) / "artifact.pkl", pickle.dumps(artifact, protocol=4))

    def drop(self, stage: str) -> None:
        """Forget every cached artifact of `stage` (for --force)."""
        if self.root.exists():
            for d in self.root.glob(f"{stage}-*"):
                shutil.rmtree(d, ignore_errors=True)
