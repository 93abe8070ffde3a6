"""Switching models is a resumable re-index; the old space answers until the new one is complete.

Real parts throughout: real clips decoded by PyAV, the real EfficientNet-Lite0 weights at two
DASR input sizes (two DASR model spaces; ResNet-50 weights are not available here), and the
real open_clip code with a tiny RANDOMLY initialised model (``clip`` fixture, plus a second
seed as "the new CLIP model"): plumbing only, never retrieval quality. Interruptions are a
real missing file and a stop after the first video; consistency is checked by the
``video-inst index check`` command in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from video_inst.analysis.analyser import build_analyser, load_dasr
from video_inst.catalog import repo
from video_inst.catalog.db import Catalog, get_catalog
from video_inst.catalog.models import Job, ModelSpace, Track, Vector, VideoSpace
from video_inst.config import Settings
from video_inst.errors import VideoInstError
from video_inst.ingest.pipeline import ingest_path
from video_inst.ingest.reindex import drop_space, reindex_clip, reindex_dasr
from video_inst.search.searcher import Query, Searcher
from video_inst.spaces.active import active_tracks

REPO = Path(__file__).resolve().parents[1]
OLD_SIZE, NEW_SIZE = 512, 384  # two DASR configurations of the same real backbone


@pytest.fixture(scope="module")
def dasr_old():
    return load_dasr(Settings(device="cpu", dasr_input_size=OLD_SIZE))


@pytest.fixture(scope="module")
def dasr_new():
    return load_dasr(Settings(device="cpu", dasr_input_size=NEW_SIZE))


@pytest.fixture(scope="module")
def clip_new(tiny_model: str):
    from video_inst.models.clip import ClipEmbedder

    return ClipEmbedder.random_init(tiny_model, "cpu", seed=1)


def _settings(home: Path, size: int) -> Settings:
    return Settings(home=home, database_url=None, device="cpu", dasr_input_size=size)


def _copies(shared_media: Path, tmp_path: Path, names: list[str]) -> list[Path]:
    """Temporary copies (so one can go missing); the shared media stay untouched."""
    out = tmp_path / "media"
    out.mkdir()
    return [Path(shutil.copy(shared_media / "clips" / n, out / n)) for n in names]


def _index_check(settings: Settings) -> list[dict]:
    """``video-inst index check --json`` in a real subprocess against this data dir."""
    env = {**os.environ, "VIDEO_INST_HOME": str(settings.home), "PYTHONPATH": str(REPO)}
    env.pop("VIDEO_INST_DATABASE_URL", None)
    env.pop("VIDEO_INST_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "video_inst.cli", "index", "check", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _track_spaces(catalog: Catalog, track_ids: list[int]) -> set[int]:
    with catalog.session() as s:
        return set(s.scalars(select(Track.space_id).where(Track.id.in_(track_ids))))


def _space_id(catalog: Catalog, name: str) -> int:
    with catalog.session() as s:
        return int(s.scalar(select(ModelSpace.id).where(ModelSpace.name == name)))


def test_dasr_switch_reanalyses_into_a_new_space_old_answers_until_complete_then_drop(
    tmp_path: Path, shared_media: Path, clip, dasr_old, dasr_new
) -> None:
    home = tmp_path / "home"
    old_settings, new_settings = _settings(home, OLD_SIZE), _settings(home, NEW_SIZE)
    assert dasr_old.space_name != dasr_new.space_name  # same backbone, another input size
    catalog = get_catalog(old_settings)
    videos = _copies(shared_media, tmp_path, ["realshort.mp4", "sintel_snow.mp4"])
    analyser = build_analyser(old_settings, clip=clip, dasr=dasr_old)
    ids = []
    for path in videos:
        result = ingest_path(path, settings=old_settings, catalog=catalog, analyser=analyser)
        assert result.status == "done", result.error
        ids.append(result.video_id)
    old_id = _space_id(catalog, dasr_old.space_name)
    query = np.asarray(Image.open(shared_media / "images" / "kite_and_cold.jpg").convert("RGB"))

    # The settings now name the new input size: nothing is in its space yet, the old one answers.
    # The Searcher is NOT given the old extractor: it rebuilds it from the space name.
    searcher = Searcher(new_settings, catalog, dasr=dasr_new, clip=clip)
    before = searcher.search(Query(image=query, top_k=5))
    assert before.hits and before.spaces["dasr"] == dasr_old.space_name
    assert any(f"configured {dasr_new.space_name} covers 0 of 2" in n for n in before.notes)
    assert _track_spaces(catalog, [h.track_id for h in before.hits]) == {old_id}

    # Interrupted: the second video's file is gone; the first is re-analysed and committed.
    moved = videos[1].rename(videos[1].with_suffix(".away"))
    report = reindex_dasr(settings=new_settings, catalog=catalog, dasr=dasr_new, clip=clip)
    assert report.done == [ids[0]] and [v for v, _ in report.failed] == [ids[1]]
    assert "no such file" in report.failed[0][1]
    new_id = _space_id(catalog, dasr_new.space_name)
    with catalog.session() as s:
        job = s.get(Job, report.job_id)
        assert (job.kind, job.status, job.progress) == ("reindex", "failed", 0.5)
        # Both spaces' tracks coexist for the re-analysed video, each with its own vectors.
        per_space = dict(
            s.execute(
                select(Track.space_id, func.count()).where(Track.video_id == ids[0]).group_by(Track.space_id)
            ).all()
        )
        assert set(per_space) == {old_id, new_id} and all(n > 0 for n in per_space.values())
        new_tracks = select(Track.id).where(Track.space_id == new_id)
        owned = s.scalar(
            select(func.count())
            .select_from(Vector)
            .where(Vector.space_id == new_id, Vector.kind == "track", Vector.owner_id.in_(new_tracks))
        )
        assert owned == per_space[new_id]
    during = searcher.search(Query(image=query, top_k=5))
    assert during.spaces["dasr"] == dasr_old.space_name
    assert any(f"configured {dasr_new.space_name} covers 1 of 2" in n for n in during.notes)
    assert _track_spaces(catalog, [h.track_id for h in during.hits]) == {old_id}
    text = searcher.search(Query(text="a person in the snow", top_k=5))
    assert text.mode == "text" and _track_spaces(catalog, [h.track_id for h in text.hits]) == {old_id}
    from video_inst.api.routes.videos import track_rows

    with catalog.session() as s:
        assert _track_spaces(catalog, [r.track_id for r in track_rows(s, ids[0], new_settings)]) == {old_id}
        counted = repo.counts(s, video_id=ids[0], tracks=active_tracks(s, new_settings))
        assert counted["tracks"] == per_space[old_id]  # one space's tracks, not both
    with pytest.raises(VideoInstError, match="answers dasr searches now"):
        drop_space(dasr_old.space_name, settings=new_settings, catalog=catalog)

    # Resumed: only the failed video is redone; then the new space answers alone.
    moved.rename(videos[1])
    resumed = reindex_dasr(settings=new_settings, catalog=catalog, dasr=dasr_new, clip=clip)
    assert resumed.done == [ids[1]] and resumed.skipped == [ids[0]] and not resumed.failed
    assert resumed.job_id != report.job_id  # the failed run's job row is finished; this is a new one
    after = searcher.search(Query(image=query, top_k=5))
    assert after.hits and after.spaces["dasr"] == dasr_new.space_name and not after.notes
    assert _track_spaces(catalog, [h.track_id for h in after.hits]) == {new_id}
    text = searcher.search(Query(text="a person in the snow", top_k=5))
    assert text.hits and _track_spaces(catalog, [h.track_id for h in text.hits]) == {new_id}
    assert text.spaces == {"dasr": dasr_new.space_name, "clip": clip.space_name}
    with catalog.session() as s:
        assert _track_spaces(catalog, [r.track_id for r in track_rows(s, ids[1], new_settings)]) == {new_id}
    checks = _index_check(new_settings)
    checked = {(c["space_id"], c["space"], c["kind"]) for c in checks}
    assert (new_id, dasr_new.space_name, "region") in checked
    assert (new_id, dasr_new.space_name, "track") not in checked  # DASR track vectors: SQL only
    assert all(c["missing"] == 0 and c["extra"] == 0 for c in checks)

    # The old space goes only when asked: its tracks, their CLIP track vectors, its indexes.
    removed = drop_space(dasr_old.space_name, settings=new_settings, catalog=catalog)
    assert removed["tracks"] > 0
    with catalog.session() as s:
        assert set(s.scalars(select(Track.space_id).distinct())) == {new_id}
        clip_tracks = s.scalars(
            select(Vector.owner_id)
            .join(ModelSpace)
            .where(ModelSpace.family == "clip", Vector.kind == "track")
        ).all()
        assert clip_tracks and _track_spaces(catalog, list(clip_tracks)) == {new_id}
    assert not list((home / "index").glob(f"{old_id}-*"))
    assert all(c["missing"] == 0 and c["extra"] == 0 for c in _index_check(new_settings))
    assert searcher.search(Query(image=query, top_k=5)).spaces["dasr"] == dasr_new.space_name


def test_clip_switch_old_model_answers_text_until_the_new_space_covers_every_video(
    tmp_path: Path, shared_media: Path, clip, clip_new, dasr_new
) -> None:
    settings = _settings(tmp_path / "home", NEW_SIZE)
    catalog = get_catalog(settings)
    videos = _copies(shared_media, tmp_path, ["realshort.mp4", "sintel_snow.mp4", "stream-of-water.mp4"])
    with_old = build_analyser(settings, clip=clip, dasr=dasr_new)
    ids = [ingest_path(p, settings=settings, catalog=catalog, analyser=with_old).video_id for p in videos[:2]]
    # The new CLIP model is configured; a video ingested now is written in the new space only.
    with_new = build_analyser(settings, clip=clip_new, dasr=dasr_new)
    ids.append(ingest_path(videos[2], settings=settings, catalog=catalog, analyser=with_new).video_id)
    assert None not in ids

    searcher = Searcher(settings, catalog, dasr=dasr_new, clip=clip_new)
    old = searcher.search(Query(text="water", top_k=5))
    assert old.mode == "text" and old.hits and old.spaces["clip"] == clip.space_name
    assert any(f"configured {clip_new.space_name} covers 1 of 3" in n for n in old.notes)
    assert any(f"1 video not yet in model space {clip.space_name}" in n for n in old.notes)
    assert ids[2] not in {h.video_id for h in old.hits}  # the old space does not have it
    # The fallback embedded the text with the OLD model (rebuilt from the space name): the
    # top hit's score is the old model's cosine with that stored vector.
    with catalog.session() as s:
        old_id = _space_id(catalog, clip.space_name)
        stored = s.scalars(select(Vector).where(Vector.space_id == old_id, Vector.kind == "track")).all()
    from video_inst.vectors.codec import decode

    by_owner = dict(zip([v.owner_id for v in stored], decode([v.data for v in stored], clip.dim)))
    top = old.hits[0]
    if top.track_id in by_owner:
        expected = float(by_owner[top.track_id] @ clip.embed_texts(["water"])[0])
        assert top.score == pytest.approx(expected, abs=2e-3)

    stops = []

    def stop_after_first(done: int, total: int) -> None:
        stops.append((done, total))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reindex_clip(settings=settings, catalog=catalog, clip=clip_new, progress=stop_after_first)
    assert stops == [(1, 2)]  # the third video was already done at ingest
    with catalog.session() as s:
        job = s.scalars(select(Job).where(Job.kind == "reindex", Job.path == clip_new.space_name)).one()
        assert job.status == "running" and job.progress == pytest.approx(2 / 3)
    mid = searcher.search(Query(text="water", top_k=5))
    # 2 of 3 videos in each space: a tie goes to the configured space, with a note.
    assert mid.spaces["clip"] == clip_new.space_name
    assert any(f"1 video not yet in model space {clip_new.space_name}" in n for n in mid.notes)
    report = reindex_clip(settings=settings, catalog=catalog, clip=clip_new)
    assert report.done == [ids[1]] and sorted(report.skipped) == sorted([ids[0], ids[2]])
    with catalog.session() as s:
        assert s.get(Job, report.job_id).status == "done" and report.job_id == job.id
        new_id = _space_id(catalog, clip_new.space_name)
        assert set(s.scalars(select(VideoSpace.status).where(VideoSpace.space_id == new_id))) == {"done"}
    new = searcher.search(Query(text="water", top_k=5))
    assert new.hits and new.spaces["clip"] == clip_new.space_name and not new.notes
    assert all(c["missing"] == 0 and c["extra"] == 0 for c in _index_check(settings))
