"""Size and cost of a staged chunk (plain data as JSON, docs/WORKERS.md) for one clip.

Plans and analyses the whole clip as one chunk in a scratch data dir, then prints the
JSON's size against a pickle of the same plain data, and the seconds to encode and decode
it (best of ``--runs``). Vectors must come back bit for bit; the script checks that too.

    PYTHONPATH=. .venv/bin/python scripts/bench_chunk_json.py tests/media/clips/flower.mp4
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np

from video_inst.analysis.data import ChunkResult, from_json, to_json
from video_inst.config import Settings
from video_inst.ingest.pipeline import analyse_shots, plan_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        planned = plan_video(args.clip.resolve(), settings)
        chunk = analyse_shots(planned, settings)
        assert chunk.analysis is not None
        encode, decode = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            text = to_json(chunk)
            t1 = time.perf_counter()
            back = from_json(text, ChunkResult)
            decode.append(time.perf_counter() - t1)
            encode.append(t1 - t0)
        assert back.analysis is not None
        for a, b in zip(chunk.analysis.tracks, back.analysis.tracks, strict=True):
            assert np.array_equal(a.vectors, b.vectors) and np.array_equal(a.boxes, b.boxes)
        pickled = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
        print(
            f"{args.clip.name}: keyframes={len(planned.plan.keyframes)} tracks={len(chunk.analysis.tracks)} "
            f"json_bytes={len(text)} pickle_bytes={len(pickled)} ratio={len(text) / len(pickled):.2f} "
            f"encode_s={min(encode):.4f} decode_s={min(decode):.4f}"
        )


if __name__ == "__main__":
    main()
