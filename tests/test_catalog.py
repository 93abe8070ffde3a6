"""Catalog schema and data access on SQLite and on this machine's PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_factory import video_info
from sqlalchemy import inspect, select

from video_inst.catalog import repo
from video_inst.catalog.db import Catalog, current_revision, downgrade, head_revision, make_engine, upgrade
from video_inst.catalog.models import Keyframe, Shot, Video
from video_inst.errors import NotFoundError
from video_inst.media.types import Keyframe as KeyframeT
from video_inst.media.types import Shot as ShotT
from video_inst.media.types import ShotPlan

TABLES = {
    "videos",
    "shots",
    "keyframes",
    "jobs",
    "model_spaces",
    "tracks",
    "track_boxes",
    "track_labels",
    "vectors",
    "video_spaces",
    "index_state",
    "saved_searches",
    "saved_search_matches",
}


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    return request.getfixturevalue("pg_url")


def _plan() -> ShotPlan:
    shots = [ShotT(0, 0, 12800, 0.0, 1.0, 0, 24), ShotT(1, 12800, 25600, 1.0, 2.0, 25, 49)]
    keyframes = [KeyframeT(0, 2560, 0.2, 5), KeyframeT(1, 15360, 1.2, 30)]
    return ShotPlan(shots=shots, keyframes=keyframes, frame_count=50, end_pts=25600)


def test_migrations_build_the_schema_and_downgrade_back(db_url: str) -> None:
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    engine = make_engine(db_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    downgrade(db_url, "base")
    assert current_revision(db_url) is None
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(db_url)  # and up again from empty
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def _label_indexes(url: str) -> dict[str, list[str]]:
    engine = make_engine(url)
    try:
        return {ix["name"]: list(ix["column_names"]) for ix in inspect(engine).get_indexes("track_labels")}
    finally:
        engine.dispose()


def test_0003_swaps_the_label_index_for_a_covering_one_and_back(db_url: str) -> None:
    upgrade(db_url, "0002")
    assert _label_indexes(db_url)["ix_track_labels_label"] == ["label"]
    upgrade(db_url, "0003")
    indexes = _label_indexes(db_url)
    assert indexes["ix_track_labels_label_track_prob"] == ["label", "track_id", "prob"]
    assert "ix_track_labels_label" not in indexes
    downgrade(db_url, "0002")
    indexes = _label_indexes(db_url)
    assert indexes["ix_track_labels_label"] == ["label"]
    assert "ix_track_labels_label_track_prob" not in indexes
    assert current_revision(db_url) == "0002"


def test_shot_plan_round_trip_and_cascading_delete(db_url: str) -> None:
    catalog = Catalog(db_url, auto_upgrade=True)
    with catalog.session() as s:
        video = repo.upsert_video(
            s, path="/v/a.mp4", size=10, content_hash="ab" * 32, info=video_info("/v/a.mp4"), status="done"
        )
        kfs = repo.store_shot_plan(s, video=video, plan=_plan())
        video_id = video.id
        assert sorted(kfs) == [2560, 15360]
    with catalog.session() as s:
        shots = repo.list_shots(s, video_id=video_id)
        assert [(x.start_s, x.end_s, x.start_frame, x.end_frame) for x in shots] == [
            (0.0, 1.0, 0, 24),
            (1.0, 2.0, 25, 49),
        ]
        assert [[k.time_s for k in x.keyframes] for x in shots] == [[0.2], [1.2]]
        assert repo.find_video(s, ref=str(video_id)).id == video_id
        assert repo.find_video(s, ref="/v/a.mp4").id == video_id
        assert repo.find_video(s, ref="abababab").id == video_id
    with catalog.session() as s:
        repo.delete_video(s, video_id=video_id)
    with catalog.session() as s:
        assert s.scalars(select(Shot)).all() == []
        assert s.scalars(select(Keyframe)).all() == []
        with pytest.raises(NotFoundError, match="no video"):
            repo.find_video(s, ref="/v/a.mp4")
    catalog.engine.dispose()


def test_a_failure_touches_only_its_own_row(db_url: str) -> None:
    catalog = Catalog(db_url, auto_upgrade=True)
    with catalog.session() as s:
        good = repo.upsert_video(
            s, path="/v/good.mp4", size=10, content_hash="cd" * 32, info=video_info("x"), status="done"
        )
        repo.store_shot_plan(s, video=good, plan=_plan())
    with catalog.session() as s:
        bad = repo.record_failure(s, path="/v/bad.mp4", size=3, content_hash="ef" * 32, error="corrupt: boom")
        bad_id = bad.id
    with catalog.session() as s:
        rows = {v.path: v for v in s.scalars(select(Video))}
        assert rows["/v/good.mp4"].status == "done"
        assert rows["/v/bad.mp4"].status == "failed" and rows["/v/bad.mp4"].error == "corrupt: boom"
        assert len(s.scalars(select(Shot)).all()) == 2
        # Failing again with the same content reuses the row instead of adding one.
        again = repo.record_failure(s, path="/v/bad.mp4", size=3, content_hash="ef" * 32, error="still bad")
        assert again.id == bad_id
    catalog.engine.dispose()


def test_a_transaction_that_fails_leaves_nothing(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite3'}", auto_upgrade=True)
    with pytest.raises(RuntimeError), catalog.session() as s:
        video = repo.upsert_video(
            s, path="/v/a.mp4", size=1, content_hash="aa" * 32, info=video_info("x"), status="done"
        )
        repo.store_shot_plan(s, video=video, plan=_plan())
        raise RuntimeError("crash mid-ingest")
    with catalog.session() as s:
        assert s.scalars(select(Video)).all() == []
        assert s.scalars(select(Shot)).all() == []


def test_jobs_record_progress_and_timestamps(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite3'}", auto_upgrade=True)
    from video_inst.catalog import jobs

    jobs.create_job(catalog, job_id="j1", kind="ingest", path="/v/a.mp4")
    assert jobs.mark_running(catalog, "j1") and jobs.set_progress(catalog, "j1", 0.5)
    job = jobs.require_job(catalog, "j1")
    assert job["started_at"] is not None and job["finished_at"] is None and job["progress"] == 0.5
    assert jobs.end_job(catalog, "j1", status="done")
    job = jobs.require_job(catalog, "j1")
    assert job["finished_at"] is not None and job["progress"] == 1.0
    assert [j["job_id"] for j in jobs.list_jobs(catalog, status=["done"])] == ["j1"]


def test_migration_0002_backfills_track_spaces_and_downgrades_with_data(db_url: str) -> None:
    """0001 rows (a DASR and a CLIP track vector per track) get their DASR space; down keeps rows."""
    from sqlalchemy import text

    upgrade(db_url, "0001")
    engine = make_engine(db_url)
    now = "2026-11-27 00:00:00"
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO model_spaces (id, name, family, dim, params, created_at) VALUES "
                "(1, 'clip:x:y', 'clip', 4, '{}', :t), (2, 'dasr:b:s512:avg', 'dasr', 4, '{}', :t)"
            ),
            {"t": now},
        )
        c.execute(
            text(
                "INSERT INTO videos (id, path, size_bytes, status, warnings, rotation, start_pts, "
                "variable_frame_rate, truncated, created_at, updated_at) "
                "VALUES (1, 'a.mp4', 1, 'done', '[]', 0, 0, false, false, :t, :t)"
            ),
            {"t": now},
        )
        c.execute(
            text(
                "INSERT INTO shots (id, video_id, index, start_pts, end_pts, start_s, end_s, start_frame, "
                "end_frame) VALUES (1, 1, 0, 0, 10, 0, 1, 0, 24)".replace("index", '"index"')
            )
        )
        for track_id in (1, 2):
            c.execute(
                text(
                    "INSERT INTO tracks (id, video_id, shot_id, is_frame, start_s, end_s, score, labels) "
                    "VALUES (:i, 1, 1, false, 0, 1, 0.5, '[]')"
                ),
                {"i": track_id},
            )
        c.execute(
            text(
                "INSERT INTO vectors (space_id, kind, owner_id, video_id, data) VALUES "
                "(1, 'track', 1, 1, :d), (2, 'track', 1, 1, :d)"
            ),
            {"d": b"\0" * 8},
        )
        c.execute(text("INSERT INTO video_spaces (video_id, space_id, status) VALUES (1, 2, 'done')"))
        c.execute(
            text(
                "INSERT INTO keyframes (id, video_id, shot_id, pts, time_s, frame) "
                "VALUES (1, 1, 1, 5, 0.5, 12)"
            )
        )
        for track_id in (1, 2):
            c.execute(
                text(
                    "INSERT INTO track_boxes (track_id, keyframe_id, x0, y0, x1, y1, score) "
                    "VALUES (:i, 1, 0, 0, 10, 10, 0.5)"
                ),
                {"i": track_id},
            )
            c.execute(
                text("INSERT INTO track_labels (track_id, rank, label, prob) VALUES (:i, 0, 'tabby', 0.7)"),
                {"i": track_id},
            )

    def children() -> tuple[int, int]:
        with engine.connect() as c:
            return tuple(
                c.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in ("track_boxes", "track_labels")
            )

    upgrade(db_url)
    # SQLite rebuilds `tracks` for the new column: its DROP must not cascade into boxes and labels.
    assert children() == (2, 2)
    with engine.connect() as c:
        spaces = dict(c.execute(text("SELECT id, space_id FROM tracks ORDER BY id")).all())
    # Track 1 from its DASR vector (not the CLIP one); track 2 has none: from the video's DASR space.
    assert spaces == {1: 2, 2: 2}
    # Tracks of two DASR spaces cannot go below 0002 without merging them: refused, nothing lost.
    with engine.begin() as c:
        c.execute(text("UPDATE tracks SET space_id = 1 WHERE id = 2"))
    with pytest.raises(RuntimeError, match="several DASR model spaces"):
        downgrade(db_url, "0001")
    # PostgreSQL rolls the whole downgrade back (transactional DDL); SQLite keeps the later steps.
    assert current_revision(db_url) in {"0002", head_revision()}
    with engine.begin() as c:
        c.execute(text("UPDATE tracks SET space_id = 2 WHERE id = 2"))
    downgrade(db_url, "0001")
    assert current_revision(db_url) == "0001"
    assert "space_id" not in {col["name"] for col in inspect(engine).get_columns("tracks")}
    with engine.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM tracks")).scalar() == 2
    assert children() == (2, 2)
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    assert children() == (2, 2)
    engine.dispose()
