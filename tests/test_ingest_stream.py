"""One decode pass (plan_and_analyse) gives the two-pass ingest's results on a real multi-shot clip.

The clip is cut from four of the licensed clips (real texture and motion, four hard cuts),
encoded with B-frames. DASR runs EfficientNet-Lite0 with its real weights; CLIP is the
tiny randomly initialised model of conftest (plumbing: frame vectors and track crops).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from video_inst.analysis.analyser import build_analyser
from video_inst.config import get_settings
from video_inst.ingest import pipeline as ingest_module
from video_inst.ingest.pipeline import analyse_shots, ingest_path, plan_and_analyse, plan_video


@pytest.fixture(scope="module")
def real_edit(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_path = tmp_path_factory.mktemp("edit") / "four_shots.mp4"
    with av.open(str(out_path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 480, 272, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "22", "g": "25", "bf": "3"}
        n = 0
        for name in ("flower.mp4", "friday.mp4", "sintel_snow.mp4", "stream-of-water.mp4"):
            with av.open(str(shared_media / "clips" / name)) as src:
                for i, frame in enumerate(src.decode(video=0)):
                    if i >= 45:
                        break
                    rgb = frame.to_ndarray(width=480, height=272, format="rgb24")
                    small = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    small.pts, n = n, n + 1
                    for packet in stream.encode(small):
                        out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return out_path


def _assert_same_analysis(one, two) -> None:  # noqa: ANN001 - two AnalysisData
    assert len(one.tracks) == len(two.tracks)
    for a, b in zip(one.tracks, two.tracks):
        assert (a.shot_index, a.is_frame, a.start_s, a.end_s, a.labels) == (
            b.shot_index,
            b.is_frame,
            b.start_s,
            b.end_s,
            b.labels,
        )
        assert a.keyframe_pts == b.keyframe_pts
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)
        np.testing.assert_allclose(a.representative, b.representative, atol=1e-5)
        assert (a.clip_vector is None) == (b.clip_vector is None)
        if a.clip_vector is not None:
            np.testing.assert_allclose(a.clip_vector, b.clip_vector, atol=1e-5)
    assert one.frame_pts == two.frame_pts
    if one.frame_vectors is not None:
        np.testing.assert_allclose(one.frame_vectors, two.frame_vectors, atol=1e-5)


def test_one_pass_equals_two_passes(
    vi_home: Path,
    real_edit: Path,
    clip,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    settings = get_settings()
    analyser = build_analyser(settings, clip=clip)
    planned = plan_video(real_edit, settings)
    two = analyse_shots(planned, settings, analyser=analyser).analysis
    thumbs = sorted(p.name for p in settings.thumbnail_dir.rglob("*.jpg"))
    for p in settings.thumbnail_dir.rglob("*.jpg"):
        p.unlink()

    def no_second_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("the stream disagreed with the plan: the two-pass fallback ran")

    monkeypatch.setattr(ingest_module, "analyse_shots", no_second_pass)
    planned_one, chunk = plan_and_analyse(real_edit, settings, digest=planned.digest, analyser=analyser)
    one = chunk.analysis
    assert len(planned.plan.shots) >= 4
    assert planned_one.plan == planned.plan  # same shots and keyframe timestamps
    assert sorted(p.name for p in settings.thumbnail_dir.rglob("*.jpg")) == thumbs
    assert len(one.tracks) > len(planned.plan.shots)
    _assert_same_analysis(one, two)


def test_ingest_path_streams_and_stores(vi_home: Path, real_edit: Path, clip) -> None:  # noqa: ANN001
    settings = get_settings()
    result = ingest_path(real_edit, settings=settings, analyser=build_analyser(settings, clip=clip))
    assert result.status == "done" and result.shots >= 4 and result.tracks > result.shots
    stored = {p.name for p in settings.thumbnail_dir.rglob("*.jpg")}
    assert len(stored) == result.keyframes


def test_parallel_analysis_workers_give_the_same_analysis(
    vi_home: Path,
    real_edit: Path,
    clip,  # noqa: ANN001
    request: pytest.FixtureRequest,
) -> None:
    """Batches analysed in several threads at once (one torch thread each) equal one at a time."""
    import torch

    request.addfinalizer(lambda threads=torch.get_num_threads(): torch.set_num_threads(threads))
    # One torch thread in both runs (what each parallel worker gets here): the same arithmetic,
    # so any difference is the threading's (order, shared state), not a thread count's rounding.
    torch.set_num_threads(1)
    base = get_settings()
    planned = plan_video(real_edit, base)
    results = []
    for workers in (1, 3):
        settings = base.model_copy(update={"analysis_workers": workers, "analysis_batch": 2})
        analyser = build_analyser(settings, clip=clip)
        chunk = analyse_shots(planned, settings, analyser=analyser)
        assert chunk.analysis is not None
        results.append(chunk.analysis)
    assert len(planned.plan.keyframes) > 3 * 2  # more batches than workers: several in flight
    assert len(results[0].tracks) > len(planned.plan.shots)
    _assert_same_analysis(results[1], results[0])


@pytest.mark.parametrize("omp", ["1", "2"])
def test_analysis_workers_share_the_thread_budget(omp: str) -> None:
    """N workers get OMP_NUM_THREADS // N torch threads (what a Celery child is given); default 1."""
    import os
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from video_inst.analysis import analyser as a\n"
        "from video_inst.config import Settings\n"
        "default = a.analysis_workers(Settings())\n"
        "a._fit_torch_threads(default)\n"
        "kept = torch.get_num_threads()\n"
        "a._fit_torch_threads(a.analysis_workers(Settings(analysis_workers=2)))\n"
        "print(a.cpu_cores(), a.cpu_budget(), default, kept, torch.get_num_threads())\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": omp}
    env.pop("VIDEO_INST_ANALYSIS_WORKERS", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    cores, budget, default, kept, two_workers_threads = map(int, out.stdout.split())
    assert budget == min(cores, int(omp))
    assert default == 1 and kept == budget
    assert two_workers_threads == max(1, budget // 2)


def test_a_prefork_worker_shares_the_cores_between_its_processes() -> None:
    """N pool processes get cores // N torch threads each, unless OMP_NUM_THREADS is already set."""
    import os
    import subprocess
    import sys

    code = (
        "import os\n"
        "from workers.app import share_cores_between_processes\n"
        "share_cores_between_processes(int(os.environ['N']))\n"
        "print(os.environ['OMP_NUM_THREADS'], len(os.sched_getaffinity(0)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    for n in (1, 2, 64):
        out = subprocess.run(
            [sys.executable, "-c", code], env={**env, "N": str(n)}, capture_output=True, text=True
        )
        threads, cores = map(int, out.stdout.split())
        assert threads == max(1, cores // n)
    kept = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "N": "2", "OMP_NUM_THREADS": "7"},
        capture_output=True,
        text=True,
    )
    assert kept.stdout.split()[0] == "7"
