"""YAML configuration files (recipes): `${name}` variables, validation errors naming file and field.

Shared by the curation recipes and the training recipes so both read and report the same way:
string values may use `${name}`; defaults come from the file's `variables:` block and the caller
(the CLI's `--var NAME=VALUE`) overrides them; an unset variable or a schema violation raises a
`ConfigError` whose message names the file and every offending field.

Paths: a caller's variable value is relative to the caller's working directory (as every shell path
is), while a path written literally in the file is relative to the file's folder. So a path field
that starts with a caller-supplied `${name}` gets that value made absolute against the working
directory before substitution (`anchor_caller_paths`); model fields only when that local path exists,
since `org/name` there is a Hugging Face id.
"""

from __future__ import annotations

import os
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


# Fields holding data paths in curation and training recipes (a list of paths counts too).
PATH_KEYS = frozenset({"path", "image_root", "world", "vocabulary_files"})
# Fields holding a local folder or a Hugging Face id: anchored only when the local folder exists.
MODEL_KEYS = frozenset({"vision_tower", "llm", "checkpoint"})
_LEADING_VAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _anchor(value: Any, key: str, caller: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [_anchor(v, key, caller) for v in value]
    if not isinstance(value, str) or not (m := _LEADING_VAR.match(value)):
        return value
    given = caller.get(m.group(1))
    if not given or os.path.isabs(given) or "://" in given:
        return value
    if key in MODEL_KEYS and not os.path.exists(given + value[m.end() :]):
        return value
    return os.path.abspath(given) + value[m.end() :]


def anchor_caller_paths(obj: Any, caller: dict[str, str]) -> Any:
    """`obj` with every path field that starts with a caller's `${name}` anchored to the working
    directory (see the module docstring); everything else unchanged."""
    if isinstance(obj, dict):
        return {
            k: (_anchor(v, k, caller) if k in PATH_KEYS | MODEL_KEYS else anchor_caller_paths(v, caller))
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [anchor_caller_paths(v, caller) for v in obj]
    return obj


def referenced_variables(obj: Any) -> set[str]:
    """Every `${name}` used anywhere in `obj` (outside the `variables:` block)."""
    if isinstance(obj, str):
        return set(_VAR.findall(obj))
    if isinstance(obj, dict):
        return set().union(*(referenced_variables(v) for k, v in obj.items() if k != "variables"))
    if isinstance(obj, list):
        return set().union(*(referenced_variables(v) for v in obj))
    return set()


def check_known_variables(
    path: str | Path, given: dict[str, str], error: type[ValueError] = ConfigError
) -> None:
    """Refuse `--var` names the file neither declares nor uses (a typo would otherwise be ignored)."""
    data = read_yaml(path, error)
    if not isinstance(data, dict):
        return  # the recipe's own validation reports it
    declared = data.get("variables") if isinstance(data.get("variables"), dict) else {}
    known = set(map(str, declared)) | referenced_variables(data)
    unknown = sorted(set(given) - known)
    if unknown:
        raise error(
            f"{path}: unknown variable(s) {', '.join(unknown)} (--var); "
            f"this recipe's: {', '.join(sorted(known)) or 'none'}"
        )


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
    caller = {k: str(v) for k, v in (variables or {}).items()}
    merged.update(caller)
    missing: list[str] = []
    filled = substitute(anchor_caller_paths(data, caller), merged, "", missing)
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
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(f"{path}: invalid YAML: {e}") from None


def resolve_path(value: str, base_dir: Path | None) -> str:
    """A relative path is relative to the config file's folder."""
    if base_dir is None or Path(value).is_absolute():
        return value
    return str(base_dir / value)
