"""`SourceBlock`: one dataset's files and options inside a `SourceSpec`, and how to read them.

The Vision-Flan sources added after the first nine (A-OKVQA, OK-VQA, VizWiz, OCR-VQA, VSR, CLEVR)
each define one block next to their reader: the pydantic fields (paths and options, validated like
the rest of the spec, unknown keys refused), the `--source KIND=PATH` short kind that sets its main
file, and `read`, which calls the reader. `SourceSpec` lists the blocks as fields; `spec.py` only
loops over them (`BLOCKS` is derived from the fields), so adding a source touches its own module and
one `SourceSpec` field.
The embedded world reads its copies of these formats through the same blocks (`world/vf/`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from vitune.data.ledger import Ledger
from vitune.sources.stats import SourceResult


class SourceBlock(BaseModel):
    """Base of a registered source's spec block."""

    model_config = ConfigDict(extra="forbid")

    KIND: ClassVar[str]  # `--source KIND=PATH` sets the field named by MAIN
    MAIN: ClassVar[str]

    def files(self) -> list[Path]:
        """The annotation files this block reads (for manifests and checksums), in field order.

        Every `Path` field of a block is an annotation file (image folders are `str` subdirs).
        """
        out: list[Path] = []
        for name in type(self).model_fields:
            v: Any = getattr(self, name)
            out += [p for p in (v if isinstance(v, list) else [v]) if isinstance(p, Path)]
        return out

    def read(self, *, split: str, ledger: Ledger, known_images: set[str] | None = None) -> SourceResult:
        """Read the files into records (rejections into `ledger`); `known_images` restricts to COCO's."""
        raise NotImplementedError
