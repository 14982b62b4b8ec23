"""What one request may cost the server: `Limits`, with safe defaults (each a `vitune serve` flag).

The defaults bound the memory of hostile input: a body is read at most `max_body_bytes` far, at
most `max_queue` requests are admitted at once (more get 429 with `Retry-After`), an image is at
most `max_image_bytes` compressed and is checked from its header (pixels, longest side, aspect
ratio) before a pixel is decoded (`vitune.data.images.open_image`), and at most `decode_slots`
images are decoded at once. So the memory requests can hold is about
`max_queue * (max_body_bytes + max_image_bytes)` plus `decode_slots` and one batch of decoded
images (each at most `max_image_side`^2 * 3 bytes once padded to a square), whatever clients send.
"""

from __future__ import annotations

from dataclasses import dataclass

from vitune.data.images import ImageLimits


@dataclass(frozen=True)
class Limits:
    """Per-request limits of `vitune serve` (see the module doc); every field must be positive."""

    max_body_bytes: int = 8 * 2**20  # a 5 MiB image is 6.7 MiB in base64
    max_chars: int = 100_000  # text characters of one request, all messages together
    max_images: int = 1  # LLaVA-1.5 sees one image; 0 makes a text-only server
    max_image_bytes: int = 5 * 2**20
    max_image_pixels: int = 4096 * 4096
    max_image_side: int = 4096
    max_image_aspect: float = 20.0
    max_queue: int = 32  # requests admitted at once (being read, waiting or generating)
    timeout_s: float = 120.0  # from admission to the last token
    decode_slots: int = 2  # images decoded at once

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name != "max_images" and not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if self.max_images not in (0, 1):
            raise ValueError(f"max_images must be 0 or 1 (LLaVA-1.5 sees one image), got {self.max_images!r}")
        if self.max_image_aspect < 1:
            raise ValueError(f"max_image_aspect must be >= 1, got {self.max_image_aspect!r}")

    def image_limits(self) -> ImageLimits:
        """The project's one image check, configured with these limits."""
        return ImageLimits(
            max_pixels=self.max_image_pixels, max_aspect=self.max_image_aspect, max_side=self.max_image_side
        )
