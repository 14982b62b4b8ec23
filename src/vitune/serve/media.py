"""Images of chat requests: a base64 `data:` URL, or (only with an image root) a local file.

Closed by default: remote `http(s)://` URLs are never fetched (the server would make requests on a
client's behalf), and local paths / `file://` URLs are refused unless the server was started with an
image root (`--image-root`), under which they are resolved with the project's safe path rules
(`sources.paths.resolve_image`: no `..`, no NUL, no symlink out of the root). Every image goes
through the project's one image check (`data.images.open_image`) with the server's limits: its size
in bytes first, then its header (pixels, longest side, aspect ratio) before any pixel is decoded.

Error messages never say whether a path outside the root exists, never show the root, and never
hold an exception's text: every failure is a `RequestError` (400) with a short, fixed reason.

`load_image` returns a *lazy* image (header read, pixels not yet decoded) over the compressed bytes,
after one full decode has proven the data sound: a queued request then holds only its compressed
bytes (at most `max_image_bytes`), and the pixels are decoded again when its batch is prepared.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image

from vitune.data.images import ImageError, open_image
from vitune.data.paths import UnsafePathError, resolve_image
from vitune.serve.limits import Limits
from vitune.serve.protocol import RequestError

PARAM = "messages"
_DATA_URL = re.compile(r"data:image/[A-Za-z0-9.+-]+;base64")


def _refuse(message: str) -> RequestError:
    return RequestError(400, message, PARAM)


def _data_url(url: str, limits: Limits) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not _DATA_URL.fullmatch(header):
        raise _refuse("an image data URL must look like data:image/<type>;base64,<data>")
    # base64 is 4 characters per 3 bytes: refuse before decoding what is over the limit anyway.
    if len(payload) > (limits.max_image_bytes + 2) // 3 * 4:
        raise _refuse(f"the image is over {limits.max_image_bytes} bytes (vitune serve --max-image-bytes)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("the image data URL is not valid base64") from None


def _local_file(url: str, image_root: Path | None, limits: Limits) -> bytes:
    if image_root is None:
        raise _refuse(
            "local image paths are not accepted by this server (it was started without --image-root); "
            "send the image as a base64 data URL"
        )
    raw = unquote(urlparse(url).path) if url.startswith("file://") else url
    root = image_root.resolve()
    # An absolute path is accepted when it names a file under the root, as a path relative to it.
    rel = os.path.relpath(raw, root) if os.path.isabs(raw) and "\x00" not in raw else raw
    try:
        path = resolve_image(root, rel)
    except (UnsafePathError, ValueError, OSError):
        # One answer whatever is outside the root, so its files cannot be probed.
        raise _refuse("the image path is not under the server's image root") from None
    try:
        if not path.is_file():
            raise OSError
        if path.stat().st_size > limits.max_image_bytes:
            raise _refuse(
                f"the image is over {limits.max_image_bytes} bytes (vitune serve --max-image-bytes)"
            )
        return path.read_bytes()
    except OSError:
        raise _refuse("no readable image file at that path under the server's image root") from None


def read_image_bytes(url: str, image_root: str | os.PathLike | None, limits: Limits) -> bytes:
    """The compressed bytes of the image `url` names, checked against the byte limit (module doc)."""
    if url.startswith("data:"):
        return _data_url(url, limits)
    scheme = urlparse(url).scheme.lower() if "\x00" not in url else ""
    if scheme in ("http", "https"):
        raise _refuse("remote image URLs are not fetched; send the image as a base64 data URL")
    if scheme not in ("", "file") and not (len(scheme) == 1 and os.name == "nt"):  # C:\ on Windows
        raise _refuse("unsupported image URL scheme (a base64 data: URL, or a path under the image root)")
    return _local_file(url, Path(image_root) if image_root is not None else None, limits)


def check_image_bytes(data: bytes, limits: Limits) -> Image.Image:
    """A lazy image over `data` once the one image check has decoded it fully (module doc)."""
    if len(data) > limits.max_image_bytes:
        raise _refuse(f"the image is over {limits.max_image_bytes} bytes (vitune serve --max-image-bytes)")
    try:
        open_image(data, limits.image_limits(), source="image").close()
    except ImageError as e:
        # Pillow's own texts (object addresses, decoder internals) stay out of the answer.
        reason = "unreadable image" if e.reason.startswith("unreadable") else e.reason
        raise _refuse(f"the image cannot be used: {reason}") from None
    return Image.open(io.BytesIO(data))


def load_image(
    url: str, image_root: str | os.PathLike | None = None, limits: Limits | None = None
) -> Image.Image:
    """The image `url` names (see the module doc), checked; lazy until its batch decodes it."""
    limits = limits or Limits()
    return check_image_bytes(read_image_bytes(url, image_root, limits), limits)
