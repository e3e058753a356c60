"""Named presets: YAML files in configs/ (installed as the package recon.configs) that override
RunConfig's defaults (nested keys). `auto` picks fast on a CPU and quality on a CUDA GPU."""

from __future__ import annotations

import dataclasses
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from recon.errors import ReconError
from recon.pipeline import RunConfig


def _config_dir() -> Path:
    return Path(str(resources.files("recon.configs")))


def preset_names() -> list[str]:
    return sorted(p.stem for p in _config_dir().glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return path
    path = _config_dir() / f"{name}.yaml"
    if not path.exists():
        raise ReconError(f"unknown preset '{name}'; presets: auto, {', '.join(preset_names())} (or a .yaml path)")
    return path


def resolve_preset(name: str, device: str = "auto") -> tuple[str, str | None]:
    """(preset, why): `auto` → fast on a CPU, quality on a CUDA GPU, with the reason to tell the
    user; any other name is returned as it is, with None."""
    if name != "auto":
        return name, None
    import torch

    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    chosen = "quality" if cuda else "fast"
    why = "a CUDA GPU" if cuda else ("--device cpu" if device == "cpu" else "no CUDA GPU")
    return chosen, f"preset auto → {chosen} ({why})"


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
    hints = typing.get_type_hints(type(obj))
    changes = {}
    for key, value in data.items():
        if key not in names:
            raise ReconError(f"unknown setting '{key}' (known: {', '.join(names)})", where)
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = apply_overrides(current, value, f"{where}:{key}")
        else:
            changes[key] = checked(value, hints[key], f"{where}:{key}")
    return dataclasses.replace(obj, **changes)


def checked(value: Any, hint: Any, where: str) -> Any:
    """`value` if it fits the type `hint` (an int is a fine float; bool is not an int), else a
    ReconError naming the setting, so a wrong preset fails before the run starts, not mid-run."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return checked(value, option, where)
            except ReconError:
                pass
        raise ReconError(f"expected {_describe(hint)}, got {value!r}", where)
    if origin is typing.Literal:
        if value in args:
            return value
        raise ReconError(f"expected one of {', '.join(map(repr, args))}, got {value!r}", where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ReconError(f"expected a list, got {value!r}", where)
        item = args[0] if args else Any
        return origin(checked(v, item, where) for v in value)
    if hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str or hint is Path:
        if isinstance(value, str):
            return hint(value)
    else:
        return value
    raise ReconError(f"expected {_describe(hint)}, got {value!r}", where)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path",
            type(None): "null"}.get(hint, str(hint))
