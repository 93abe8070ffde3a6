"""Cost of choosing the answering model space (``spaces.active.active_space``) per search.

Every search calls it per family; this prints milliseconds per call, counted afresh and
cached, on a synthetic SQLite catalog of N ingested videos in two spaces of one family (a
switch half done).

    PYTHONPATH=. .venv/bin/python scripts/bench_spaces.py --videos 10000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from video_inst.catalog.db import Catalog
from video_inst.catalog.models import ModelSpace, Video, VideoSpace
from video_inst.config import Settings
from video_inst.spaces.active import _choose, active_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(f"sqlite:///{Path(tmp) / 'c.sqlite3'}", auto_upgrade=True)
        with catalog.session() as s:
            old = ModelSpace(name="clip:old:a", family="clip", dim=4, params={})
            new = ModelSpace(name="clip:new:b", family="clip", dim=4, params={})
            videos = [Video(path=f"v{i}.mp4", status="done") for i in range(args.videos)]
            s.add_all([old, new, *videos])
            s.flush()
            s.add_all([VideoSpace(video_id=v.id, space_id=old.id, status="done") for v in videos])
            half = videos[: args.videos // 2]
            s.add_all([VideoSpace(video_id=v.id, space_id=new.id, status="done") for v in half])
        settings = Settings()
        with catalog.session() as s:
            choice = active_space(s, "clip", settings, "clip:new:b")
            timings = {}
            for label, call in (
                ("uncached (coverage counted)", lambda: _choose(s, "clip", "clip:new:b")),
                ("cached (fingerprint only)", lambda: active_space(s, "clip", settings, "clip:new:b")),
            ):
                start = time.perf_counter()
                for _ in range(args.calls):
                    call()
                timings[label] = (time.perf_counter() - start) / args.calls * 1000
        figures = ", ".join(f"{label} {ms:.2f} ms" for label, ms in timings.items())
        print(f"{args.videos} videos, answers {choice.name}: {figures} per call")


if __name__ == "__main__":
    main()
