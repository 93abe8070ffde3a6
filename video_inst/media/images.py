"""Query images: decode what an editor drops in, or say clearly that it is not an image.

Anything Pillow reads is taken: CMYK (converted), 16-bit and float greyscale (scaled to
8 bits, not clipped), palette and alpha images (alpha dropped), the first frame of an
animation. Refused with a named error: bytes Pillow cannot identify, truncated files, and
images over :data:`MAX_PIXELS` (checked from the header, before any pixel is decoded, so a
decompression bomb never allocates; Pillow's own bomb check raises a different exception
class, which is turned into the same error).

Example::

    rgb = load_image(Path("query.jpg"))  # HxWx3 uint8, EXIF orientation applied
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from video_inst.errors import ImageTooLargeError, MissingFileError, NotAnImageError

MAX_PIXELS = 80_000_000  # refuse decompression bombs (below Pillow's own 89 M warning and 179 M error)

_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")


def _too_large(label: str, width: int, height: int) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"{label}: {width}x{height} is {width * height / 1e6:.0f} megapixels, over the limit of "
        f"{MAX_PIXELS / 1e6:.0f} megapixels for a query image (decompression-bomb guard); "
        "send a smaller image"
    )


def _reason(exc: BaseException) -> str:
    """Pillow's message without Python object reprs (``<_io.BytesIO object at 0x...>``)."""
    text = _REPR.sub("", str(exc)).strip().rstrip(":").strip()
    return text or type(exc).__name__


def _to_rgb(image: Any) -> np.ndarray:
    """RGB uint8 of any Pillow mode; high-bit-depth greyscale is scaled, not clipped to white."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            values = values / 257.0
        elif mode == "I":
            values = values / 257.0 if values.max(initial=0) > 255 else values
        elif values.max(initial=0) <= 1.0:
            values = values * 255.0
        grey = np.clip(np.nan_to_num(values), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def load_image(source: Path | bytes, *, name: str | None = None) -> np.ndarray:
    """RGB uint8 array of an image file or its bytes; the named errors say what is wrong."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    label = name or (str(source) if isinstance(source, Path) else "uploaded image")
    if isinstance(source, Path):
        if not source.is_file():
            raise MissingFileError(f"{source}: no such image file")
        data = source.read_bytes()
    else:
        data = source
    if not data:
        raise NotAnImageError(f"{label}: empty file, not an image")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise _too_large(label, image.width, image.height)
            image = ImageOps.exif_transpose(image)
            rgb = _to_rgb(image)
    except Image.DecompressionBombError as exc:  # not an OSError: Pillow refused it in open()
        size = re.findall(r"\d+", str(exc))
        raise ImageTooLargeError(
            f"{label}: over the limit of {MAX_PIXELS / 1e6:.0f} megapixels for a query image "
            f"(decompression-bomb guard; Pillow counted {size[0] if size else 'too many'} pixels)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError(f"{label}: not an image Pillow can read (unknown or damaged format)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise NotAnImageError(f"{label}: not an image Pillow can read ({_reason(exc)})") from exc
    if rgb.ndim != 3 or rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise NotAnImageError(f"{label}: image too small ({rgb.shape[1]}x{rgb.shape[0]}); need at least 8x8")
    return rgb


def parse_box(text: str | None) -> tuple[float, float, float, float] | None:
    """'x0,y0,x1,y1' → a tuple; a clear error for anything else."""
    from video_inst.errors import InvalidQueryError

    if text is None or not text.strip():
        return None
    parts = text.replace(" ", "").split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InvalidQueryError(f"box {text!r} must be four numbers x0,y0,x1,y1") from None
    if len(values) != 4:
        raise InvalidQueryError(f"box {text!r} must be four numbers x0,y0,x1,y1")
    return values  # type: ignore[return-value]
