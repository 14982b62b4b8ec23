"""The world's copies of the later Vision-Flan sources, one module per dataset, registered here.

Each module registers a `WorldFormat` (`world/vf/format.py`): what it draws per image in the
generator's workers (from its own RNG stream, so no earlier file changes), how it writes the
official annotation files, and the `SourceBlock`s that read one split back. Importing this package
registers them all; `world/extras.py`, `world/writers_extra.py`, `world/layout.py` and
`sources/merge.py` loop over `FORMATS`.
"""

from vitune.world.vf.format import FORMATS, ImageContext, WorldFormat, register

# isort: split
# The formats, registering on import; their blocks are read in this order.
from vitune.world.vf import aokvqa, clevr, ocrvqa, okvqa, vizwiz, vsr  # noqa: F401

__all__ = ["FORMATS", "ImageContext", "WorldFormat", "register"]
