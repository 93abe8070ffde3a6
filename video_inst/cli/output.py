"""What every ``video-inst`` command shares: JSON output, named errors, progress bars."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from typing import Any

import click

from video_inst.errors import VideoInstError


def emit(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def error_json(exc: VideoInstError) -> dict[str, Any]:
    """A named error as the HTTP API writes it: ``{"error": {"code", "message"}}``."""
    return {"error": {"code": exc.code, "message": exc.message}}


def fail(exc: VideoInstError) -> None:
    """Exit 1 with the error: the API's JSON error shape on stdout under ``--json``, else a line on stderr."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.params.get("as_json"):
        emit(error_json(exc))
    else:
        click.echo(f"error: {exc.message}", err=True)
    sys.exit(1)


class _Once(logging.Filter):
    """Each distinct warning once per process (an archive of 200 files warns once, not 200 times)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def route_warnings() -> None:
    """Library and third-party warnings go to stderr as ``warning: message``, once each.

    Python's ``warnings`` module would print the category and the source line of the call;
    an editor needs the message only.
    """
    root = logging.getLogger()
    if any(getattr(h, "_video_inst", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.addFilter(_Once())
    handler._video_inst = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    def show(
        message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        logging.getLogger("video_inst").warning("%s", message)

    warnings.showwarning = show


# Where each ingest stage sits in one file's share of the bar: shot detection decodes every
# frame, keyframes include the models (analysis runs as keyframes are decoded), then the commit.
STAGE_SPANS = {
    "hash": (0.0, 0.02),
    "probe": (0.02, 0.03),
    "shots": (0.03, 0.35),
    "keyframes": (0.35, 0.97),
    "commit": (0.97, 1.0),
}


def overall_fraction(stage: str, fraction: float) -> float:
    """A stage's progress as a fraction of the whole file: the bar never moves backwards."""
    start, end = STAGE_SPANS.get(stage, (0.0, 1.0))
    return start + (end - start) * min(max(fraction, 0.0), 1.0)


class StageBar:
    """One tqdm bar through all files on a terminal (``N/M name`` and the stage); silent otherwise."""

    def __init__(self, total_files: int, enabled: bool) -> None:
        self.bar = None
        self.total = total_files
        self.index = 0
        self.name = ""
        self.position = 0.0
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=100 * total_files,
                unit="%",
                leave=False,
                file=sys.stderr,
                bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}",
            )

    def start(self, index: int, name: str) -> None:
        """File ``index`` (0-based) named ``name`` begins."""
        self.index, self.name = index, name
        self("start", 0.0)

    def __call__(self, stage: str, fraction: float) -> None:
        done = 0.0 if stage == "start" else overall_fraction(stage, fraction)
        self.position = max(self.position, 100 * (self.index + done))
        if self.bar is not None:
            self.bar.set_description_str(f"{self.index + 1}/{self.total} {self.name}", refresh=False)
            self.bar.set_postfix_str("" if stage == "start" else stage, refresh=False)
            self.bar.n = int(round(self.position))
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Counter:
    """A tqdm bar on a terminal, nothing otherwise."""

    def __init__(
        self, desc: str, enabled: bool, total: int | None = None, unit: str = "file", leave: bool = False
    ) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=leave)

    def update(self, n: int, total: int | None = None, postfix: str | None = None) -> None:
        if self.bar is None:
            return
        if total is not None:
            self.bar.total = total
        self.bar.n = n
        if postfix:
            self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def video_ids(refs: tuple[str, ...]) -> list[int] | None:
    """Catalog ids of the videos named by id, path or content-hash prefix (``--video``)."""
    if not refs:
        return None
    from video_inst.catalog import repo
    from video_inst.catalog.db import get_catalog

    with get_catalog().session() as s:
        return [repo.find_video(s, ref=r).id for r in refs]
