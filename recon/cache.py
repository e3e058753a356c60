"""Artifact cache: each stage's output lives in RUN/cache/STAGE-KEY/, keyed by a hash of its inputs'
keys and its own config, so a rerun with a changed later stage reuses everything before it.
Writes are atomic (temp file + rename): an interrupted run never leaves a half-written artifact.
An artifact carries its length and CRC-32, so one that a disk error or a half-copied folder has
damaged is found before it is unpickled: `load` raises Unreadable, which the pipeline treats as
a cache miss (one line, then the stage recomputes and overwrites it)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import shutil
import struct
import tempfile
import zlib
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


class Unreadable(Exception):
    """A cached file that is there but cannot be used (truncated, garbage, of the wrong type, from
    code that no longer exists): a cache miss, which the caller says in one line."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


# What reading back a damaged or foreign pickle (or torch file) raises: found by feeding truncated,
# bit-flipped and random bytes to pickle.loads and torch.load. Anything else is a bug and propagates.
UNREADABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError,
    KeyError, IndexError, OverflowError, RuntimeError)


def reason(e: BaseException) -> str:
    """A short reason for one line: the exception's first line ("pickle data was truncated")."""
    text = (getattr(e, "strerror", None) if isinstance(e, OSError) else None) or str(e).strip()
    text = text.splitlines()[0] if text else type(e).__name__
    text = text[:-1] if text.endswith(".") and not text.endswith("..") else text  # it goes inside (...)
    return text if len(text) <= 120 else text[:117] + "..."


MAGIC = b"RECONPK1"
_HEADER = struct.Struct("<8sQI")  # magic, payload length, CRC-32 of the payload


def _seal(payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _unseal(data: bytes) -> memoryview:
    """The checked payload of an artifact file (a file without the header is an artifact from
    before the header and is returned whole: unpickling it is its only check)."""
    if not data.startswith(MAGIC):
        return memoryview(data)
    if len(data) < _HEADER.size:
        raise ValueError(f"truncated: {len(data):,} bytes, not even the header")
    _, size, crc = _HEADER.unpack_from(data)
    payload = memoryview(data)[_HEADER.size:]
    if len(payload) != size:
        raise ValueError(f"truncated: {len(data):,} of {_HEADER.size + size:,} bytes" if len(payload) < size
                         else f"{len(payload) - size:,} bytes too many")
    if zlib.crc32(payload) != crc:
        raise ValueError("damaged: its checksum does not match")
    return payload


class ArtifactStore:
    """RUN/cache/<stage>-<key>/artifact.pkl (+ any files the stage writes into that folder)."""

    def __init__(self, run_dir: Path) -> None:
        self.root = Path(run_dir) / "cache"

    def folder(self, stage: str, key: str) -> Path:
        return self.root / f"{stage}-{key}"

    def path(self, stage: str, key: str) -> Path:
        return self.folder(stage, key) / "artifact.pkl"

    def has(self, stage: str, key: str) -> bool:
        return self.path(stage, key).exists()

    def load(self, stage: str, key: str, expect: type | tuple[type, ...] | None = None) -> Any:
        """The cached artifact; Unreadable when the file cannot be read, is damaged, does not
        unpickle, or (with `expect`) holds something other than an `expect`."""
        path = self.path(stage, key)
        try:
            artifact = pickle.loads(_unseal(path.read_bytes()))
        except UNREADABLE_ERRORS as e:
            raise Unreadable(path, reason(e)) from e
        if expect is not None and not isinstance(artifact, expect):
            names = " or ".join(t.__name__ for t in (expect if isinstance(expect, tuple) else (expect,)))
            raise Unreadable(path, f"it holds a {type(artifact).__name__}, not a {names}")
        return artifact

    def save(self, stage: str, key: str, artifact: Any) -> None:
        atomic_write_bytes(self.path(stage, key), _seal(pickle.dumps(artifact, protocol=4)))

    def drop(self, stage: str) -> None:
        """Forget every cached artifact of `stage` (for --force)."""
        if self.root.exists():
            for d in self.root.glob(f"{stage}-*"):
                shutil.rmtree(d, ignore_errors=True)
