"""Typed configuration: a dataclass tree gives keys, types and defaults; YAML and ``--set`` override them.

Every ``robo`` command that takes a config goes through :func:`load_config`, so unknown keys and
wrong types are rejected the same way everywhere, with the full dotted key in the message.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from robo.files import write_text

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not match the schema."""


_DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps")


def check_device(device: str, key: str) -> None:
    """Refuse a torch device string torch would only reject once a run has begun."""
    if not _DEVICE.fullmatch(device):
        raise ValueError(f"{key} must be cpu, cuda, cuda:N or mps, got {device!r}")


def load_config(schema: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build ``schema`` from its defaults, then a YAML file, then ``key.sub=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml(path)
    for item in overrides or []:
        key, value = parse_override(item)
        _set_dotted(data, key, value)
    return from_dict(schema, data)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a config that says a key twice is refused instead."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config {path} is a folder; pass a YAML file, e.g. configs/raptor_quick.yaml")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader: no object tags
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a YAML config is UTF-8 text)") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)  # PyYAML's own text spans several lines
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ConfigError(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


_FLOAT_STRING = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_override(item: str) -> tuple[str, Any]:
    """``a.b=1e-3`` -> ("a.b", 0.001); the value is read as a YAML scalar or list."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set sac.lr=3e-4")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def from_dict(schema: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Instantiate the dataclass ``schema`` from ``data``; unknown keys and bad types raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        name = prefix + str(unknown[0])
        raise ConfigError(f"unknown config key {name!r} (known here: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(schema)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        field = fields[name]
        if (dataclasses.is_dataclass(hints[name]) and isinstance(value, dict)
                and field.default_factory is not dataclasses.MISSING):
            # A nested section keeps its factory's values (e.g. observation="teacher") for the keys
            # the file or --set leaves out, not the nested class's own defaults.
            value = {**to_dict(field.default_factory()), **value}
        kwargs[name] = _coerce(hints[name], value, prefix + name)
    try:
        obj = schema(**kwargs)
    except (TypeError, ValueError) as exc:
        where, message = prefix.rstrip(".") or "config", str(exc)
        # A section's own check may already name its full key ("diffusion.lr: ...").
        named = prefix and message.startswith(prefix)
        raise ConfigError(message if named else f"{where}: {message}") from None
    return obj


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"config key {key!r}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"config key {key!r}: {value!r} is not one of {choices}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {_describe(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"config key {key!r}: expected {len(args)} values, got {len(value)}")
            pairs = enumerate(zip(args, value, strict=True))
            return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in pairs)
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping, got {_describe(value)}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r}: expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if not (isinstance(value, float) and value.is_integer()):
                raise ConfigError(f"config key {key!r}: expected an integer, got {_describe(value)}")
            value = int(value)
        if key.rsplit(".", 1)[-1].endswith("seed") and value < 0:
            # numpy's generators refuse negative seeds, some only deep inside a run
            raise ConfigError(f"config key {key!r}: a seed must be >= 0, got {value}")
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT_STRING.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r}: expected a number, got {_describe(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r}: must be finite, got {value}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r}: expected a string, got {_describe(value)}")
        return value
    raise ConfigError(f"config key {key!r}: unsupported type {tp}")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def to_dict(config: Any) -> dict[str, Any]:
    """The resolved config as plain YAML-able data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def dump_yaml(config: Any, path: str | Path) -> None:
    """Write the resolved config atomically (temporary file + rename)."""
    write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: a config dict keyed by dotted names."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
