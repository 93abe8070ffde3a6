#!/usr/bin/env python
"""What crop search loses when a track's regions are not indexed one by one (issue 14, item 3).

Why: every keyframe a track is seen at adds a 1,280-d region vector to SQL and to the region
index, though the views of one track are near copies of each other. This script ingests the
19-shot edit of tests/test_search_retrieval.py once (``--home``, kept and reused), then for
each variant copies that data directory, rewrites its region vectors through the store's own
API (``IndexStore.delete_owners`` / ``add_vectors``, then ``sync``) and runs the test's four crop
queries (full ranking of the edit's shots; mAP, "top-3", and the scale-free "gap" of
scripts/eval_whitening.py) and one "more like this" query per query shot:

- ``all``: every box's region vector (the layout before this change);
- ``best``: only the track's best keyframe (highest DASR peak, the track's ``best_keyframe``);
- ``mean``: one vector per track, the mean of its views (its ``track`` vector), under the best box;
- ``best+mean``: the best box's vector, plus the mean under another box of the track (multi-view
  tracks only).

Asserts nothing; figures go in docs/VECTORS.md ("Disk per hour") with the command::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python scripts/eval_region_density.py --home /tmp/vi_density
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from eval_whitening import evaluate  # noqa: E402
from test_search_retrieval import QUERIES  # noqa: E402

VARIANTS = ("all", "best", "mean", "best+mean")


def thin(settings, variant: str) -> dict[str, int]:  # noqa: ANN001 - Settings
    """Rewrite the region vectors of every track of the catalog as ``variant`` says."""
    from sqlalchemy import select

    from video_inst.catalog.db import get_catalog
    from video_inst.catalog.models import ModelSpace, Track, TrackBox, Vector
    from video_inst.vectors.codec import decode
    from video_inst.vectors.store import get_index_store

    catalog = get_catalog(settings)
    store = get_index_store(settings)
    with catalog.session() as s:
        space = s.scalars(select(ModelSpace).where(ModelSpace.family == "dasr")).one()
        boxes: dict[int, list[tuple[int, int]]] = {}
        for track_id, box_id, kf in s.execute(
            select(TrackBox.track_id, TrackBox.id, TrackBox.keyframe_id).order_by(TrackBox.id)
        ):
            boxes.setdefault(int(track_id), []).append((int(box_id), int(kf)))
        tracks = {int(t.id): t for t in s.scalars(select(Track))}
        means = dict(
            s.execute(
                select(Vector.owner_id, Vector.data).where(
                    Vector.space_id == space.id, Vector.kind == "track"
                )
            ).all()
        )
        drop: list[int] = []
        put: list[tuple[int, int, bytes]] = []  # (box id, video id, blob)
        for track_id, members in boxes.items():
            track = tracks[track_id]
            best = next(b for b, kf in members if kf == track.best_keyframe_id)
            others = [b for b, _ in members if b != best]
            if variant == "all":
                continue
            if variant == "best":
                drop += others
            elif variant == "mean":
                drop += others
                put.append((best, track.video_id, means[track_id]))
            elif variant == "best+mean":
                drop += others[1:]
                if others:
                    put.append((others[0], track.video_id, means[track_id]))
        store.delete_owners(s, space.id, "region", drop)
        if put:
            store.add_vectors(
                s,
                space,
                "region",
                [b for b, _, _ in put],
                [v for _, v, _ in put],
                decode([d for _, _, d in put], space.dim),
            )
        s.commit()
        space_id = int(space.id)
    store.sync(space_id, "region")
    return {"region_vectors": store.sql_count(space_id, "region"), "tracks": len(boxes)}


def more_like_this(searcher, edit: Path, shots: list[dict], edit_id: int) -> float:  # noqa: ANN001
    """Mean AP of "more like this" from the top hit of each crop query inside its own shot."""
    from test_search_retrieval import _middle_frame, average_precision

    from video_inst.search.searcher import Query

    aps = []
    for source, box, relevant in QUERIES:
        image = _middle_frame(edit, shots[source])
        first = searcher.search(Query(image=image, box=box, top_k=len(shots), video_ids=[edit_id]))
        own = next((h for h in first.hits if h.shot.index == source), None)
        if own is None:
            aps.append(0.0)
            continue
        res = searcher.search(Query(track_id=own.track_id, top_k=len(shots), video_ids=[edit_id]))
        aps.append(average_precision([h.shot.index for h in res.hits], relevant - {source}))
    return float(np.mean(aps))


def main() -> None:
    default_media = Path(os.environ.get("VIDEO_INST_TEST_MEDIA", REPO.parent / "shared" / "media"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=default_media)
    ap.add_argument("--home", type=Path, required=True, help="Ingest (kept, reused) and copies.")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from video_inst.catalog.db import get_catalog
    from video_inst.config import Settings
    from video_inst.ingest.pipeline import ingest_path
    from video_inst.search.searcher import Searcher

    edit = args.media / "edits" / "instance_test_edit.mp4"
    shots = json.loads(edit.with_suffix(".shots.json").read_text())["shots"]
    base = args.home / "base"
    settings = Settings(home=base, database_url=None, device="cpu", region_vectors="all")
    started = time.perf_counter()
    result = ingest_path(edit, settings=settings, catalog=get_catalog(settings))
    assert result.status in ("done", "skipped"), result.error
    print(f"ingest (or reuse) {time.perf_counter() - started:.0f} s", file=sys.stderr)
    rows = []
    for variant in args.variants.split(","):
        home = args.home / variant.replace("+", "_")
        shutil.rmtree(home, ignore_errors=True)
        with sqlite3.connect(base / "catalog.sqlite3") as conn:  # the copy must hold what the WAL holds
            conn.execute("pragma wal_checkpoint(TRUNCATE)")
        shutil.copytree(base, home, ignore=shutil.ignore_patterns("*.lock", "*-shm", "*-wal"))
        vs = Settings(home=home, database_url=None, device="cpu")
        counts = thin(vs, variant)
        searcher = Searcher(vs)
        mean_ap, top3, gap, _ = evaluate(searcher, edit, result.video_id, shots)
        mlt = more_like_this(searcher, edit, shots, result.video_id)
        rows.append(dict(variant=variant, **counts, mAP=mean_ap, top3=top3, gap=gap, more_like_this_mAP=mlt))
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'variant':10s} {'regions':>8s} {'tracks':>7s} {'mAP':>6s} {'top-3':>6s} {'gap':>6s} {'MLT':>6s}")
    for r in rows:
        print(
            f"{r['variant']:10s} {r['region_vectors']:8d} {r['tracks']:7d} {r['mAP']:6.3f} "
            f"{r['top3']:>4d}/{len(QUERIES)} {r['gap']:6.2f} {r['more_like_this_mAP']:6.3f}"
        )


if __name__ == "__main__":
    main()
