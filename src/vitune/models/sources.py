"""The `ModelSource`s: a local checkpoint (its family detected from config.json) or a served model.

`local_source(dir)` picks the backend from the family registry: a `llava` checkpoint is answered by
`models.llava.Generator` with vitune's conversation template (cache keys as before: the template's
name and rendered text), any other family by `models.hf.HFGenerator` with the processor's own chat
template (its file is in the fingerprint). `api_source(url, model)` is keyed by the served model's
NAME, not the URL: the same model behind another port or host reuses its cached answers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitune.data.templates import generation_prompt, saved_template
from vitune.models.base import AnswerFn, ModelSource, model_fingerprint
from vitune.models.families import Family, detect_family

DTYPES = ("float32", "bfloat16", "float16")


def generation_params(
    max_new_tokens: int, template: str = "vicuna_v1", dtype: str = "float32"
) -> dict[str, Any]:
    """What `Generator` answers with, as it goes into the cache key and results.json."""
    return {
        "template": template,
        # The rendered template itself: an edit of the system prompt must not reuse old answers.
        "template_text": generation_prompt(template, [("user", "{question}")], True),
        "max_new_tokens": max_new_tokens,
        "decoding": "greedy",
        "dtype": dtype,
    }


@dataclass
class LocalSource(ModelSource):
    """A checkpoint folder answered in this process (on `device`, in batches of `batch_size`)."""

    model_dir: Path
    family: Family
    max_new_tokens: int = 32
    batch_size: int = 8
    device: str = "cpu"
    dtype: str = "float32"  # the weights' dtype at inference (float32: answers as the tests pin them)
    _fingerprint: str = field(default="", repr=False)

    def identity(self) -> str:
        if not self._fingerprint:
            self._fingerprint = model_fingerprint(self.model_dir)
        return self._fingerprint

    def params(self) -> dict[str, Any]:
        if self.family.kind == "llava":
            return generation_params(self.max_new_tokens, saved_template(self.model_dir), self.dtype)
        # The chat template is a file of the checkpoint, so it is in the fingerprint already.
        return {
            "family": self.family.name,
            "prompt": "chat_template",
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy",
            "dtype": self.dtype,
        }

    def describe(self) -> str:
        return str(self.model_dir.resolve())

    def open(self) -> AnswerFn:
        import torch

        kw = dict(
            device=self.device,
            dtype=getattr(torch, self.dtype),
            batch_size=self.batch_size,
            max_new_tokens=self.max_new_tokens,
        )
        if self.family.kind == "llava":
            from vitune.models.llava import Generator

            return Generator.from_dir(self.model_dir, template=saved_template(self.model_dir), **kw)  # type: ignore[arg-type]
        from vitune.models.hf import HFGenerator

        return HFGenerator.from_dir(self.model_dir, self.family, **kw)  # type: ignore[arg-type]


@dataclass
class APISource(ModelSource):
    """A model behind an OpenAI-compatible server (`base_url` ends in /v1)."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    max_new_tokens: int = 32
    concurrency: int = 8
    max_retries: int = 6
    timeout: float = 120.0

    def identity(self) -> str:
        return f"api:{self.model}"

    def params(self) -> dict[str, Any]:
        # The server renders the prompt with its own template: the request is all the client decides.
        return {
            "backend": "openai-chat",
            "image": "data_url_first",
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy",
        }

    def describe(self) -> str:
        return f"{self.model} @ {self.base_url}"

    def open(self) -> AnswerFn:
        from vitune.models.api import APIGenerator

        return APIGenerator(
            self.base_url,
            self.model,
            api_key_env=self.api_key_env,
            max_new_tokens=self.max_new_tokens,
            concurrency=self.concurrency,
            max_retries=self.max_retries,
            timeout=self.timeout,
        )


def local_source(model_dir: str | os.PathLike, **kw: Any) -> LocalSource:
    """The source of a saved checkpoint; its family comes from config.json (a clear error if unknown)."""
    path = Path(model_dir)
    if kw.get("dtype", "float32") not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {kw['dtype']!r}")
    return LocalSource(path, detect_family(path), **kw)


def api_source(base_url: str, model: str, **kw: Any) -> APISource:
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"--api-url must be an http(s) URL ending in /v1, got {base_url!r}")
    if not model:
        raise ValueError("--api-model: the served model's name is needed (it is in every cache key)")
    return APISource(base_url.rstrip("/"), model, **kw)
