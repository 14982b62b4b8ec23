"""What counts as a user-input error, and how one is told to the user in one line.

Readers, recipes and checks raise `InputError` (or the `ValueError` subclasses that predate it:
`SpecError`, `RecipeError`, `ImageError`, `UnsafePathError`) with a message naming the file, the
record and the reason. The CLI's root group (`cli/app.py`) catches `USER_ERRORS` from every command,
prints `describe_error(e)` on stderr and exits 2; `-v` shows the traceback instead.
"""

from __future__ import annotations

import errno
import os


class InputError(ValueError):
    """Bad user input: a message naming the file, the record (when there is one) and the reason."""

    def __init__(self, path: str | os.PathLike | None, reason: str, *, record: str | None = None) -> None:
        where = str(path) if path is not None else ""
        if record:
            where = f"{where}: {record}" if where else record
        super().__init__(f"{where}: {reason}" if where else reason)
        self.path = path
        self.record = record
        self.reason = reason


# ValueError is the project's convention for "this input is wrong" (every reader and recipe check
# raises a subclass); OSError covers missing, unreadable and unwritable files and a full disk.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def describe_error(e: BaseException) -> str:
    """One line for the user: the file (when the error knows it) and the reason, never a traceback."""
    if isinstance(e, OSError) and not isinstance(e, InputError):
        where = e.filename if e.filename is not None else ""
        if e.errno == errno.ENOSPC:
            reason = "disk full (no space left on device)"
        elif e.strerror:
            reason = e.strerror.lower() if e.strerror[:1].isupper() else e.strerror
        else:
            reason = str(e) or type(e).__name__
        return f"{where}: {reason}" if where else reason
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text (byte {e.object[e.start : e.start + 1]!r} at position {e.start}): {e.reason}"
    text = str(e).strip() or type(e).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
