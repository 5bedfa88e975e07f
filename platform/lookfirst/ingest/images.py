"""Decode-check one image before it is stored: size, pixel count (decompression bombs), corruption."""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage

from lookfirst.ingest.readers import ImageRef

ALLOWED_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}


class ImageRejected(ValueError):
    """The image cannot be stored; the message says why, for the row's error report."""


@dataclass(frozen=True)
class CheckedImage:
    sha256: str
    data: bytes
    width: int
    height: int
    format: str  # file extension, lower case


def image_check(ref: ImageRef, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    """Return the image's bytes and facts, or raise ImageRejected with a reason a user can act on."""
    data = ref.data if ref.data is not None else _read_file(ref.path, max_bytes)
    if len(data) > max_bytes:
        raise ImageRejected(f"image is {len(data):,} bytes, over the {max_bytes:,}-byte limit")
    if not data:
        raise ImageRejected("image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        f"image is {width}x{height} = {width * height:,} pixels, over the {max_pixels:,}-pixel "
                        "limit (possible decompression bomb)"
                    )
                if img.format not in ALLOWED_FORMATS:
                    raise ImageRejected(f"unsupported image format {img.format}; known: {', '.join(ALLOWED_FORMATS)}")
                fmt = ALLOWED_FORMATS[img.format]
                img.load()  # decodes fully: truncated or corrupt data fails here, not in a trainer later
    except ImageRejected:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise ImageRejected(f"decompression bomb: {exc}") from None
    except Exception as exc:  # PIL raises many types for bad data: all mean the same to the user
        raise ImageRejected(f"corrupt or truncated image: {exc}") from None
    return CheckedImage(hashlib.sha256(data).hexdigest(), data, width, height, fmt)


def _read_file(path: Path | None, max_bytes: int) -> bytes:
    if path is None:
        raise ImageRejected("image has neither bytes nor a path")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageRejected(f"image file not found: {path}") from None
    if size > max_bytes:
        raise ImageRejected(f"image is {size:,} bytes, over the {max_bytes:,}-byte limit")
    return path.read_bytes()
