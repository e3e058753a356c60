"""Named presets: YAML files in configs/ that override RunConfig's defaults (nested keys)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from recon.errors import ReconError
from recon.pipeline import RunConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return path
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.exists():
        raise ReconError(f"unknown preset '{name}'; presets: {', '.join(preset_names())} (or a .yaml path)")
    return path


def load_preset(name: str) -> RunConfig:
    """RunConfig with the preset's values applied over the defaults."""
    path = preset_path(name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ReconError(f"cannot read preset ({e})", path) from e
    return apply_overrides(RunConfig(), data, str(path))


def apply_overrides(obj: Any, data: dict, where: str) -> Any:
    """A copy of dataclass `obj` with `data`'s (nested) values; unknown keys are errors, not ignored."""
    if not isinstance(data, dict):
        raise ReconError(f"expected a mapping, got {type(data).__name__}", where)
    names = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in data.items():
        if key not in names:
            raise ReconError(f"unknown setting '{key}' (known: {', '.join(names)})", where)
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = apply_overrides(current, value, f"{where}:{key}")
        else:
            changes[key] = value
    return dataclasses.replace(obj, **changes)
