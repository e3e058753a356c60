"""docs/benchmarks.md holds one section per benchmark, between `<!-- bench:NAME -->` and
`<!-- /bench:NAME -->`. A benchmark script replaces its own section in place (so the page is
always today's numbers), never appends:

    from bench_doc import replace_section
    replace_section("poses", "## Poses\\n\\n| case | … |\\n…")

A script that runs a subset of its cases keeps the latest row per case in one table:

    old = table_rows(read_section("poses"), HEADER)
    rows = merge_rows(old, new_rows, key=(0, 1))

The write is atomic (a temporary file beside the page, then a rename), so a crash or a second
script writing at the same moment never leaves half a page.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_CELL = re.compile(r"(?<!\\)\|")


def markers(name: str) -> tuple[str, str]:
    if not _NAME.fullmatch(name):
        raise ValueError(f"section name {name!r}: letters, digits, '_', '-', '.' only")
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def _span(text: str, name: str) -> tuple[int, int] | None:
    """(end of the opening marker's line, start of the closing marker) or None when absent."""
    start, end = markers(name)
    opens = [m.start() for m in re.finditer(re.escape(start), text)]
    closes = [m.start() for m in re.finditer(re.escape(end), text)]
    if not opens and not closes:
        return None
    if len(opens) != 1 or len(closes) != 1 or closes[0] < opens[0]:
        raise ValueError(f"docs/benchmarks.md: section {name!r} has {len(opens)} opening and {len(closes)} "
                         "closing markers (one of each, in order, expected): fix the page by hand")
    return opens[0] + len(start), closes[0]


def read_section(name: str, path: Path | str = DOC) -> str | None:
    """The text between NAME's markers (without them), or None when the page or section is absent."""
    path = Path(path)
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    span = _span(text, name)
    return None if span is None else text[span[0]:span[1]].strip("\n")


def replace_section(name: str, body: str, path: Path | str = DOC) -> None:
    """Put `body` between NAME's markers in `path`, replacing what was there; a section not yet on
    the page is added at its end. Everything outside the markers is left byte for byte."""
    path = Path(path)
    start, end = markers(name)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    inner = "\n" + body.strip("\n") + "\n"
    span = _span(text, name)
    if span is None:
        if text and not text.endswith("\n"):
            text += "\n"
        text += ("\n" if text else "") + start + inner + end + "\n"
    else:
        text = text[:span[0]] + inner + text[span[1]:]
    _write_atomic(path, text)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cells(row: str) -> list[str]:
    """A markdown table row's cells, stripped (an escaped `\\|` stays inside its cell)."""
    parts = _CELL.split(row.strip())
    return [c.strip() for c in parts[1:-1]] if len(parts) > 2 else [c.strip() for c in parts]


def table_rows(section: str | None, header: str, under: str | None = None) -> list[str]:
    """The data rows of the table in `section` whose first line is `header` (the first such table
    after the line `under`, e.g. a `### title`, when given); [] when there is none."""
    if not section:
        return []
    lines = section.splitlines()
    i = 0
    if under is not None:
        try:
            i = next(k for k, line in enumerate(lines) if line.strip() == under.strip()) + 1
        except StopIteration:
            return []
    want = cells(header.splitlines()[0])
    for k in range(i, len(lines)):
        if lines[k].lstrip().startswith("|") and cells(lines[k]) == want:
            rows = []
            for line in lines[k + 2:]:  # header, then the |---| line
                if not line.lstrip().startswith("|"):
                    break
                rows.append(line.rstrip())
            return rows
        if under is not None and lines[k].startswith("#"):
            return []  # the next heading: that sub-section has no such table
    return []


def merge_rows(old: Iterable[str], new: Iterable[str], key: tuple[int, ...] = (0,)) -> list[str]:
    """The latest row per case: old's rows, each replaced in place by the new row with the same
    cells at the `key` columns, then the new rows that matched none."""
    new = list(new)

    def k(row: str) -> tuple[str, ...]:
        c = cells(row)
        return tuple(c[i] if i < len(c) else "" for i in key)

    fresh = {k(r): r for r in new}
    out, used = [], set()
    for r in old:
        if k(r) in fresh:
            if k(r) not in used:
                out.append(fresh[k(r)])
                used.add(k(r))
        else:
            out.append(r)
    for r in new:
        if k(r) not in used:
            out.append(fresh[k(r)])
            used.add(k(r))
    return out
