"""`WorldFormat`: one later Vision-Flan source as the world writes it, and the registry of them.

A format is three functions:

- `make(ctx)`: in a generator worker, this image's entry (any JSON-able value, or None for none;
  called for the fraction `share` of the images only),
  drawn only from `ctx.rng(name)`; it may write images of its own under `ctx.image_root`
  (inside its `image_subdirs`, which a new generation clears first);
- `write(layout, records)`: after ids are assigned, the official annotation files from every
  record's `r["extras"][name]` (records carry `split`, `image_id`, `file_name`, `objects`, ...);
- `blocks(layout, split)`: the `SourceBlock`s that read one split back (the same readers as real data);
  the split's annotation files (`WorldFormat.files`) are the files those blocks read.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitune.utils.hashing import derive_seed


@dataclass(frozen=True, slots=True)
class ImageContext:
    """What a format's `make` gets for one world image (in a worker process)."""

    seed: int
    idx: int
    scene: Any  # world.scene.Scene
    image_root: Path
    split: str
    image_id: int
    jpeg: bytes  # the image as written under the COCO folder

    def rng(self, name: str) -> random.Random:
        """The format's own stream: adding or changing a format changes no other file."""
        return random.Random(derive_seed(self.seed, "image", self.idx, name))


@dataclass(frozen=True, slots=True)
class WorldFormat:
    name: str
    make: Callable[[ImageContext], Any]
    write: Callable[[Any, list[dict]], None]  # (WorldLayout, records)
    blocks: Callable[[Any, str], list[Any]]  # (WorldLayout, split) -> [SourceBlock]
    image_subdirs: tuple[str, ...] = ()  # under the image root; only this format writes there
    # The fraction of world images that get an entry (drawn from the format's own `:share` stream).
    # Formats with images of their own (a cover, a CLEVR scene, a photo) use part of the world, as
    # the real datasets are smaller than COCO; it also keeps generation time near what it was.
    share: float = 1.0

    def files(self, layout: Any, split: str) -> list[Path]:
        """The annotation files of one split (manifests, "is this world complete"): what its blocks read."""
        return [p for b in self.blocks(layout, split) for p in b.files()]

    def entry(self, ctx: ImageContext) -> Any:
        """`make(ctx)` for the images in this format's share, None for the others."""
        if self.share < 1.0 and ctx.rng(f"{self.name}:share").random() >= self.share:
            return None
        return self.make(ctx)


FORMATS: dict[str, WorldFormat] = {}


def register(fmt: WorldFormat) -> WorldFormat:
    if fmt.name in FORMATS:
        raise ValueError(f"world format {fmt.name!r} registered twice")
    FORMATS[fmt.name] = fmt
    return fmt
