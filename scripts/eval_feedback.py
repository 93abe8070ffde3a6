"""Scores an editor can trust, relevance feedback and multi-exemplar queries, on the hard protocol.

Uses the edit, ground truth, queries, TUNING / TEST split and shot-level AP of
``scripts/eval_hard.py`` (issue 11; the same cache and ``--home`` catalog), and measures:

1. **Weak-score thresholds** (issue 16 item 4). Every hit of every crop query (top ``--top-k``)
   is a true hit (its shot holds the object), a distractor hit (its shot has no pasted object
   at all: the edit's distractor shots) or another object's shot. The DASR threshold is the
   ``--quantile`` of the distractor hits' scores on TUNING; on TEST the script reports what it
   keeps: the share of true hits at or above it and the share of distractor hits above it.
   Label text search (the ``WORDS`` of eval_hard) gets its own threshold the same way.
2. **Relevance feedback** (item 5). For each query, the top 5 shots are marked by the ground
   truth (right: the shot holds the object, else wrong), their tracks sent back as
   ``Query.positives`` / ``negatives`` with the same query (Rocchio), and the AP of the new
   ranking is compared with the first. Also "residual" AP: the 5 marked shots removed from
   both rankings and from the relevant set (what feedback finds beyond what was marked).
   ``--grid`` tries Rocchio weights on TUNING only.
3. **Multi-exemplar** (item 5): the object's photo with its box and the box on the edit's
   frame as one query (``Query.exemplars``), against each of them alone.

    PYTHONPATH=$PWD OMP_NUM_THREADS=2 .venv/bin/python scripts/eval_feedback.py --media ../shared/media \\
        --cache /tmp/bench/eval_hard --home /tmp/bench/eval_hard_home [--grid] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

import eval_hard as eh  # noqa: E402
from dasr_pastes import OBJECT_BOXES  # noqa: E402

MARK = 5
GRID = [(1.0, 0.75, 0.15), (1.0, 0.5, 0.0), (1.0, 1.0, 0.25), (1.0, 0.75, 0.0), (1.0, 1.5, 0.25)]


def ranked_shots(hits: list, shot_at, video_id: int) -> list[tuple[int, object]]:
    """(shot, hit) per distinct shot in rank order."""
    seen: set[int] = set()
    out = []
    for h in hits:
        if h.video_id != video_id:
            continue
        shot = shot_at(h.keyframe_s)
        if shot not in seen:
            seen.add(shot)
            out.append((shot, h))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=REPO.parent / "shared" / "media")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--distractors", type=int, default=8)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bench" / "eval_hard")
    ap.add_argument("--home", type=Path, required=True, help="catalog of the edit (made here when missing)")
    ap.add_argument("--top-k", type=int, default=50)
    ap.add_argument("--quantile", type=float, default=0.95, help="of distractor-hit scores (TUNING)")
    ap.add_argument("--grid", action="store_true", help="try the Rocchio weights of GRID on TUNING")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from video_inst.catalog.db import get_catalog
    from video_inst.config import Settings
    from video_inst.ingest.pipeline import ingest_path
    from video_inst.search.searcher import Query, Searcher

    folder = eh.edit_folder(args.cache, args.seed, args.distractors)
    truth = eh.render(args.media, folder, seed=args.seed, distractors=args.distractors)
    occ_of = eh.occurrences_by_object(truth)
    pasted = {o["shot"] for o in truth["occurrences"]}
    distractor_shots = {s["shot"] for s in truth["shots"]} - pasted
    settings = Settings(home=args.home, database_url=None, weak_score_dasr=None, weak_score_labels=None)
    result = ingest_path(folder / "edit.mp4", settings=settings, catalog=get_catalog(settings))
    if result.status not in ("done", "skipped") or result.video_id is None:
        raise SystemExit(f"ingest failed: {result.error}")
    video_id = result.video_id
    searcher = Searcher(settings)
    shot_at = eh.shot_locator(truth)
    queries: list[tuple[str, str, dict]] = [  # (object, kind, Query kwargs)
        (name, kind, {"image": image} if box is None else {"image": image, "box": box})
        for name, kind, image, box in eh.object_queries(
            args.media, truth, eh._decode_all(folder / "edit.mp4")
        )
    ]
    t0 = time.perf_counter()

    def run(weights: tuple[float, float, float]) -> list[dict]:
        searcher.settings = settings.model_copy(
            update={"feedback_alpha": weights[0], "feedback_beta": weights[1], "feedback_gamma": weights[2]}
        )
        rows = []
        for name, kind, kwargs in queries:
            relevant = {o["shot"] for o in occ_of[name]}
            first = ranked_shots(searcher.search(Query(top_k=args.top_k, **kwargs)).hits, shot_at, video_id)
            marked = first[:MARK]
            pos = [h.track_id for s, h in marked if s in relevant]
            neg = [h.track_id for s, h in marked if s not in relevant]
            again = ranked_shots(
                searcher.search(Query(top_k=args.top_k, positives=pos, negatives=neg, **kwargs)).hits,
                shot_at,
                video_id,
            )
            marked_shots = {s for s, _ in marked}
            rest = relevant - marked_shots
            rows.append(
                {
                    "name": name,
                    "split": eh.split_of(name),
                    "query": kind,
                    "ap_before": eh.average_precision([s for s, _ in first], relevant),
                    "ap_after": eh.average_precision([s for s, _ in again], relevant),
                    "residual_before": eh.average_precision(
                        [s for s, _ in first if s not in marked_shots], rest
                    )
                    if rest
                    else None,
                    "residual_after": eh.average_precision(
                        [s for s, _ in again if s not in marked_shots], rest
                    )
                    if rest
                    else None,
                    "marked_right": len(pos),
                    "scores": [
                        (
                            h.score,
                            "true" if s in relevant else ("distractor" if s in distractor_shots else "other"),
                        )
                        for s, h in first
                    ],
                }
            )
        return rows

    landed = (settings.feedback_alpha, settings.feedback_beta, settings.feedback_gamma)
    rows = run(landed)
    grid = {}
    if args.grid:
        for weights in GRID:
            tuned = [r for r in run(weights) if r["split"] == "tuning"]
            grid[str(weights)] = {
                "before": float(np.mean([r["ap_before"] for r in tuned])),
                "after": float(np.mean([r["ap_after"] for r in tuned])),
            }
        searcher.settings = settings
    report = {"feedback_weights": landed, "marked": MARK, "splits": {}, "grid": grid}
    for split in ("tuning", "test"):
        sel = [r for r in rows if r["split"] == split]
        res = [r for r in sel if r["residual_before"] is not None]
        report["splits"][split] = {
            "queries": len(sel),
            "mAP_before": float(np.mean([r["ap_before"] for r in sel])),
            "mAP_after": float(np.mean([r["ap_after"] for r in sel])),
            "residual_queries": len(res),
            "residual_mAP_before": float(np.mean([r["residual_before"] for r in res])),
            "residual_mAP_after": float(np.mean([r["residual_after"] for r in res])),
            "improved": sum(r["ap_after"] > r["ap_before"] + 1e-9 for r in sel),
            "worse": sum(r["ap_after"] < r["ap_before"] - 1e-9 for r in sel),
        }

    # --- thresholds: chosen on TUNING, checked on TEST
    def scores(split: str, kind: str) -> np.ndarray:
        return np.array([sc for r in rows if r["split"] == split for sc, k in r["scores"] if k == kind])

    threshold = float(np.quantile(scores("tuning", "distractor"), args.quantile))
    report["dasr_threshold"] = {"quantile": args.quantile, "value": round(threshold, 3)}
    for split in ("tuning", "test"):
        true, dis, other = scores(split, "true"), scores(split, "distractor"), scores(split, "other")
        report["dasr_threshold"][split] = {
            "true_hits": len(true),
            "true_kept": float(np.mean(true >= threshold)),
            "distractor_hits": len(dis),
            "distractor_kept": float(np.mean(dis >= threshold)),
            "other_hits": len(other),
            "other_kept": float(np.mean(other >= threshold)),
            "true_median": float(np.median(true)),
            "distractor_median": float(np.median(dis)),
        }
    report["labels_threshold"] = label_threshold(searcher, truth, shot_at, video_id, distractor_shots, args)
    # --- multi-exemplar: photo+box and frame+box of one object as one query
    multi = []
    by_query = {(r["name"], r["query"]): r for r in rows}
    for name, kind, kwargs in queries:
        if kind != "photo+box":
            continue
        frame = next(kw for nm, kd, kw in queries if nm == name and kd == "frame+box")
        relevant = {o["shot"] for o in occ_of[name]}
        q = Query(top_k=args.top_k, **kwargs, exemplars=[(frame["image"], frame["box"])])
        both = ranked_shots(searcher.search(q).hits, shot_at, video_id)
        multi.append(
            {
                "split": eh.split_of(name),
                "both": eh.average_precision([s for s, _ in both], relevant),
                "photo+box": by_query[(name, "photo+box")]["ap_before"],
                "frame+box": by_query[(name, "frame+box")]["ap_before"],
            }
        )
    report["multi_exemplar"] = {
        split: {
            k: float(np.mean([m[k] for m in multi if m["split"] == split]))
            for k in ("photo+box", "frame+box", "both")
        }
        for split in ("tuning", "test")
    }
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"report": report, "rows": rows}, indent=1))


def label_threshold(searcher, truth: dict, shot_at, video_id: int, distractor_shots: set[int], args) -> dict:
    """The label-search threshold: the same quantile of label hits on distractor shots (TUNING words)."""
    from video_inst.search.searcher import Query

    tuning_names = {nm for nm in OBJECT_BOXES if eh.split_of(nm) == "tuning"}
    out: dict = {}
    per_split: dict[str, dict[str, list[float]]] = {"tuning": {}, "test": {}}
    for word in sorted({w for w in eh.WORDS.values() if w}):
        names = {nm for nm, w in eh.WORDS.items() if w == word}
        split = "tuning" if names & tuning_names else "test"
        relevant = {o["shot"] for o in truth["occurrences"] if o["name"] in names}
        res = searcher.search(Query(text=word, top_k=args.top_k))
        for s, h in ranked_shots(res.hits, shot_at, video_id):
            kind = "true" if s in relevant else ("distractor" if s in distractor_shots else "other")
            per_split[split].setdefault(kind, []).append(h.score)
    dis = np.array(per_split["tuning"].get("distractor", []))
    if not len(dis):
        return {"value": None, "why": "no label hit on a distractor shot"}
    value = float(np.quantile(dis, args.quantile))
    out["value"] = round(value, 4)
    for split, kinds in per_split.items():
        out[split] = {
            k: {"hits": len(v), "kept": float(np.mean(np.array(v) >= value))} for k, v in kinds.items()
        }
    return out


if __name__ == "__main__":
    main()
