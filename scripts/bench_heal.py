"""Cost of index damage detection and of the server's exact search over SQL during a repair.

Builds N random unit vectors (dim 512) in a temporary SQLite catalog and a Flat index, then
times: the load with its CRC32 check, the CRC32 alone over the file, the SQL aggregate
(count/max/sum of ids), ``check_files`` (every header against SQL), a rebuild from SQL, and
one exact query answered from SQL as a server does while the index is repaired.

    .venv/bin/python scripts/bench_heal.py --n 100000
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
import zlib
from pathlib import Path

import faiss
import numpy as np

from video_inst.catalog.db import Catalog
from video_inst.catalog.models import Video
from video_inst.config import Settings
from video_inst.vectors.index import VectorIndex
from video_inst.vectors.store import IndexStore


def timed(fn, repeat: int = 3) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(f"sqlite:///{Path(tmp) / 'c.sqlite3'}", auto_upgrade=True)
        store = IndexStore(
            Path(tmp) / "index", catalog, Settings(exact_index_max=10**9), exact_fallback_max=10**9
        )
        with catalog.session() as s:
            video = Video(path=f"/v-{uuid.uuid4().hex[:6]}.mp4")
            s.add(video)
            s.flush()
            vid = video.id
        rng = np.random.default_rng(0)
        step = 20_000
        for start in range(0, args.n, step):
            m = min(step, args.n - start)
            with catalog.session() as s:
                space = store.ensure_space(s, "dasr:bench", "dasr", args.dim, {})
                store.add_vectors(
                    s, space, "region", range(start, start + m), [vid] * m, rng.standard_normal((m, args.dim))
                )
        sid = space.id
        store.sync(sid, "region")
        path = store.index_path(sid, "region")
        size = path.stat().st_size
        load = timed(lambda: VectorIndex.load(path))
        raw = path.read_bytes()
        crc = timed(lambda: zlib.crc32(raw))
        agg = timed(lambda: store._sql_fingerprint(sid, "region"))
        heads = timed(lambda: store.check_files())
        rebuild = timed(lambda: store.rebuild(sid, "region"), repeat=1)
        q = rng.standard_normal((1, args.dim)).astype(np.float32)
        q /= np.linalg.norm(q)
        exact = timed(lambda: store._exact_from_sql(sid, "region", q, 20, None, "bench"), 2)
        print(f"N={args.n} dim={args.dim} file {size / 2**20:.0f} MiB")
        print(f"load with CRC32 check  {load * 1000:8.1f} ms")
        print(f"CRC32 alone            {crc * 1000:8.1f} ms ({size / crc / 2**30:.2f} GiB/s)")
        print(f"SQL count/max/sum      {agg * 1000:8.1f} ms")
        print(f"check_files (headers)  {heads * 1000:8.1f} ms")
        print(f"rebuild from SQL       {rebuild * 1000:8.1f} ms")
        print(f"exact query over SQL   {exact * 1000:8.1f} ms (k=20, what a server answers while repairing)")


if __name__ == "__main__":
    main()
