"""Caches know the code: a stage's key changes when the source of its module, or of anything it
imports at any depth (function-level imports too), changes, and not otherwise."""

from __future__ import annotations

import importlib
import sys

from recon.code_version import code_digest, imported_modules


def _package(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "stage.py").write_text("from fakepkg import helper\n\ndef run():\n    from fakepkg.deep import f\n    return f()\n")
    (pkg / "helper.py").write_text("X = 1\n")
    (pkg / "deep.py").write_text("from .leaf import g\n\ndef f():\n    return g()\n")
    (pkg / "leaf.py").write_text("def g():\n    return 1\n")
    (pkg / "unrelated.py").write_text("Y = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return pkg


def test_the_digest_follows_every_module_imported_at_any_depth(tmp_path, monkeypatch):
    pkg = _package(tmp_path, monkeypatch)
    assert imported_modules("fakepkg.stage", "fakepkg") == {"fakepkg.helper", "fakepkg.deep"}
    assert imported_modules("fakepkg.deep", "fakepkg") == {"fakepkg.leaf"}, "relative imports resolve"
    before = code_digest("fakepkg.stage", "fakepkg")
    (pkg / "unrelated.py").write_text("Y = 3\n")
    code_digest.cache_clear()
    assert code_digest("fakepkg.stage", "fakepkg") == before
    (pkg / "leaf.py").write_text("def g():\n    return 2\n")  # two imports deep, inside a function
    code_digest.cache_clear()
    assert code_digest("fakepkg.stage", "fakepkg") != before
    sys.modules.pop("fakepkg", None)


def test_a_stage_key_changes_with_its_code(monkeypatch):
    from recon import pipeline

    stage = next(s for s in pipeline.GRAPH if s.name == "init")
    cfg = pipeline.RunConfig()
    key = pipeline.stage_key(stage, cfg, "cpu", ["abc"])
    monkeypatch.setattr(pipeline, "code_digest", lambda module: "changed")
    assert pipeline.stage_key(stage, cfg, "cpu", ["abc"]) != key
    passthrough = next(s for s in pipeline.GRAPH if s.name == "filters")
    cfg.filters.mode = "off"
    assert pipeline.stage_key(passthrough, cfg, "cpu", ["abc"]) == "abc", "stages that are off hand their key on"
