"""The embedded miniature world: procedurally drawn scenes with ground truth in public formats.

`generate_world(out, n_images, seed)` writes images plus COCO, Visual Genome and VQAv2 files at the
paths `WorldLayout` names (see `layout.py`).
"""

from vitune.world.generate import generate_world
from vitune.world.layout import SPLITS, WorldLayout

__all__ = ["SPLITS", "WorldLayout", "generate_world"]
