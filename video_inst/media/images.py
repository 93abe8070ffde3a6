"""Query images: decode what an editor drops in, or say clearly that it is not an image.

Example::

    rgb = load_image(Path("query.jpg"))  # HxWx3 uint8, EXIF orientation applied
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from video_inst.errors import MissingFileError, NotAnImageError

MAX_PIXELS = 80_000_000  # refuse decompression bombs


def load_image(source: Path | bytes, *, name: str | None = None) -> np.ndarray:
    """RGB uint8 array of an image file or its bytes; NotAnImageError names the problem."""
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
                raise NotAnImageError(f"{label}: {image.width}x{image.height} is too large for a query image")
            image = ImageOps.exif_transpose(image)
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise NotAnImageError(f"{label}: not an image Pillow can read ({exc})") from exc
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
