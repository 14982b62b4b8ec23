"""The source options every command that reads annotations takes, defined once.

`--world`, `--sources`, `--source KIND=PATH`, `--image-root` and `--split` go together into
`vitune.sources.inputs.SourcesInput` (exactly one of the first three), so `vitune build` and
`vitune synth` accept and explain them the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

WorldOption = Annotated[
    Path | None, typer.Option("--world", help="An embedded world folder (from `vitune world`).")
]
SourcesOption = Annotated[
    Path | None,
    typer.Option("--sources", help="A sources YAML (SourceSpec fields; paths relative to it)."),
]
SourceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--source",
        help="KIND=PATH (repeatable), e.g. coco_instances=..., coco_captions=..., vg=DIR, "
        "vqa_questions=..., vqa_annotations=..., gqa=..., textvqa=..., scienceqa=..., "
        "refcoco=..., imagefolder=DIR, aokvqa=..., okvqa=..., vizwiz=..., ocrvqa=..., "
        "vsr=..., clevr=..., or an option such as coco_image_subdir=train2014 or "
        "clevr.scenes=....",
    ),
]
ImageRootOption = Annotated[
    Path | None, typer.Option(help="Folder the image paths are relative to (with --source).")
]
SplitOption = Annotated[
    str | None, typer.Option(help="Split to read (world default: train; overrides a sources file's).")
]
