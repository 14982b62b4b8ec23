"""vitune: a toolkit for visual instruction tuning (world -> sources -> tasks -> train -> eval)."""

__version__ = "0.1.0"
