"""Saved searches that watch new footage (issue 16 item 6): real clips, real catalog, a real callback.

A crop of ``sintel_snow.mp4`` is saved with a threshold between its score on that clip and
its best score on ``realshort.mp4``; then a re-encoded copy of the snow clip (new content,
same picture) and a re-encoded copy of ``realshort`` are ingested as jobs: the first job's
result and its callback carry the saved search's hits in the new video, the second's none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import pytest
from api_live import frame_png

from video_inst.catalog.db import get_catalog
from video_inst.config import Settings
from video_inst.errors import NotFoundError
from video_inst.ingest.pipeline import ingest_path
from video_inst.jobs import pipeline, state
from video_inst.media.images import load_image
from video_inst.search.saved import delete_saved, list_saved, matches_of, run_saved, save_search
from video_inst.search.searcher import Query, Searcher
from workers.testing import CallbackReceiver


def reencode(src: Path, dest: Path, crf: int = 30) -> Path:
    """The same pictures as new bytes (another content hash): what a second delivery of a shot looks like."""
    with av.open(str(src)) as inp, av.open(str(dest), "w") as out:
        stream_in = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=stream_in.average_rate)
        stream.width, stream.height, stream.pix_fmt = stream_in.width, stream_in.height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in inp.decode(stream_in):
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dest


def _job(settings: Settings, catalog: object, path: Path, **kw: object) -> dict:
    job_id = state.create_job(catalog, kind="ingest", path=str(path))  # type: ignore[arg-type]
    return pipeline.ingest_in_process(job_id, path, settings=settings, catalog=catalog, **kw)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_saved_crop_search_reports_new_footage_that_holds_its_object(
    shared_media: Path, tmp_path: Path
) -> None:
    clips = shared_media / "clips"
    settings = Settings(home=tmp_path / "home", database_url=None, media_roots=[shared_media, tmp_path])
    catalog = get_catalog(settings)
    ids = {}
    for name in ("sintel_snow.mp4", "realshort.mp4"):
        result = ingest_path(clips / name, settings=settings, catalog=catalog)
        assert result.status == "done" and result.watch == [], result
        ids[name] = result.video_id
    png, w, h = frame_png(clips / "sintel_snow.mp4", 1.0)
    query = Query(image=load_image(png), box=(w // 4, h // 5, 3 * w // 4, 4 * h // 5), top_k=10)
    searcher = Searcher(settings)
    own = searcher.search(Query(**{**query.__dict__, "video_ids": [ids["sintel_snow.mp4"]]}))
    other = searcher.search(Query(**{**query.__dict__, "video_ids": [ids["realshort.mp4"]]}))
    threshold = (own.hits[0].score + (other.hits[0].score if other.hits else 0.0)) / 2
    assert own.hits[0].score > threshold
    saved, first = save_search(
        query, "snow crop", settings=settings, catalog=catalog, searcher=searcher, threshold=threshold
    )
    assert saved["vectors"] == len(first.query_vectors) > 0 and saved["space"] == first.spaces["dasr"]
    assert [s["name"] for s in list_saved(catalog)] == ["snow crop"]
    again = run_saved("snow crop", settings=settings, catalog=catalog)  # no image needed any more
    assert [h.track_id for h in again.hits] == [h.track_id for h in first.hits]

    copy = reencode(clips / "sintel_snow.mp4", tmp_path / "snow_again.mp4")
    unrelated = reencode(clips / "realshort.mp4", tmp_path / "short_again.mp4")
    receiver = CallbackReceiver(codes=[200, 200])
    try:
        found = _job(settings, catalog, copy, callback_url=receiver.url)
        none = _job(settings, catalog, unrelated, callback_url=receiver.url)
    finally:
        receiver.close()
    assert found["status"] == "done" and none["status"] == "done"
    (watch,) = found["watch"]
    assert watch["name"] == "snow crop" and watch["threshold"] == pytest.approx(threshold)
    assert watch["hits"] and all(h["video_id"] == found["video_id"] for h in watch["hits"])
    assert all(h["score"] >= threshold for h in watch["hits"])
    assert none["watch"] == []
    bodies = {b["result"]["video_id"]: b for b in receiver.bodies}
    assert bodies[found["video_id"]]["result"]["watch"] == found["watch"]  # the callback carries the hits
    assert bodies[none["video_id"]]["result"]["watch"] == []
    json.dumps(receiver.bodies)  # plain JSON
    (match,) = matches_of("snow crop", catalog)
    assert match["video_id"] == found["video_id"] and match["hits"] == watch["hits"]

    assert delete_saved("snow crop", catalog) == saved["saved_search_id"]
    with pytest.raises(NotFoundError):
        matches_of("snow crop", catalog)
    assert os.path.exists(copy)
