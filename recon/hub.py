"""Where a model named by a local folder or a Hugging Face hub id lives on this disk, without the
network: a folder as given, or the hub id's snapshot in the local cache (`local_files_only`).
The repair stage checks its models with it before a run starts, and `recon weights` reports
from it what is there and how big it is."""

from __future__ import annotations

from pathlib import Path


def locate(spec: str) -> Path | None:
    """The folder (or file) `spec` names on this disk: itself when it exists, else the local
    cache's snapshot of that hub id; None when neither is here. Never downloads."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    if spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        return None  # not a hub id (owner/name) and not on disk
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        return None
    try:
        return Path(snapshot_download(spec, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def size_bytes(path: Path) -> int:
    """Bytes under `path` (a file or a folder; the cache's symlinks followed to their blobs)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def human(n: int) -> str:
    """1.2 GB, 4.6 MB, 12 kB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def cached_models() -> list[tuple[str, Path, int]]:
    """(hub id, snapshot folder, bytes) of every model in the local Hugging Face cache."""
    try:
        from huggingface_hub import scan_cache_dir
        from huggingface_hub.errors import CacheNotFound
    except ImportError:
        return []
    try:
        info = scan_cache_dir()
    except (CacheNotFound, OSError):
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        rev = max(repo.revisions, key=lambda r: r.last_modified)
        out.append((repo.repo_id, Path(rev.snapshot_path), int(repo.size_on_disk)))
    return out
