"""YAML configuration files (recipes): `${name}` variables, validation errors naming file and field.

Shared by the curation recipes and the training recipes so both read and report the same way:
string values may use `${name}`; defaults come from the file's `variables:` block and the caller
(the CLI's `--var NAME=VALUE`) overrides them; an unset variable or a schema violation raises a
`ConfigError` whose message names the file and every offending field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the field."""


def substitute(obj: Any, variables: dict[str, str | None], where: str, missing: list[str]) -> Any:
    """`obj` with `${name}` replaced in every string; unknown names are appended to `missing`."""
    if isinstance(obj, str):

        def rep(m: re.Match) -> str:
            v = variables.get(m.group(1))
            if v is None:
                missing.append(f"{where}: ${{{m.group(1)}}}")
                return m.group(0)
            return str(v)

        return _VAR.sub(rep, obj)
    if isinstance(obj, dict):
        return {
            k: (v if k == "variables" else substitute(v, variables, f"{where}.{k}" if where else k, missing))
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [substitute(v, variables, f"{where}[{i}]", missing) for i, v in enumerate(obj)]
    return obj


def format_errors(source: str, err: ValidationError, what: str = "recipe") -> str:
    lines = [f"{source}: invalid {what} ({err.error_count()} error(s))"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def fill_variables(
    data: Any, source: str, variables: dict[str, str] | None, error: type[ValueError] = ConfigError
) -> dict[str, Any]:
    """The mapping with variables filled; `variables` holds the merged values actually used."""
    if not isinstance(data, dict):
        raise error(f"{source}: expected a mapping, got {type(data).__name__}")
    defaults = data.get("variables") or {}
    if not isinstance(defaults, dict):
        raise error(f"{source}: variables: must be a mapping")
    merged = {str(k): (None if v is None else str(v)) for k, v in defaults.items()}
    merged.update({k: str(v) for k, v in (variables or {}).items()})
    missing: list[str] = []
    filled = substitute(data, merged, "", missing)
    if missing:
        raise error(f"{source}: unset variable(s), pass them with --var NAME=VALUE: " + "; ".join(missing))
    filled["variables"] = merged
    return filled


def validate(
    model: type[M], data: Any, source: str, what: str = "recipe", error: type[ValueError] = ConfigError
) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise error(format_errors(source, e, what)) from None


def read_yaml(path: str | Path, error: type[ValueError] = ConfigError) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(f"{path}: invalid YAML: {e}") from None


def resolve_path(value: str, base_dir: Path | None) -> str:
    """A relative path is relative to the config file's folder."""
    if base_dir is None or Path(value).is_absolute():
        return value
    return str(base_dir / value)
