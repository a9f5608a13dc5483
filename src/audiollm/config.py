"""Typed configs: dataclasses built from mappings by one helper; YAML files with dotted overrides.

Every config in the project — an experiment, a model of either type, a component, a task's
options — is a dataclass with commented fields and validation in ``__post_init__``, and is
built from a mapping by :func:`from_dict`:

* a field whose default is a dataclass is built from its sub-mapping (recursively);
* ``choice(registry, by=NAME)`` declares a field whose config class the *value* of sibling
  field NAME selects from a registry (``audio_encoder: whisper`` → ``audio_encoder_config``
  is a `WhisperEncoderConfig`);
* ``typed(registry, default)`` declares a section whose own ``type`` key selects its class
  (``model: {type: mulan, ...}``, lerobot's ``register_subclass`` pattern);
* ``mapping_of(lookup)`` declares a ``{name: section}`` field whose classes ``lookup(name)``
  gives (``data.tasks: {text_to_midi: {cond_dropout: 0.1}}``);
* scalars are checked against their default's type, so ``train.lr=abc`` fails naming the key;
* an unknown key fails naming its section and listing the valid keys.

:func:`to_dict` is the inverse (``type`` keys included), :func:`load_yaml` reads a file and
applies ``key.sub=value`` overrides.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml

from audiollm.errors import ConfigError


def choice(registry: Mapping[str, Any], *, by: str) -> Any:
    """A sub-config field whose class is ``registry[<value of field by>].config_cls``."""
    return field(default=None, metadata={"choice": (registry, by)})


def typed(registry: Mapping[str, Any], default: str) -> Any:
    """A section whose ``type`` key picks its class: ``registry[type].config_cls``."""
    return field(default_factory=lambda: registry[default].config_cls(), metadata={"typed": (registry, default)})


def mapping_of(lookup: Callable[[str], type]) -> Any:
    """A ``{name: section}`` field; ``lookup(name)`` gives each section's class (or raises)."""
    return field(default_factory=dict, metadata={"mapping_of": lookup})


def from_dict(cls: type, raw: Mapping[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from ``raw``; ``where`` (a dotted key) names it in errors."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {raw!r}")
    raw = dict(raw)
    prepare = getattr(cls, "prepare_config", None)
    if callable(prepare):
        raw = prepare(raw)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        inside = f"under '{where}'" if where else "at the top level"
        raise ConfigError(f"unknown config key '{_join(where, unknown[0])}'; valid keys {inside}: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = _join(where, name)
        if "choice" in f.metadata:
            registry, by = f.metadata["choice"]
            selected = raw.get(by, fields[by].default)
            if selected not in registry:
                raise ConfigError(f"{_join(where, by)}={selected!r}; allowed: {', '.join(sorted(registry))}")
            value = raw.get(name)
            config_cls = registry[selected].config_cls
            if not isinstance(value, config_cls):
                kwargs[name] = from_dict(config_cls, value, key)
            else:
                kwargs[name] = value
        elif name not in raw:
            continue
        elif "typed" in f.metadata:
            kwargs[name] = build_typed(f.metadata["typed"], raw[name], key)
        elif "mapping_of" in f.metadata:
            value = raw[name] or {}
            if not isinstance(value, Mapping):
                raise ConfigError(f"{key} must be a mapping of names to sections, got {value!r}")
            lookup = f.metadata["mapping_of"]
            kwargs[name] = {k: from_dict(lookup(k), v, _join(key, k)) for k, v in value.items()}
        elif _dataclass_default(f) is not None and not dataclasses.is_dataclass(raw[name]):
            kwargs[name] = from_dict(_dataclass_default(f), raw[name], key)
        else:
            kwargs[name] = _coerce(raw[name], f, key)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where or 'config'}: {e}") from None


def resolve_choices(obj: Any) -> None:
    """For a config built in Python (``AudioLLMConfig(lm="hf_causal_lm")``): build each
    ``choice`` field left as None or a mapping, as `from_dict` would; refuse a sub-config of
    the wrong class."""
    for f in dataclasses.fields(obj):
        if "choice" not in f.metadata:
            continue
        registry, by = f.metadata["choice"]
        selected = getattr(obj, by)
        if selected not in registry:
            raise ConfigError(f"{by}={selected!r}; allowed: {', '.join(sorted(registry))}")
        config_cls = registry[selected].config_cls
        value = getattr(obj, f.name)
        if value is None or isinstance(value, Mapping):
            setattr(obj, f.name, from_dict(config_cls, value, f.name))
        elif not isinstance(value, config_cls):
            raise ConfigError(f"{f.name} must be a {config_cls.__name__} or a mapping for {by} {selected!r}, "
                              f"got {type(value).__name__}")


def build_typed(spec: tuple[Mapping[str, Any], str], raw: Any, where: str) -> Any:
    """A ``typed`` section: ``raw['type']`` (default ``spec[1]``) picks the class."""
    registry, default = spec
    if dataclasses.is_dataclass(raw):
        return raw
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {raw!r}")
    raw = dict(raw)
    name = raw.pop("type", default)
    if name not in registry:
        raise ConfigError(f"{_join(where, 'type')}={name!r}; allowed: {', '.join(sorted(registry))}")
    return from_dict(registry[name].config_cls, raw, where)


def to_dict(obj: Any) -> Any:
    """A config as plain data (what YAML and config.json hold): the inverse of `from_dict`."""
    if not dataclasses.is_dataclass(obj):
        if isinstance(obj, dict):
            return {k: to_dict(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [to_dict(v) for v in obj]
        return obj
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        if "typed" in f.metadata and dataclasses.is_dataclass(value):
            registry, _ = f.metadata["typed"]
            out[f.name] = {"type": type_name(registry, value), **to_dict(value)}
        else:
            out[f.name] = to_dict(value)
    return out


def type_name(registry: Mapping[str, Any], config: Any) -> str:
    """The registry name whose config class ``config`` is."""
    for name, entry in registry.items():
        if type(config) is entry.config_cls:
            return name
    raise ConfigError(f"{type(config).__name__} is not registered")


def load_yaml(path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """A YAML file (or nothing, when ``path`` is None) as a mapping, with ``key.sub=value``
    overrides applied (values parsed as YAML scalars: ``3e-4``, ``true``, ``[1, 2]``)."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: no such config file")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        _set_dotted(raw, key.strip(), _parse_value(value))
    return raw


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _dataclass_default(f: dataclasses.Field) -> type | None:
    factory = f.default_factory if f.default_factory is not dataclasses.MISSING else None
    return factory if factory is not None and dataclasses.is_dataclass(factory) else None


def _coerce(value: Any, f: dataclasses.Field, key: str) -> Any:
    """Light type check so that `train.lr=abc` fails here, naming the key."""
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, str):  # PyYAML reads `3e-4` (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if value is None:
            value = ""
        if isinstance(value, (list, tuple)) and "list[str]" in str(f.type):  # a field that takes several paths
            if not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{key} must be a path or a list of paths, got {value!r}")
            return list(value)
        if not isinstance(value, str):
            value = str(value)
    elif f.default_factory is dict and not isinstance(value, dict):
        raise ConfigError(f"{key} must be a mapping, got {value!r}")
    elif f.default_factory is list and not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key} must be a list, got {value!r}")
    return value


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: '{part}' is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def _parse_value(text: str) -> Any:
    """YAML scalar parsing, so `3e-4`, `true`, `[1, 2]` and `{a: 1}` work on the command line."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
