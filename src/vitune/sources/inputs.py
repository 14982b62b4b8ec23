"""`SourcesInput`: the one way from "where are the annotations" to merged records.

`vitune build`, `vitune synth`, the quickstart and a training recipe's `dense_vision` stage
(`records:`) all take the same three choices, exactly one of them:

- `world`: an embedded world folder (`vitune world`); `world_formats: all` (the default) reads every
  format the world writes, as `vitune build --world` always did; `core` only COCO + Visual Genome +
  VQAv2, what the quickstart's and the tiny recipes' published numbers were measured on;
- `sources`: a `SourceSpec` YAML file (`sources/spec.py`);
- `source`: `KIND=PATH` pairs with an `image_root`.

`load()` returns a `LoadResult` (records, per-file counts, in = kept + rejected, the annotation files
read, the image root), so every caller can write the same manifest and reconcile the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, PlainSerializer, model_validator

from vitune.data.ledger import Ledger
from vitune.sources.spec import (
    LoadResult,
    SpecError,
    load_sources,
    load_spec_file,
    load_world_sources,
    spec_from_pairs,
)

# Dumped as text in both modes: a recipe's stage (which holds one) is written to JSON as it is.
PathStr = Annotated[Path, PlainSerializer(str, return_type=str)]


class SourcesInput(BaseModel):
    """Exactly one of `world`, `sources`, `source` (the last with `image_root`), and a split."""

    model_config = ConfigDict(extra="forbid")

    world: PathStr | None = None
    sources: PathStr | None = None
    source: list[str] = []
    image_root: PathStr | None = None
    split: str | None = None
    world_formats: Literal["all", "core"] = "all"

    @model_validator(mode="after")
    def _one(self) -> SourcesInput:
        given = [n for n in ("world", "sources", "source") if getattr(self, n)]
        if len(given) != 1:
            got = ", ".join(f"--{n}" for n in given) or "none"
            raise SpecError(f"give exactly one of --world, --sources, --source (got {got})")
        if self.source and self.image_root is None:
            raise SpecError("--source needs --image-root (the folder image paths are relative to)")
        return self

    @property
    def kind(self) -> str:
        return "world" if self.world else "sources" if self.sources else "source"

    @property
    def label(self) -> str:
        """What was read, for manifests and messages."""
        return str(self.world or self.sources or " ".join(self.source))

    def load(self, ledger: Ledger | None = None) -> LoadResult:
        """Read and merge the records (rejections into `ledger`); errors are `SpecError`/`OSError`."""
        ledger = ledger if ledger is not None else Ledger()
        if self.world is not None:
            split = self.split or "train"
            return load_world_sources(self.world, split, ledger, extras=self.world_formats == "all")
        if self.sources is not None:
            return load_sources(load_spec_file(self.sources, split=self.split), ledger)
        assert self.image_root is not None
        spec = spec_from_pairs(self.source, image_root=self.image_root, split=self.split or "")
        return load_sources(spec, ledger)


def sources_input(**kw: object) -> SourcesInput:
    """A `SourcesInput` from CLI values (None and empty mean "not given"); `SpecError` explains a misuse."""
    from pydantic import ValidationError

    try:
        return SourcesInput.model_validate({k: v for k, v in kw.items() if v not in (None, [], ())})
    except ValidationError as e:
        errs = e.errors()
        msg = "; ".join(
            (f"{'.'.join(map(str, err['loc']))}: " if err["loc"] else "")
            + str(err.get("ctx", {}).get("error", err["msg"]))
            for err in errs
        )
        raise SpecError(msg) from None
