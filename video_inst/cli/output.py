"""What every ``video-inst`` command shares: JSON output, named errors, progress bars."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from video_inst.errors import VideoInstError


def emit(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def fail(exc: VideoInstError) -> None:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(1)


class StageBar:
    """A tqdm bar per video on a terminal; silent otherwise."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=100, desc=label, unit="%", leave=False, file=sys.stderr)

    def __call__(self, stage: str, fraction: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(stage)
            self.bar.n = int(round(fraction * 100))
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
