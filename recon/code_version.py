"""What version of the code made a cached artifact: a hash of the source of a stage's module and of
every recon module it imports, at any depth (function-level imports included). A cache entry made
by other code is not reused, without anyone having to remember to bump a version number."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path


def _source_path(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def imported_modules(module: str, root: str) -> set[str]:
    """Modules under package `root` that `module`'s source imports (directly)."""
    path = _source_path(module)
    if path is None:
        return set()
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names]
            # `from pkg import submodule` needs the submodule; the package only for other names
            names = subs + ([base] if any(_source_path(n) is None for n in subs) else [])
        else:
            continue
        for name in names:
            if (name == root or name.startswith(root + ".")) and _source_path(name) is not None:
                found.add(name)
    return found


@lru_cache(maxsize=None)
def code_digest(module: str, root: str = "recon") -> str:
    """sha256 (16 hex digits) over the sources of `module` and everything under `root` it imports."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += sorted(imported_modules(name, root) - seen)
    h = hashlib.sha256()
    for name in sorted(seen):
        path = _source_path(name)
        if path is not None:
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
