"""Object crops for a classification image folder (`<class>/<image>.jpg`, torchvision's ImageFolder).

Each world image contributes one crop: its least-covered object (ties: the earlier one), drawn
alone on the scene's own background so no other object leaks into the crop, cut to the object's
box plus a margin. The class is the object's category (the folder name), as in CIFAR-style data.
Deterministic: no randomness at all (the background noise comes from the scene's seed).
"""

from __future__ import annotations

import math

from vitune.world.draw import encode_jpeg, render
from vitune.world.scene import Scene

MARGIN = 0.12  # of the object's longer box side, on every side


def crop_object(scene: Scene) -> tuple[str, bytes]:
    """(class name, JPEG bytes) of the scene's classification crop."""
    k = min(range(len(scene.objects)), key=lambda i: (scene.objects[i].occlusion, i))
    obj = scene.objects[k]
    alone = Scene(scene.width, scene.height, scene.background, [obj])
    x0, y0, x1, y1 = obj.box
    m = MARGIN * max(x1 - x0, y1 - y0)
    box = (
        max(0, math.floor(x0 - m)),
        max(0, math.floor(y0 - m)),
        min(scene.width, math.ceil(x1 + m)),
        min(scene.height, math.ceil(y1 + m)),
    )
    return obj.shape, encode_jpeg(render(alone).crop(box))
