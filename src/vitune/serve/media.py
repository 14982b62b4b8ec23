"""Images of chat requests: a base64 `data:` URL, or a local file (a path or a `file://` URL).

Remote `http(s)://` URLs are refused rather than fetched: the server would otherwise make requests
on a client's behalf. Local files are read only under `image_root` when one is set (a server
reachable by others should set it: a path is otherwise any file the server can read). Every failure
is a `RequestError` (400) naming what was wrong, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image

from vitune.serve.protocol import RequestError

PARAM = "messages"


def _decode(data: bytes | str, what: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise RequestError(400, f"image file not found: {what}", PARAM) from None
    except Exception as e:  # PIL raises many types (OSError, ValueError, DecompressionBombError, ...)
        raise RequestError(400, f"unreadable image ({what}): {type(e).__name__}: {e}", PARAM) from None


def _data_url(url: str) -> Image.Image:
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:image/") or not header.endswith(";base64"):
        raise RequestError(400, "an image data URL must look like data:image/<type>;base64,<data>", PARAM)
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestError(400, f"the image data URL is not valid base64: {e}", PARAM) from None
    return _decode(raw, f"{header} data URL, {len(raw)} bytes")


def _local_path(url: str, image_root: Path | None) -> Path:
    path = Path(unquote(urlparse(url).path)) if url.startswith("file://") else Path(url)
    if image_root is None:
        return path
    root = image_root.resolve()
    full = (root / path).resolve()  # relative paths are under the root; absolute ones must be too
    if not full.is_relative_to(root):
        raise RequestError(400, f"image path {url!r} is outside the server's image root", PARAM)
    return full


def load_image(url: str, image_root: str | os.PathLike | None = None) -> Image.Image:
    """The RGB image `url` names (see the module doc)."""
    if url.startswith("data:"):
        return _data_url(url)
    scheme = urlparse(url).scheme.lower()
    if scheme in ("http", "https"):
        raise RequestError(
            400, "remote image URLs are not fetched; send the image as a base64 data URL", PARAM
        )
    if scheme not in ("", "file") and not (len(scheme) == 1 and os.name == "nt"):  # C:\ on Windows
        raise RequestError(400, f"unsupported image URL scheme {scheme!r} (data:, file:// or a path)", PARAM)
    path = _local_path(url, Path(image_root) if image_root is not None else None)
    return _decode(str(path), str(path))
