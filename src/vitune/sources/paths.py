"""Re-export of the one path rule, which lives in `vitune.data.paths` (so `data/` never imports
`sources/`); kept so `from vitune.sources.paths import resolve_image` keeps working."""

from vitune.data.paths import UnsafePathError, check_rel_path, image_prefix, resolve_image

__all__ = ["UnsafePathError", "check_rel_path", "image_prefix", "resolve_image"]
