"""Generator specs (what to ask the LLM for each data type) and their registry.

A `GeneratorSpec` is the prompt of one data type plus what its reply should look like: SVIT's
conversation (3 x 5 QAs from topics), complex reasoning (15 QAs), referring QA (10 QAs with
``<st>obj<ed> [box]``), detail description (with a pool of user instructions for export), and a
COCO-IFT-style multi-round dialog. The built-in prompts live as YAML in ``prompt_files/`` (our own
wording of SVIT's intent). Users add a generator or override a built-in one with
`load_generator_file(path)` / `register_generator(spec)`.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from vitune.data.records import ImageRecord
from vitune.synth.context import ContextConfig, build_context
from vitune.utils.config import read_yaml
from vitune.utils.hashing import derive_seed

Format = Literal["qa", "conversations", "referring", "description", "dialog"]
FORMATS: tuple[str, ...] = ("qa", "conversations", "referring", "description", "dialog")
PROMPT_DIR = Path(__file__).parent / "prompt_files"


@dataclass(frozen=True)
class GeneratorSpec:
    name: str  # also the data type / task name of the exported instances
    format: Format
    system: str
    user: str = "{context}"
    n_items: int = 1  # QAs per reply (per conversation for "conversations")
    n_groups: int = 1  # conversations per reply ("conversations" only)
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 2048
    instructions: tuple[str, ...] = ()  # user instructions for exported descriptions
    context: ContextConfig | None = None  # per-generator context settings (None: the run's)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"generator {self.name!r}: unknown format {self.format!r} (one of {FORMATS})")
        if "{context}" not in self.system and "{context}" not in self.user:
            raise ValueError(f"generator {self.name!r}: neither system nor user prompt contains {{context}}")
        if self.format == "description" and not self.instructions:
            raise ValueError(f"generator {self.name!r}: a description generator needs an instruction pool")

    def sampling(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}


_PLACEHOLDER = re.compile(r"\{(context|n_items|n_groups)\}")


def _fill(template: str, values: dict[str, str]) -> str:
    # Only our own placeholders are substituted: captions and user prompts may contain braces.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def build_messages(
    spec: GeneratorSpec, rec: ImageRecord, ctx: ContextConfig | None = None
) -> list[dict[str, str]]:
    """The chat messages for one record (deterministic: same record and spec, same messages)."""
    context = build_context(rec, spec.context or ctx or ContextConfig())
    values = {"context": context, "n_items": str(spec.n_items), "n_groups": str(spec.n_groups)}
    msgs = []
    system = _fill(spec.system, values).strip()
    if system:
        msgs.append({"role": "system", "content": system})
    msgs.append({"role": "user", "content": _fill(spec.user, values).strip()})
    return msgs


def pick_instruction(pool: tuple[str, ...] | list[str], seed: int, *labels: object) -> str:
    """One phrasing from `pool`, reproducible from the seed and labels (e.g. image id)."""
    return random.Random(derive_seed(seed, *labels)).choice(list(pool))


# --- files and registry ----------------------------------------------------------------------


_SPEC_KEYS = {
    "name",
    "format",
    "system",
    "user",
    "n_items",
    "n_groups",
    "temperature",
    "top_p",
    "max_tokens",
    "instructions",
    "context",
}


def spec_from_dict(d: dict[str, Any], *, base: GeneratorSpec | None = None, where: str = "") -> GeneratorSpec:
    """A spec from a mapping; with `base`, missing keys are taken from it (an override)."""
    unknown = set(d) - _SPEC_KEYS - {"extra"}
    if unknown:
        raise ValueError(f"{where}: unknown generator keys {sorted(unknown)}")
    kw = dict(d)
    if "instructions" in kw:
        kw["instructions"] = tuple(str(s) for s in kw["instructions"])
    if isinstance(kw.get("context"), dict):
        kw["context"] = ContextConfig(**kw["context"])
    if base is not None:
        return replace(base, **kw)
    if "name" not in kw or "format" not in kw or "system" not in kw:
        raise ValueError(f"{where}: a new generator needs 'name', 'format' and 'system'")
    return GeneratorSpec(**kw)


def load_generator_file(path: str | os.PathLike, *, register: bool = True) -> GeneratorSpec:
    """Read a YAML/JSON generator file; a name already registered is overridden key by key."""
    path = Path(path)
    d = read_yaml(path)  # JSON is valid YAML; unreadable or invalid files raise naming the file
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a mapping of generator fields")
    d.setdefault("name", path.stem)
    _ensure_builtins()  # so overriding a built-in merges with it
    base = _REGISTRY.get(d["name"])
    spec = spec_from_dict(d, base=base, where=str(path))
    if register:
        register_generator(spec, override=True)
    return spec


def load_prompts_file(path: str | os.PathLike, *, register: bool = False) -> dict[str, GeneratorSpec]:
    """Override generators' prompt keys (or add generators) from one YAML file, `vitune synth --prompts`:

        conversation: {system: "...", temperature: 0.5}     # a built-in, overridden key by key
        my_qa: {format: qa, system: "... {context} ...", n_items: 5}   # a new generator

    Every entry is validated as a generator file is; errors name the file and the generator.
    Returns `{name: spec}` (pass the specs to `synth()`); `register=True` also puts them in the
    process-wide registry.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: cannot read the prompts file ({e})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a mapping of generator name -> prompt keys")
    _ensure_builtins()
    specs = []
    for name, keys in data.items():
        where = f"{path}: generator {name!r}"
        if not isinstance(keys, dict):
            raise ValueError(f"{where}: expected a mapping of prompt keys")
        if keys.get("name", name) != name:
            raise ValueError(f"{where}: 'name' differs from the entry's key")
        try:
            specs.append(spec_from_dict({**keys, "name": name}, base=_REGISTRY.get(name), where=where))
        except (TypeError, ValueError) as e:  # the spec's own checks do not know the file
            raise ValueError(str(e) if str(e).startswith(str(path)) else f"{where}: {e}") from None
    if register:
        for spec in specs:  # registered only once every entry is valid
            register_generator(spec, override=True)
    return {spec.name: spec for spec in specs}


_REGISTRY: dict[str, GeneratorSpec] = {}


def register_generator(spec: GeneratorSpec, *, override: bool = False) -> GeneratorSpec:
    if spec.name in _REGISTRY and not override:
        raise ValueError(f"generator {spec.name!r} already registered (pass override=True)")
    _REGISTRY[spec.name] = spec
    return spec


def get_generator(name: str | GeneratorSpec) -> GeneratorSpec:
    if isinstance(name, GeneratorSpec):
        return name
    _ensure_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown generator {name!r}; known: {sorted(_REGISTRY)}") from None


def generator_names() -> list[str]:
    _ensure_builtins()
    return list(_REGISTRY)


BUILTIN = ("conversation", "complex_reasoning", "referring_qa", "detail_description", "dialog")
SVIT_TYPES = BUILTIN[:4]
_loaded = False


def _ensure_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in BUILTIN:
        with open(PROMPT_DIR / f"{name}.yaml", encoding="utf-8") as fh:
            d = yaml.safe_load(fh)
        if name not in _REGISTRY:  # a user override registered before first use wins
            _REGISTRY[name] = spec_from_dict(d, where=name)


def bbox_instructions() -> list[str]:
    """The pool of "provide bounding boxes" instructions appended to exported referring QA."""
    with open(PROMPT_DIR / "bbox_instructions.yaml", encoding="utf-8") as fh:
        return list(yaml.safe_load(fh)["instructions"])
