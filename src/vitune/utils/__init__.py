"""Small shared helpers: atomic writes, hashing, progress display."""
