"""Typed run configuration: dataclasses filled from YAML recipes and `key=value` overrides.

A recipe (`configs/*.yaml`) fills the dataclass tree of one workflow; overrides on the command line
(`grpo.beta=0.1`, nested with dots) come last. Values are type-checked, unknown keys are rejected with
a "did you mean" hint and the list of valid keys, and every error is reported together before any model
loads. Defaults live once, in the dataclasses below. Each field's `help` becomes `unirl ... --show-config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from unirl_cli.errors import UnirlError


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a help text (shown by `--show-config`)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


def section(cls: type, help: str) -> Any:
    """A nested dataclass field."""
    return field(default_factory=cls, metadata={"help": help})


# --------------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------------


@dataclass
class SamplingConfig:
    """Image sampling settings; `None` means the model family's published default."""

    guidance_scale: Optional[float] = option(None, "classifier-free guidance scale (Janus: 5, Show-o 512: 5); 1.0 (Janus) or 0.0 (Show-o) disables CFG")
    temperature: Optional[float] = option(None, "softmax temperature of image-token sampling (Janus) / Gumbel re-masking temperature (Show-o)")
    top_k: int = option(0, "keep only the k most likely image tokens (0 = off)")
    top_p: float = option(1.0, "nucleus sampling mass (1.0 = off)")
    num_steps: Optional[int] = option(None, "MaskGIT steps for masked generators (Show-o 512: 50); ignored by autoregressive models")
    greedy: bool = option(False, "argmax instead of sampling (debugging and parity tests)")
    masked_transition: Literal["committed", "remasked"] = option("committed", "masked generators: a step's log-prob scores the tokens it committed, or also why each re-masked slot stayed masked (Mask-GRPO's candidate 1); autoregressive models accept only committed")


# --------------------------------------------------------------------------------------------------
# Machinery: dict -> dataclass with type checks, overrides, saving
# --------------------------------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(v) for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is list:
        (inner,) = typing.get_args(annotation) or (Any,)
        return f"list[{_type_name(inner)}]"
    return getattr(annotation, "__name__", str(annotation))


def _coerce(value: Any, annotation: Any, key: str, errors: list[str]) -> Any:
    """Return `value` checked against `annotation`; append a message to `errors` when it does not fit."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for candidate in (o for o in options if o is not type(None)):
            trial: list[str] = []
            coerced = _coerce(value, candidate, key, trial)
            if not trial:
                return coerced
        errors.append(f"{key}: expected {_type_name(annotation)}, got {value!r}")
        return value
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            errors.append(f"{key}: must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if origin is list:
        (inner,) = typing.get_args(annotation) or (Any,)
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [_coerce(v, inner, f"{key}[{i}]", errors) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            errors.append(f"{key}: expected a mapping of {annotation.__name__} fields, got {value!r}")
            return annotation()
        return _from_dict(annotation, value, f"{key}.", errors)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        errors.append(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        errors.append(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        errors.append(f"{key}: expected a number, got {value!r}")
        return value
    if annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        errors.append(f"{key}: expected a string, got {value!r}")
        return value
    return value


def _from_dict(cls: type, data: dict, prefix: str, errors: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            errors.append(f"unknown key '{prefix}{key}'{hint}; valid keys here: {', '.join(names)}")
            continue
        found = len(errors)
        coerced = _coerce(value, hints[key], f"{prefix}{key}", errors)
        if len(errors) == found:  # a mistyped value stays out, so the checks below see only typed values
            kwargs[key] = coerced
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # __post_init__ validation of a dataclass
        errors.append(f"{prefix or cls.__name__}: {err}")
        return cls()


def parse_overrides(overrides: list[str]) -> dict:
    """Turn `["a.b=3", "c=true"]` into the nested dict `{"a": {"b": 3}, "c": True}` (values parsed as YAML)."""
    nested: dict = {}
    for item in overrides:
        if "=" not in item:
            raise UnirlError(f"override '{item}' is not key=value; write e.g. grpo.beta=0.1")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UnirlError(f"override '{item}' sets a field inside '{part}', which is not a section")
        node[parts[-1]] = value
    return nested


def merge_dicts(base: dict, update: dict) -> dict:
    """Recursively merge `update` into a copy of `base` (update wins)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_dicts(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, raising `UnirlError` with the file name on any problem."""
    path = Path(path)
    if not path.is_file():
        raise UnirlError(f"config file '{path}' does not exist; pass a recipe name (`unirl configs`) or a YAML file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UnirlError(f"config file '{path}' is not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict):
        raise UnirlError(f"config file '{path}' must hold a mapping of keys, not {type(data).__name__}")
    return data


def build_config(cls: type, data: dict) -> Any:
    """Build the dataclass `cls` from a nested dict; all problems are raised together as one `UnirlError`."""
    errors: list[str] = []
    config = _from_dict(cls, data, "", errors)
    if errors:
        raise UnirlError("invalid config: " + "; ".join(errors))
    return config


def load_config(cls: type, config_file: str | Path | None = None, overrides: list[str] | None = None,
                base: dict | None = None, kind: str = "train") -> Any:
    """Build `cls` from `base` (e.g. CLI options), then the YAML recipe, then `key=value` overrides.

    `config_file` is a path or the name of a shipped config of `kind` (resources.resolve_config).
    """
    from unirl_cli.resources import resolve_config

    data = dict(base or {})
    if config_file is not None:
        data = merge_dicts(data, read_yaml(resolve_config(config_file, kind)))
    data = merge_dicts(data, parse_overrides(list(overrides or [])))
    return build_config(cls, data)


def config_to_dict(config: Any) -> dict:
    """The plain-dict form of a config dataclass (for YAML/JSON)."""
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    """Write the fully resolved config as YAML next to a run's outputs (atomically)."""
    from unirl_cli.fileio import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def describe_config(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """Rows (key, type, default, help) for every leaf field of `cls`, for `--show-config`."""
    rows = []
    hints = typing.get_type_hints(cls)
    instance = cls()
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        if dataclasses.is_dataclass(annotation):
            rows.extend(describe_config(annotation, f"{prefix}{f.name}."))
            continue
        rows.append((f"{prefix}{f.name}", _type_name(annotation), repr(getattr(instance, f.name)),
                     f.metadata.get("help", "")))
    return rows
