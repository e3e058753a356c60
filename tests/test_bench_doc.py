"""scripts/bench_doc.py: a benchmark replaces its own section of docs/benchmarks.md in place."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench_doc import cells, merge_rows, read_section, replace_section, table_rows  # noqa: E402

PAGE = """# Benchmarks

Intro text.

<!-- bench:alpha -->
## Alpha

| a | b |
|---|---|
| 1 | 2 |
<!-- /bench:alpha -->

<!-- bench:beta -->
## Beta

old beta
<!-- /bench:beta -->

Closing words.
"""


def test_twice_leaves_one_copy_and_the_rest_untouched(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE)
    body = "## Alpha\n\n| a | b |\n|---|---|\n| 3 | 4 |"
    replace_section("alpha", body, page)
    once = page.read_text()
    replace_section("alpha", body, page)
    twice = page.read_text()
    assert once == twice
    assert twice.count("<!-- bench:alpha -->") == 1 and twice.count("## Alpha") == 1
    assert "| 3 | 4 |" in twice and "| 1 | 2 |" not in twice
    # everything outside alpha's markers is byte for byte the same
    before, after = PAGE.split("<!-- bench:alpha -->")[0], PAGE.split("<!-- /bench:alpha -->")[1]
    assert twice.startswith(before) and twice.endswith(after)
    assert read_section("beta", page) == "## Beta\n\nold beta"
    assert read_section("alpha", page) == body


def test_missing_section_is_added_at_the_end_once(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE)
    replace_section("gamma", "## Gamma\n\nnew", page)
    replace_section("gamma", "## Gamma\n\nnewer", page)
    text = page.read_text()
    assert text.startswith(PAGE)
    assert text.count("<!-- bench:gamma -->") == 1 and text.count("<!-- /bench:gamma -->") == 1
    assert text.rstrip().endswith("<!-- /bench:gamma -->")
    assert read_section("gamma", page) == "## Gamma\n\nnewer"


def test_new_page(tmp_path):
    page = tmp_path / "docs" / "benchmarks.md"
    assert read_section("x", page) is None
    replace_section("x", "## X", page)
    assert page.read_text() == "<!-- bench:x -->\n## X\n<!-- /bench:x -->\n"
    assert not [p for p in page.parent.iterdir() if p.name != "benchmarks.md"]  # no temporary file left


def test_broken_markers_are_refused(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE + "<!-- bench:alpha -->\n")
    with pytest.raises(ValueError, match="alpha"):
        replace_section("alpha", "x", page)
    assert page.read_text() == PAGE + "<!-- bench:alpha -->\n"
    with pytest.raises(ValueError):
        replace_section("no spaces", "x", page)


def test_latest_row_per_case():
    header = "| case | matcher | err |\n|---|---|---|"
    section = f"## Poses\n\n{header}\n| lund4 | sift | 0.1 |\n| dtu3 | sift | 0.6 |\n| dtu3 | auto | 0.9 |\n\nnotes"
    old = table_rows(section, header)
    assert old == ["| lund4 | sift | 0.1 |", "| dtu3 | sift | 0.6 |", "| dtu3 | auto | 0.9 |"]
    rows = merge_rows(old, ["| dtu3 | auto | 0.8 |", "| fox4 | auto | 0.5 |"], key=(0, 1))
    assert rows == ["| lund4 | sift | 0.1 |", "| dtu3 | sift | 0.6 |", "| dtu3 | auto | 0.8 |", "| fox4 | auto | 0.5 |"]
    assert table_rows(section, "| other | header |\n|---|---|") == []
    assert table_rows(None, header) == []


def test_table_under_a_heading():
    header = "| run | x |\n|---|---|"
    section = f"### One\n\n{header}\n| a | 1 |\n\n### Two\n\n{header}\n| b | 2 |\n\n### Three\n\ntext"
    assert table_rows(section, header, "### Two") == ["| b | 2 |"]
    assert table_rows(section, header, "### Three") == []
    assert cells(r"| median \|Δz\|/z | 2 |") == [r"median \|Δz\|/z", "2"]
