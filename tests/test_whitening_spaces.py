"""`video-inst fit-whitening` on a real catalog of ingested shared clips: space, resume, ingest, search.

Real parts throughout: the offline DASR backbone, SQLite, FAISS files, and the CLI as a real
process. Dimensions are small (16) because three short clips hold only a few hundred vectors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from video_inst.analysis.analyser import build_analyser
from video_inst.catalog.db import get_catalog
from video_inst.catalog.models import Keyframe, ModelSpace, Track, Vector, Video, VideoSpace
from video_inst.config import Settings
from video_inst.ingest.pipeline import delete_video, ingest_path
from video_inst.search.searcher import Query, Searcher
from video_inst.spaces.whitened import fit_whitened_space, whitening_of
from video_inst.spaces.whitening import WhiteningError
from video_inst.vectors.codec import decode

CLIPS = ("realshort.mp4", "sintel_snow.mp4", "stream-of-water.mp4")
DIM = 16


@pytest.fixture(scope="module")
def dasr():
    from video_inst.models.loading import load_dasr

    return load_dasr(Settings(device="cpu"))


@pytest.fixture(scope="module")
def template(shared_media: Path, tmp_path_factory: pytest.TempPathFactory, dasr) -> Path:
    """A data dir with three shared clips ingested (DASR only), copied afresh for each test."""
    home = tmp_path_factory.mktemp("whiten_template") / "home"
    settings = Settings(home=home, database_url=None, device="cpu")
    analyser = build_analyser(settings, dasr=dasr)
    for name in CLIPS:
        result = ingest_path(shared_media / "clips" / name, settings=settings, analyser=analyser)
        assert result.status == "done", result.error
    get_catalog(settings).engine.dispose()
    return home


@pytest.fixture
def settings(template: Path, tmp_path: Path) -> Settings:
    home = tmp_path / "home"
    shutil.copytree(template, home)
    return Settings(home=home, database_url=None, device="cpu", dasr_whitening="auto")


def run_cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_INST_")}
    environ.update(VIDEO_INST_HOME=str(home), VIDEO_INST_DEVICE="cpu", **env)
    return subprocess.run(
        [sys.executable, "-c", "from video_inst.cli import main; main()", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def fit_cli(home: Path, *args: str) -> dict:
    proc = run_cli(home, "fit-whitening", "--dim", str(DIM), "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rows(settings: Settings, space_name: str) -> dict[tuple[str, int], tuple[int, bytes]]:
    """(kind, owner) -> (video, blob) of every vector of one space."""
    with get_catalog(settings).session() as s:
        found = s.execute(
            select(Vector.kind, Vector.owner_id, Vector.video_id, Vector.data)
            .join(ModelSpace, ModelSpace.id == Vector.space_id)
            .where(ModelSpace.name == space_name)
        ).all()
    return {(k, int(o)): (int(v), bytes(d)) for k, o, v, d in found}


def base_name(dasr) -> str:
    return dasr.space_name


def space_videos(settings: Settings, name: str) -> set[int]:
    with get_catalog(settings).session() as s:
        return set(
            s.scalars(
                select(VideoSpace.video_id)
                .join(ModelSpace, ModelSpace.id == VideoSpace.space_id)
                .where(ModelSpace.name == name, VideoSpace.status == "done")
            )
        )


def assert_complete(settings: Settings, base: str, derived: str) -> None:
    """Every base vector has its whitened counterpart (same kind, owner, video; whitened values)."""
    base_rows, derived_rows = rows(settings, base), rows(settings, derived)
    assert base_rows and set(derived_rows) == set(base_rows)
    with get_catalog(settings).session() as s:
        space = s.scalars(select(ModelSpace).where(ModelSpace.name == derived)).one()
        whitening = whitening_of(space)
        base_dim = s.scalar(select(ModelSpace.dim).where(ModelSpace.name == base))
    keys = sorted(base_rows)
    assert [derived_rows[k][0] for k in keys] == [base_rows[k][0] for k in keys]
    got = decode([derived_rows[k][1] for k in keys], DIM)
    want = whitening.apply(decode([base_rows[k][1] for k in keys], base_dim))
    np.testing.assert_allclose(got, want, atol=2e-3)  # float16 storage
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=2e-3)
    assert space_videos(settings, derived) == space_videos(settings, base)


def indexes_agree(settings: Settings) -> bool:
    """SQL and every FAISS index agree (in-process; the CLI's `index check` runs in the first test)."""
    from video_inst.vectors.store import get_index_store

    store = get_index_store(settings)
    return all(store.check_consistency(space_id, kind).ok for space_id, kind in store.known_indexes())


def fit(settings: Settings, dasr, **kwargs) -> dict:
    """fit-whitening in this process (the CLI itself is exercised by the first tests)."""
    kwargs.setdefault("dim", DIM)
    report = fit_whitened_space(settings=settings, base_name=dasr.space_name, **kwargs)
    return {"space": report.space, "space_id": report.space_id}


def index_check(home: Path) -> dict[int, dict]:
    proc = run_cli(home, "index", "check", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {(r["space_id"], r["kind"]): r for r in json.loads(proc.stdout)}


def test_fit_whitening_cli_derives_a_complete_space_and_leaves_the_base_alone(
    settings: Settings, dasr
) -> None:
    base = base_name(dasr)
    before = rows(settings, base)
    index_dir = settings.index_dir
    base_files = {p.name: p.read_bytes() for p in index_dir.glob("*.faiss")}

    report = fit_cli(settings.home, "--sample", "5000", "--seed", "3")

    assert report["base"] == base and not report["resumed"]
    assert report["space"].startswith(f"{base}+pcaw{DIM}-") and report["dim"] == DIM
    assert report["sample"] == len(before)  # fewer stored than asked: all of them
    assert report["sample_videos"] == len(CLIPS) and len(report["done"]) == len(CLIPS)
    assert report["vectors"] == len(before)
    assert_complete(settings, base, report["space"])
    assert rows(settings, base) == before
    assert {p.name: p.read_bytes() for p in index_dir.glob("*.faiss") if p.name in base_files} == base_files
    with get_catalog(settings).session() as s:
        space = s.scalars(select(ModelSpace).where(ModelSpace.name == report["space"])).one()
        assert space.family == "dasr" and space.dim == DIM
        assert space.params["base_space"] == base
        assert space.params["whitening"]["sample"] == report["sample"]
        assert space.params["whitening"]["seed"] == 3
    checked = index_check(settings.home)
    entry = checked[(report["space_id"], "region")]
    assert entry["sql"] == entry["index"] > 0 and entry["missing"] == entry["extra"] == 0
    assert (report["space_id"], "track") not in checked  # DASR track vectors: SQL only, no index

    # Same data, same seed: the same space, nothing left to do.
    again = fit_whitened_space(settings=settings, base_name=base, sample=5000, dim=DIM, seed=3)
    assert again.space == report["space"] and again.done == [] and len(again.skipped) == len(CLIPS)


def test_too_small_a_sample_is_a_clear_error_and_writes_nothing(settings: Settings, dasr) -> None:
    proc = run_cli(settings.home, "fit-whitening", "--sample", "10", "--dim", "64")
    assert proc.returncode == 1
    assert "too few vectors to fit a 64-dimensional whitening" in proc.stderr
    assert "10 stored region/track vectors from" in proc.stderr and "at least 65 needed" in proc.stderr
    with get_catalog(settings).session() as s:
        assert (
            s.scalar(select(func.count()).select_from(ModelSpace).where(ModelSpace.whitening.is_not(None)))
            == 0
        )
    with pytest.raises(WhiteningError, match="--dim must be between 1 and"):
        fit_whitened_space(settings=settings, base_name=dasr.space_name, dim=100_000)


def _stop_after(n: int, also: Callable[[], None] | None = None) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        if also is not None and done == 1:
            also()
        if done == n:
            raise KeyboardInterrupt("injected: stopped mid-run")

    return progress


def test_an_interrupted_fill_leaves_search_on_the_base_and_the_cli_resumes_it(
    settings: Settings, dasr
) -> None:
    base = base_name(dasr)
    with pytest.raises(KeyboardInterrupt):
        fit_whitened_space(settings=settings, base_name=base, sample=5000, dim=DIM, progress=_stop_after(1))
    with get_catalog(settings).session() as s:
        derived = s.scalars(select(ModelSpace).where(ModelSpace.whitening.is_not(None))).one().name
    assert len(space_videos(settings, derived)) == 1  # the first video's transaction committed
    assert all(v == min(space_videos(settings, base)) for v, _ in rows(settings, derived).values())

    # Incomplete: an image query is answered by the base space, which is whole.
    searcher = Searcher(settings, dasr=dasr)
    image = np.full((96, 128, 3), 120, dtype=np.uint8)
    assert searcher.search(Query(image=image, top_k=3)).spaces["dasr"] == base

    report = fit_cli(settings.home)  # no refit: resumes the incomplete space
    assert report["resumed"] and report["space"] == derived
    assert len(report["done"]) == len(CLIPS) - 1 and len(report["skipped"]) == 1
    assert_complete(settings, base, derived)
    assert searcher.search(Query(image=image, top_k=3)).spaces["dasr"] == derived
    assert indexes_agree(settings)


def test_a_video_deleted_mid_run_is_skipped_and_the_space_still_completes(settings: Settings, dasr) -> None:
    base = base_name(dasr)
    videos = sorted(space_videos(settings, base))
    report = fit_whitened_space(
        settings=settings,
        base_name=base,
        sample=5000,
        dim=DIM,
        progress=_stop_after(0, also=lambda: delete_video(videos[-1], settings=settings)),
    )
    assert report.vanished == [videos[-1]] and report.done == videos[:-1]
    assert_complete(settings, base, report.space)
    assert indexes_agree(settings)


def test_a_new_ingest_after_fitting_gets_whitened_vectors(
    settings: Settings, shared_media: Path, dasr
) -> None:
    base = base_name(dasr)
    report = fit(settings, dasr)
    result = ingest_path(
        shared_media / "clips" / "friday.mp4",
        settings=settings,
        analyser=build_analyser(settings, dasr=dasr),
    )
    assert result.status == "done", result.error
    assert result.video_id in space_videos(settings, report["space"])
    assert any(v == result.video_id for v, _ in rows(settings, report["space"]).values())
    assert_complete(settings, base, report["space"])
    assert indexes_agree(settings)


def test_search_with_whitening_answers_from_the_whitened_space_and_off_uses_the_base(
    settings: Settings, shared_media: Path, dasr
) -> None:
    import av

    base = base_name(dasr)
    report = fit(settings, dasr)
    with get_catalog(settings).session() as s:
        video = s.scalars(select(Video).where(Video.path.like("%sintel_snow.mp4"))).one()
        keyframe = s.scalars(
            select(Keyframe).where(Keyframe.video_id == video.id).order_by(Keyframe.pts)
        ).first()
        track_id = s.scalars(
            select(Track.id).where(Track.video_id == video.id, Track.is_frame.is_(False))
        ).first()
        video_path, frame_no = video.path, keyframe.frame
    with av.open(video_path) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == frame_no:
                image = frame.to_ndarray(format="rgb24")
                break

    whitened = Searcher(settings, dasr=dasr).search(Query(image=image, top_k=5))
    assert whitened.spaces["dasr"] == report["space"]
    assert whitened.to_json()["spaces"]["dasr"] == report["space"]
    assert whitened.hits and whitened.hits[0].video_id == video.id  # a frame of it finds itself first
    assert whitened.hits[0].score > 0.9

    plain = Searcher(settings.model_copy(update={"dasr_whitening": "off"}), dasr=dasr).search(
        Query(image=image, top_k=5)
    )
    assert plain.spaces["dasr"] == base and plain.hits[0].video_id == video.id
    assert Settings.model_fields["dasr_whitening"].default == "off"  # until whitening is shown to help

    named = Searcher(settings.model_copy(update={"dasr_whitening": report["space"]}), dasr=dasr)
    assert named.search(Query(image=image, top_k=5)).spaces["dasr"] == report["space"]

    more = Searcher(settings, dasr=dasr).search(Query(track_id=track_id, top_k=5))
    assert more.spaces["dasr"] == report["space"] and more.hits
    assert all(h.track_id != track_id for h in more.hits)


def test_fit_refuses_a_space_that_is_itself_whitened(settings: Settings, dasr) -> None:
    report = fit(settings, dasr)
    with pytest.raises(WhiteningError, match="itself whitened"):
        fit_whitened_space(settings=settings, base_name=report["space"], dim=4)


def test_spaces_list_shows_whitened_copies_and_dropping_the_base_drops_them(settings: Settings, dasr) -> None:
    """A copy is visible (and droppable by name); it cannot outlive the vectors it was computed from."""
    report = fit(settings, dasr)
    base = base_name(dasr)
    proc = run_cli(settings.home, "spaces", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = {row["name"]: row for row in json.loads(proc.stdout)}
    copy = listed[report["space"]]
    assert copy["derived_from"] == base and not copy["active"] and copy["dim"] == DIM
    assert copy["videos"] == copy["total"] == len(CLIPS)
    assert listed[base]["derived_from"] is None and listed[base]["active"]
    text = run_cli(settings.home, "spaces", "list").stdout
    assert f"whitened copy of {base}" in text

    refused = run_cli(settings.home, "spaces", "drop", base)
    assert refused.returncode != 0 and "answers dasr searches" in refused.stderr
    assert rows(settings, report["space"]), "a refused drop removes nothing"
    dropped = run_cli(settings.home, "spaces", "drop", base, "--force")
    assert dropped.returncode == 0, dropped.stderr
    assert f"dropped {report['space']} with it" in dropped.stdout
    with get_catalog(settings).session() as s:
        assert list(s.scalars(select(ModelSpace.name).where(ModelSpace.family == "dasr"))) == []
        assert s.scalar(select(func.count()).select_from(Vector)) == 0
    assert not list(settings.index_dir.glob(f"{report['space_id']}-*"))
    assert index_check(settings.home) == {}


def test_the_whitened_choice_is_cached_until_the_catalog_changes(
    settings: Settings, dasr, monkeypatch: pytest.MonkeyPatch
) -> None:
    import video_inst.spaces.whitened as ws

    first = fit(settings, dasr)
    base = base_name(dasr)
    calls: list[tuple] = []
    real = ws._choose_whitened
    monkeypatch.setattr(ws, "_choose_whitened", lambda *args: calls.append(args) or real(*args))
    with get_catalog(settings).session() as s:
        assert ws.choose_whitened_space(s, base, "auto").name == first["space"]
        assert ws.choose_whitened_space(s, base, "auto").name == first["space"]
    assert len(calls) == 1, "the second query reused the choice"
    second = fit(settings, dasr, dim=8)  # a newer complete copy: the catalog changed
    with get_catalog(settings).session() as s:
        assert ws.choose_whitened_space(s, base, "auto").name == second["space"]
        assert ws.choose_whitened_space(s, base, first["space"]).name == first["space"]
    assert len(calls) == 3
