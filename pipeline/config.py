"""Typed configs: frozen dataclasses loaded from YAML with ``key=value`` overrides.

YAML holds plain values only. Loading goes through ``yaml.safe_load``, so tags that would
construct Python objects are refused. Unknown keys and values of the wrong type are errors
that name the offending key.

A file may start from another one and state only what differs: ``_base_: default.yaml``
(a path relative to the file) merges the file's values onto its base's, which may have a
base of its own. Mappings merge key by key; anything else, a list included, replaces.

Example::

    cfg = load_config(SpeechRecipeConfig, "conf/large.yaml", ["train.max_epochs=3"])
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline.errors import SeqrecError, shown
from pipeline.io_utils import atomic_write_text

T = TypeVar("T")


class ConfigError(SeqrecError, ValueError):
    """A config file or override is invalid (unknown key, wrong type, bad YAML)."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Checks ``value`` against the annotation ``tp`` and converts where it is lossless."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {shown(value)} matches none of {_type_name(tp)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {shown(value)} is not one of {list(args)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {shown(value)}")
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
            if args and len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(
                _coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
            ) if args else tuple(value)
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {shown(value)}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {shown(value)}")
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {shown(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {shown(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {shown(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {shown(value)}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {shown(value)}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Builds dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names, key=str)
    if unknown:
        prefix = f"{where}." if where else ""
        shown_keys = [prefix + str(k)[:80] for k in unknown[:10]] + (["..."] if len(unknown) > 10 else [])
        raise ConfigError(
            f"unknown config key(s) {', '.join(shown_keys)}; "
            f"valid keys of {cls.__name__}: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # a missing required key, or __post_init__ checks
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"{where or cls.__name__}: {text}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Returns a plain, YAML-safe dict of a dataclass config (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def config_hash(obj: Any) -> str:
    """A short stable hash of a config (dataclass or plain data), for stage markers."""
    data = to_dict(obj) if dataclasses.is_dataclass(obj) else obj
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def parse_override(text: str) -> tuple[list[str], Any]:
    """Splits ``a.b=value`` into (["a", "b"], value), parsing the value as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot parse value: {yaml_error_line(exc)}") from None
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Returns a copy of ``data`` with dotted ``key=value`` overrides applied."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a YAML mapping with ``safe_load``; object-constructing tags are refused."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid or unsafe YAML: {yaml_error_line(exc)}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """A one-line description of a YAML error, with its line and column when known."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(problem)


#: The top-level key naming the file a config file starts from.
BASE_KEY = "_base_"


def _resolve_bases(path: Path, seen: list[Path]) -> tuple[dict[str, Any], list[tuple[Path, dict[str, Any]]]]:
    """Reads a config file with its ``_base_`` chain resolved (see the module docstring).

    Returns:
        The merged values, and each file of the chain with its own values, the root base first.

    Raises:
        ConfigError: one line naming the file, for bad YAML, a base that is not a file name,
            a missing base, or a chain of bases that comes back to a file already in it.
    """
    data = read_yaml(path)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data, [(path, data)]
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: {BASE_KEY} must name a YAML file, got {shown(base)}")
    chain = [*seen, path.resolve()]
    base_path = path.parent / base
    try:
        found, key = base_path.is_file(), base_path.resolve()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        found, key = False, base_path
    if key in chain:
        loop = " -> ".join(p.name for p in [*chain, key])
        raise ConfigError(f"{path}: {BASE_KEY} {shown(base)} makes a cycle of bases ({loop})")
    if not found:
        raise ConfigError(f"{path}: {BASE_KEY} {shown(base)} not found (no file {shown(str(base_path), 200)})")
    merged, files = _resolve_bases(base_path, chain)
    return _deep_merge(merged, data), [*files, (path, data)]


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` on top of ``base``; nested mappings merge key by key, so a YAML section that
    names one key of a nested config keeps the recipe's defaults for the others."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None
) -> T:
    """Loads ``cls`` from an optional YAML file plus ``key=value`` overrides.

    Args:
        cls: A (frozen) dataclass whose defaults fill what the file leaves out.
        path: YAML file with values only, and optionally a ``_base_`` file it starts from;
            ``None`` uses the defaults.
        overrides: Dotted ``key=value`` strings, e.g. ``train.lr=1e-3``.

    Raises:
        ConfigError: naming the file and key for unknown keys, wrong types or bad YAML; a
            bad value that comes from a base names the base.
    """
    from_file, files = _resolve_bases(Path(path), []) if path is not None else ({}, [])
    data = apply_overrides(from_file, list(overrides or []))
    try:
        defaults = to_dict(cls())  # type: ignore[call-arg]
    except TypeError:  # a dataclass with required fields has no defaults to merge onto
        defaults = {}
    try:
        return from_dict(cls, _deep_merge(defaults, data))
    except ConfigError as exc:
        where = f"{path}: " if path is not None else ""
        if overrides and path is not None and _valid(cls, _deep_merge(defaults, from_file)):
            where = f"{path} with overrides {' '.join(overrides)}: "  # the file alone is fine
        elif len(files) > 1:  # name the base whose values already fail the same way
            merged = defaults
            for file, values in files[:-1]:
                merged = _deep_merge(merged, values)
                if _error(cls, merged) == str(exc):
                    where = f"{path} (from its base {file}): "
                    break
        raise ConfigError(f"{where}{exc}") from None


def _error(cls: type, data: dict[str, Any]) -> str | None:
    """The message of the ConfigError that building ``cls`` from ``data`` raises; None if none."""
    try:
        from_dict(cls, data)
    except ConfigError as exc:
        return str(exc)
    return None


def _valid(cls: type, data: dict[str, Any]) -> bool:
    return _error(cls, data) is None


def save_config(cfg: Any, path: str | Path) -> None:
    """Writes a resolved config as YAML (atomically)."""
    atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))
