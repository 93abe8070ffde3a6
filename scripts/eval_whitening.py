"""Crop-search mean AP on the 19-shot edit with and without PCA-whitening of the DASR space.

The queries and ground truth are those of tests/test_search_retrieval.py (imported, not
copied). The whitening is fitted on the vectors of the SHARED CLIPS only ("fitted on a
separate sample", DESIGN.md §3 step 9), never on the edit; the edit's vectors are then
whitened like every other video's, and the queries search the edit alone (as in the test).
Each (dim, shrinkage) is a derived space of its own (``fit-whitening --refit``), chosen per
search through ``Settings.dasr_whitening``. Prints a table; asserts nothing.

    .venv/bin/python scripts/eval_whitening.py --home /tmp/whiten_eval           # reuses ingests
    .venv/bin/python scripts/eval_whitening.py --home /tmp/whiten_eval --dims 64,256 --shrinkage 0.1

AP is over the full ranking of the edit's 19 shots (top_k 19); "top-3" counts the queries whose
shots of the instance all rank in the first 3 (the test's per-query criterion); "gap" is the
mean scale-free margin between the instance's weakest shot and the strongest other shot
(``evaluate``); "sample" is vectors/videos fitted on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from test_search_retrieval import QUERIES, _middle_frame, average_precision  # noqa: E402

from video_inst.analysis.analyser import build_analyser  # noqa: E402
from video_inst.config import Settings  # noqa: E402
from video_inst.ingest.pipeline import ingest_path  # noqa: E402
from video_inst.search.searcher import Query, Searcher  # noqa: E402
from video_inst.spaces.whitened import fit_whitened_space  # noqa: E402
from video_inst.spaces.whitening import WhiteningError  # noqa: E402

CLIP_SUFFIXES = (".mp4", ".webm", ".gif", ".mov", ".mkv")


def evaluate(
    searcher: Searcher, edit: Path, edit_id: int, shots: list[dict]
) -> tuple[float, int, float, str]:
    """(mean AP, queries with all relevant shots in the top 3, mean gap, the space that answered).

    gap: per query, (weakest relevant shot's score - strongest other shot's score) / std of the
    scores of all shots; scale-free, so spaces compare, and still informative when AP is 1.
    """
    aps, top3, gaps, spaces = [], 0, [], set()
    for source, box, relevant in QUERIES:
        image = _middle_frame(edit, shots[source])
        result = searcher.search(Query(image=image, box=box, top_k=len(shots), video_ids=[edit_id]))
        ranked = [h.shot.index for h in result.hits]
        aps.append(average_precision(ranked, relevant))
        top3 += relevant <= set(ranked[:3])
        scores = {h.shot.index: h.score for h in result.hits}
        rel = [v for k, v in scores.items() if k in relevant]
        other = [v for k, v in scores.items() if k not in relevant]
        if rel and other:
            gaps.append((min(rel) - max(other)) / max(float(np.std(list(scores.values()))), 1e-9))
        spaces.add(result.spaces.get("dasr", "none"))  # family -> space: the DASR space that answered
    return float(np.mean(aps)), top3, float(np.mean(gaps)), ",".join(sorted(spaces))


def main() -> None:
    default_media = Path(os.environ.get("VIDEO_INST_TEST_MEDIA", REPO.parent / "shared" / "media"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=default_media)
    ap.add_argument("--home", type=Path, required=True, help="Data dir (kept: a rerun reuses its ingests).")
    ap.add_argument("--dims", default="64,256,full", help="Output dims; 'full' = the DASR dim.")
    ap.add_argument(
        "--shrinkage", default="auto,0,0.1,0.5,1", help="Shrinkages to try; auto = Ledoit-Wolf (marked *)."
    )
    ap.add_argument("--sample", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clips", help="Comma-separated clip file names to fit on (default: every shared clip).")
    args = ap.parse_args()

    settings = Settings(home=args.home, database_url=None, device="cpu")
    edit = args.media / "edits" / "instance_test_edit.mp4"
    clips = sorted(p for p in (args.media / "clips").iterdir() if p.suffix in CLIP_SUFFIXES)
    if args.clips:
        clips = [p for p in clips if p.name in args.clips.split(",")]
    analyser = build_analyser(settings)
    clip_ids = []
    started = time.perf_counter()
    for path in clips:
        result = ingest_path(path, settings=settings, analyser=analyser)
        if result.status in ("done", "skipped"):
            clip_ids.append(result.video_id)
        else:
            print(f"skipped {path.name}: {result.status} {result.error}")
    edit_result = ingest_path(edit, settings=settings, analyser=analyser)
    assert edit_result.status in ("done", "skipped"), edit_result.error
    print(f"ingest (or reuse): {len(clip_ids)} clips + the edit in {time.perf_counter() - started:.0f} s")
    shots = json.loads(edit.with_suffix(".shots.json").read_text())["shots"]
    dasr = analyser.dasr

    def searcher(whitening: str) -> Searcher:
        return Searcher(settings.model_copy(update={"dasr_whitening": whitening}), dasr=dasr)

    base_map, base_top3, base_gap, base_space = evaluate(searcher("off"), edit, edit_result.video_id, shots)
    n = len(QUERIES)
    print(f"\n{'space':<58} {'dim':>5} {'shrink':>7} {'sample':>9} {'mAP':>6} {'top-3':>5} {'gap':>6}")
    print(
        f"{base_space:<58} {dasr.dim:>5} {'-':>7} {'-':>9} {base_map:6.3f} {base_top3:>3}/{n} {base_gap:6.2f}"
    )
    dims = [dasr.dim if d == "full" else int(d) for d in args.dims.split(",")]
    for dim in dims:
        for shrink in (None if s == "auto" else float(s) for s in args.shrinkage.split(",")):
            try:
                report = fit_whitened_space(
                    settings=settings,
                    base_name=dasr.space_name,
                    sample=args.sample,
                    dim=dim,
                    seed=args.seed,
                    shrinkage=shrink,
                    refit=True,
                    sample_videos=clip_ids,
                )
            except WhiteningError as exc:
                print(f"{'(not fitted)':<58} {dim:>5} {shrink or 'auto':>7} {exc.message}")
                continue
            mean_ap, top3, gap, space = evaluate(searcher(report.space), edit, edit_result.video_id, shots)
            assert space == report.space, (space, report.space)
            sample = f"{report.sample}/{report.sample_videos}"
            used = f"{report.shrinkage:.3g}" + ("*" if shrink is None else "")
            print(f"{space:<58} {dim:>5} {used:>7} {sample:>9} {mean_ap:6.3f} {top3:>3}/{n} {gap:6.2f}")


if __name__ == "__main__":
    main()
