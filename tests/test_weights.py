"""`recon weights list|check`: what is on disk is listed with its size, a missing file or one that
does not load makes `check` fail in one line, and nothing is downloaded."""

from __future__ import annotations

import importlib.util

import pytest

from recon import weights
from recon.cli import main


def test_list_names_every_packaged_part_and_whether_it_is_here(capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for p in weights.PACKAGED:
        line = next(line for line in out.splitlines() if line.strip().startswith(f"- {p.part}:"))
        installed = importlib.util.find_spec(p.package) is not None
        assert ("not installed" in line) != installed, line
        assert p.used_by in line
    assert "Models in the local Hugging Face cache" in out


def _fake(monkeypatch, tmp_path, files, load):
    (tmp_path / "fakepkg").mkdir()
    (tmp_path / "fakepkg" / "__init__.py").write_text("")
    (tmp_path / "fakepkg" / "w.onnx").write_bytes(b"x" * 2000)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(weights, "PACKAGED", [weights.Packaged("fake part", "fakepkg", files, "a test", load)])


def test_check_loads_what_is_there(monkeypatch, tmp_path, capsys):
    loaded = []
    _fake(monkeypatch, tmp_path, ("w.onnx",), lambda: loaded.append(1))
    assert main(["weights", "check"]) == 0
    assert loaded == [1] and "fake part: 2.0 kB" in capsys.readouterr().out


@pytest.mark.parametrize("files,load,says", [
    (("w.onnx", "gone.pt"), lambda: None, "MISSING gone.pt"),
    (("w.onnx",), lambda: 1 / 0, "FAILS TO LOAD: division by zero"),
])
def test_check_fails_in_one_line_when_a_part_is_missing_or_broken(monkeypatch, tmp_path, capsys, files, load, says):
    _fake(monkeypatch, tmp_path, files, load)
    assert main(["weights", "check"]) == 2
    captured = capsys.readouterr()
    assert says in captured.out
    assert captured.err.strip().count("\n") == 0 and "recon weights check" in captured.err
