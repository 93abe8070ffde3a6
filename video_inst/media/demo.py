"""A sample clip rendered on the spot, so the main job runs on a machine with no media and no network.

Four shots of 3 s at 25 fps (H.264 in MP4): a striped target on a green field, a blue
checkerboard, a yellow field with a dark ring, and the striped target again on a purple
field, drifting. A crop of the target (``render_query``) should find shots 0 and 3.

Example::

    video = render_sample(Path("/tmp/demo.mp4"))
    query = render_query(Path("/tmp/query.png"))
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

W, H, FPS, SECONDS = 640, 360, 25, 3


def _field(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None, None]
    frame = (1 - ramp) * np.array(top, np.float32) + ramp * np.array(bottom, np.float32)
    return np.broadcast_to(frame, (H, W, 3)).copy()


def _target(size: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB and alpha of a red and white striped disc: an object that looks alike in every shot."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    r = np.hypot(xx - c, yy - c)
    stripes = (np.floor(r / (size / 10)) % 2 == 0)[..., None]
    rgb = np.where(stripes, np.array([220, 30, 40], np.float32), np.array([250, 250, 250], np.float32))
    return rgb, (r <= size / 2)[..., None]


def _paste(frame: np.ndarray, obj: tuple[np.ndarray, np.ndarray], x: int, y: int) -> None:
    rgb, alpha = obj
    h, w = alpha.shape[:2]
    region = frame[y : y + h, x : x + w]
    region[:] = np.where(alpha, rgb, region)


def _shots(rng: np.random.Generator) -> list[list[np.ndarray]]:
    n = FPS * SECONDS
    target = _target(120)
    shots: list[list[np.ndarray]] = [[], [], [], []]
    for i in range(n):
        a = _field((40, 140, 60), (20, 80, 30))
        _paste(a, target, 120 + i, 110)
        shots[0].append(a)
        b = np.zeros((H, W, 3), np.float32)
        check = ((np.arange(H)[:, None] // 40 + (np.arange(W)[None, :] + 2 * i) // 40) % 2).astype(bool)
        b[check] = (30, 60, 200)
        b[~check] = (200, 210, 240)
        shots[1].append(b)
        c = _field((230, 200, 40), (180, 140, 20))
        yy, xx = np.mgrid[0:H, 0:W]
        ring = np.abs(np.hypot(xx - 400 + i, yy - 180) - 70) < 12
        c[ring] = (40, 30, 30)
        shots[2].append(c)
        d = _field((120, 60, 150), (60, 20, 90))
        _paste(d, target, 420 - i, 140 + i // 3)
        shots[3].append(d)
    noise = [[np.clip(f + rng.normal(0, 4, f.shape), 0, 255).astype(np.uint8) for f in s] for s in shots]
    return noise


def render_sample(path: Path) -> Path:
    """Render the sample clip with PyAV (libx264, yuv420p) and return its path."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for shot in _shots(rng):
            for frame in shot:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path


def render_query(path: Path) -> Path:
    """A 'photo' of the target on a plain background, as an editor would drop in."""
    from PIL import Image

    canvas = np.full((200, 200, 3), 235, np.float32)
    _paste(canvas, _target(150), 25, 25)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas.astype(np.uint8)).save(path)
    return path
