#!/usr/bin/env python
"""Disk per hour of video: what one ingest leaves in the data directory, part by part.

Why: an archive of thousands of hours must fit on one machine's disk (issue 14, item 5:
<= 60 MB per hour of video for the whole data directory). One fresh data directory ingests
one clip with the embedded default (``video-inst ingest CLIP --json`` in a child process, as
a user runs it; default: the 60 s 720p25 H.264 edit of the shared clips that
``scripts/bench_media.py`` renders once, ``bench_720p25_60s.mp4``), and the script prints MB
per hour of video (bytes / 10^6 / video seconds x 3,600) for the whole directory and each part:

- catalog: the SQLite file (and any -wal; the -shm a reader may leave is not counted), split
  with SQLite's ``dbstat`` into the ``vectors`` table with its indexes (the stored vectors),
  every other table and index, and free pages;
- index: the FAISS index files (``index/*.faiss``) and their small companions (floors, locks);
- thumbnails: ``thumbnails/`` (JPEGs, one per keyframe);
- fixed: what the same directory holds with no video at all (an empty migrated catalog),
  measured in a second fresh directory: per hour of archive it vanishes, on a 60 s clip it
  is multiplied by 60, so the figure without it is printed too.

Asserts nothing; figures go in docs/VECTORS.md ("Disk per hour") with the command.

Usage::

    VIDEO_INST_TEST_MEDIA=/work/shared/media PYTHONPATH=$PWD .venv/bin/python scripts/bench_disk.py
    PYTHONPATH=$PWD .venv/bin/python scripts/bench_disk.py --video clip.mp4 --keep /tmp/vi_disk --json
    PYTHONPATH=$PWD .venv/bin/python scripts/bench_disk.py --home /tmp/vi_disk   # measure a directory
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

VECTOR_OBJECTS = ("vectors", "sqlite_autoindex_vectors_1", "ix_vectors_space_kind", "ix_vectors_video_id")


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, VIDEO_INST_HOME=str(home), PYTHONPATH=str(REPO))
    env.pop("VIDEO_INST_DATABASE_URL", None)
    return env


def ingest(video: Path, home: Path) -> dict:
    """One ``video-inst ingest`` in a child process; its JSON result line."""
    proc = subprocess.run(
        [sys.executable, "-m", "video_inst.cli", "ingest", str(video), "--json"],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        sys.exit(f"ingest failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def empty_home(home: Path) -> None:
    """A data directory with a migrated catalog and nothing else (what any directory costs)."""
    code = (
        "from video_inst.config import Settings\n"
        "from video_inst.catalog.db import get_catalog\n"
        "get_catalog(Settings())\n"
    )
    subprocess.run([sys.executable, "-c", code], env=_env(home), check=True, timeout=600)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def _size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def catalog_parts(db: Path) -> dict[str, int]:
    """Bytes of the SQLite file by what its pages hold (``dbstat``), free pages apart."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        page = int(conn.execute("pragma page_size").fetchone()[0])
        free = int(conn.execute("pragma freelist_count").fetchone()[0]) * page
        rows = conn.execute("select name, sum(pgsize), sum(payload) from dbstat group by name").fetchall()
        vector_payload = int(conn.execute("select coalesce(sum(length(data)), 0) from vectors").fetchone()[0])
        vector_rows = int(conn.execute("select count(*) from vectors").fetchone()[0])
    vectors = sum(int(size) for name, size, _ in rows if name in VECTOR_OBJECTS)
    other = sum(int(size) for name, size, _ in rows if name not in VECTOR_OBJECTS)
    return {
        "vector_pages": vectors,
        "vector_blob_bytes": vector_payload,
        "vector_rows": vector_rows,
        "other_pages": other,
        "free_pages": free,
        "page_size": page,
    }


def measure(home: Path) -> dict[str, int]:
    """Bytes of each part of one data directory (apparent file sizes)."""
    files = _files(home)
    files = [p for p in files if not p.name.endswith("-shm")]  # SQLite's shared-memory index: transient
    catalog = [p for p in files if p.parent == home and p.name.startswith("catalog.sqlite3")]
    index = [p for p in files if home / "index" in p.parents]
    faiss_files = [p for p in index if p.suffix == ".faiss" or p.name.endswith(".rerank")]
    thumbs = [p for p in files if home / "thumbnails" in p.parents]
    out = {
        "total": _size(files),
        "catalog": _size(catalog),
        "index": _size(index),
        "index_faiss": _size(faiss_files),
        "thumbnails": _size(thumbs),
        "thumbnail_files": sum(1 for p in thumbs if p.suffix == ".jpg"),
    }
    out["other"] = out["total"] - out["catalog"] - out["index"] - out["thumbnails"]
    db = home / "catalog.sqlite3"
    if db.exists():
        out.update(catalog_parts(db))
    return out


def per_hour(nbytes: float, seconds: float) -> float:
    return round(nbytes / 1e6 / seconds * 3600, 1)


def report(home: Path, seconds: float, fixed: dict[str, int] | None, result: dict | None) -> dict:
    parts = measure(home)
    keys = ("total", "catalog", "vector_pages", "other_pages", "free_pages", "index", "thumbnails", "other")
    out: dict = {
        "video_s": round(seconds, 2),
        "keyframes": (result or {}).get("keyframes"),
        "tracks": (result or {}).get("tracks"),
        "vectors": parts.get("vector_rows"),
        "bytes": parts,
        "mb_per_hour": {k: per_hour(parts.get(k, 0), seconds) for k in keys},
        "vector_blob_bytes_mean": round(parts["vector_blob_bytes"] / parts["vector_rows"], 1)
        if parts.get("vector_rows")
        else None,
    }
    if fixed is not None:
        out["fixed_bytes"] = fixed["total"]
        out["mb_per_hour_without_fixed"] = per_hour(parts["total"] - fixed["total"], seconds)
    return out


def print_table(rep: dict) -> None:
    b, h = rep["bytes"], rep["mb_per_hour"]
    print(
        f"{rep['video_s']:.1f} s of video: {rep['keyframes']} keyframes, {rep['tracks']} tracks, "
        f"{rep['vectors']} vector rows ({rep['vector_blob_bytes_mean']} B a blob on average)"
    )
    print(f"  {'part':34s} {'bytes':>12s} {'MB / hour':>10s}")
    rows = [
        ("whole data directory", "total"),
        ("catalog (SQLite file)", "catalog"),
        ("  vectors table + its indexes", "vector_pages"),
        ("  every other table + index", "other_pages"),
        ("  free pages", "free_pages"),
        ("FAISS index files (+ companions)", "index"),
        ("thumbnails", "thumbnails"),
        ("other (locks, staging)", "other"),
    ]
    for label, key in rows:
        print(f"  {label:34s} {b.get(key, 0):>12,} {h[key]:>10.1f}")
    if "fixed_bytes" in rep:
        print(
            f"  fixed cost of an empty data directory: {rep['fixed_bytes']:,} B; "
            f"without it {rep['mb_per_hour_without_fixed']:.1f} MB / hour"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, help="clip to ingest (default: the cached 60 s 720p25 edit)")
    ap.add_argument("--home", type=Path, help="measure this data directory instead of ingesting")
    ap.add_argument("--keep", type=Path, help="ingest into this (new) directory and keep it")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = ap.parse_args()
    from video_inst.media.probe import probe

    with tempfile.TemporaryDirectory(prefix="vi_disk_") as tmp:
        empty = Path(tmp) / "empty"
        empty_home(empty)
        fixed = measure(empty)
        result = None
        if args.home is not None:
            home = args.home
            with sqlite3.connect(f"file:{home / 'catalog.sqlite3'}?mode=ro", uri=True) as conn:
                seconds = float(conn.execute("select coalesce(sum(duration_s), 0) from videos").fetchone()[0])
        else:
            if args.video is None:
                from bench_media import ensure_clip

                args.video = ensure_clip("bench_720p25_60s.mp4")
            seconds = probe(args.video).duration_s
            home = args.keep or Path(tmp) / "home"
            if home.exists() and any(home.iterdir()):
                sys.exit(f"{home} is not empty")
            started = time.perf_counter()
            result = ingest(args.video, home)
            result["wall_s"] = round(time.perf_counter() - started, 1)
        rep = report(home, seconds, fixed, result)
        rep["video"] = str(args.video or home)
        if result is not None:
            rep["ingest_wall_s"] = result["wall_s"]
    if args.json:
        print(json.dumps(rep))
    else:
        print_table(rep)


if __name__ == "__main__":
    main()
