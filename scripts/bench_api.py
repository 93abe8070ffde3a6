#!/usr/bin/env python
"""Latency of text and crop search over HTTP with N tracks in the index, and the server's memory.

Builds (or reuses, ``--home``) an embedded data dir: real catalog rows bulk-inserted with
SQL (videos, shots, keyframes, tracks with top-5 ImageNet labels, one box per track and its
region vector) where the vectors are synthetic clustered unit vectors in the real DASR model
space, then the FAISS index through ``IndexStore.sync``. Starts ``video-inst serve`` on it
in a subprocess, sends sequential text searches (JSON) and crop searches (multipart image +
box) over one keep-alive connection and prints p50 / p95 / mean, plus the server's RSS.
``--profile`` also times the pieces in-process (model, FAISS, SQL, JSON) to say where the
time goes. Asserts nothing; figures go in docs/API.md with the command that made them.

Usage::

    .venv/bin/python scripts/bench_api.py --n 20000                       # quick
    .venv/bin/python scripts/bench_api.py --n 1000000 --home /tmp/vi_bench_1m --profile
    .venv/bin/python scripts/bench_api.py --home /tmp/vi_bench_1m          # reuse the built catalog
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from video_inst.catalog.db import Catalog  # noqa: E402
from video_inst.config import Settings  # noqa: E402

if TYPE_CHECKING:
    from video_inst.vectors.store import IndexStore

SHOTS_PER_VIDEO = 100
TRACKS_PER_SHOT = 10
SHOT_S = 4.0
FPS = 25
TEXTS = [
    "dog",
    "a red car",
    "bird",
    "coffee mug",
    "person on a bicycle",
    "umbrella",
    "boat",
    "cat",
    "water bottle",
    "flower",
]

INSERT_VIDEO = (
    "INSERT INTO videos (id, path, content_hash, size_bytes, status, warnings, width, height, rotation,"
    " fps_num, fps_den, time_base_num, time_base_den, start_pts, duration_s, frame_count,"
    " variable_frame_rate, truncated, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, 'done', '[]', 1920, 1080, 0, ?, 1, 1, ?, 0, ?, ?, 0, 0, ?, ?)"
)
INSERT_SHOT = (
    'INSERT INTO shots (id, video_id, "index", start_pts, end_pts, start_s, end_s, start_frame, end_frame)'
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_KEYFRAME = (
    "INSERT INTO keyframes (id, video_id, shot_id, pts, time_s, frame) VALUES (?, ?, ?, ?, ?, ?)"
)
INSERT_TRACK = (
    "INSERT INTO tracks (id, video_id, shot_id, is_frame, start_s, end_s, best_keyframe_id, score, labels,"
    " space_id) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?)"
)
INSERT_BOX = (
    "INSERT INTO track_boxes (id, track_id, keyframe_id, x0, y0, x1, y1, score)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_LABEL = "INSERT INTO track_labels (track_id, rank, label, prob) VALUES (?, ?, ?, ?)"
INSERT_VIDEO_SPACE = "INSERT INTO video_spaces (video_id, space_id, status) VALUES (?, ?, 'done')"
INSERT_VECTOR = "INSERT INTO vectors (id, space_id, kind, owner_id, video_id, data) VALUES (?, ?, ?, ?, ?, ?)"


# --------------------------------------------------------------------------- catalog


def clustered(rng: np.random.Generator, centres: np.ndarray, m: int, spread: float) -> np.ndarray:
    """Unit vectors around random centres (the shape of real embeddings, not a uniform cloud)."""
    noise = rng.standard_normal((m, centres.shape[1]), dtype=np.float32) * np.float32(
        spread / np.sqrt(centres.shape[1])
    )
    x = centres[rng.integers(0, len(centres), m)] + noise
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(home: Path, n: int, settings: Settings, seed: int = 7) -> dict:
    """Bulk-insert N tracks with their rows and region vectors, then build the index."""
    from video_inst.catalog.db import get_catalog
    from video_inst.models.labels import label_names
    from video_inst.models.loading import load_dasr
    from video_inst.vectors.codec import encode
    from video_inst.vectors.store import IndexStore

    started = time.perf_counter()
    dasr = load_dasr(settings)
    space_name, dim = dasr.space_name, int(dasr.dim)
    del dasr
    catalog = get_catalog(settings)
    store = IndexStore(settings.index_dir, catalog, settings)
    with catalog.session() as s:
        space_id = int(store.ensure_space(s, space_name, "dasr", dim, {}).id)
    names = label_names(range(1000))
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    per_video = SHOTS_PER_VIDEO * TRACKS_PER_SHOT
    n_videos = -(-n // per_video)
    db = sqlite3.connect(settings.home / "catalog.sqlite3")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA foreign_keys=OFF")
    cur = db.cursor()
    track_id = box_id = 0
    zipf = 1.0 / np.arange(1, 1001) ** 0.8  # some labels common, most rare (as in real footage)
    zipf /= zipf.sum()
    for v in range(1, n_videos + 1):
        cur.execute(
            INSERT_VIDEO,
            (
                v,
                f"/bench/media/video_{v:06d}.mp4",
                f"{v:064x}",
                10**9,
                FPS,
                FPS,
                SHOTS_PER_VIDEO * SHOT_S,
                int(SHOTS_PER_VIDEO * SHOT_S * FPS),
                now,
                now,
            ),
        )
        shots, keyframes, tracks, boxes, labels, vectors = [], [], [], [], [], []
        for i in range(SHOTS_PER_VIDEO):
            if track_id >= n:
                break
            shot_id = (v - 1) * SHOTS_PER_VIDEO + i + 1
            start, end = i * SHOT_S, (i + 1) * SHOT_S
            shots.append(
                (
                    shot_id,
                    v,
                    i,
                    int(start * FPS),
                    int(end * FPS),
                    start,
                    end,
                    int(start * FPS),
                    int(end * FPS) - 1,
                )
            )
            kf_time = start + SHOT_S / 2
            keyframes.append((shot_id, v, shot_id, int(kf_time * FPS), kf_time, int(kf_time * FPS)))
            for _ in range(min(TRACKS_PER_SHOT, n - track_id)):
                track_id += 1
                box_id += 1
                classes = rng.choice(1000, 5, replace=False, p=zipf)
                probs = np.sort(rng.dirichlet(np.ones(6)))[::-1][:5]
                top = [[names[c], round(float(p), 4)] for c, p in zip(classes, probs)]
                x0, y0 = float(rng.uniform(0, 1500)), float(rng.uniform(0, 800))
                tracks.append(
                    (track_id, v, shot_id, start, end, shot_id, float(probs[0]), json.dumps(top), space_id)
                )
                boxes.append((box_id, track_id, shot_id, x0, y0, x0 + 300, y0 + 200, float(probs[0])))
                labels += [(track_id, r, name, p) for r, (name, p) in enumerate(top)]
        x = clustered(rng, centres, len(boxes), 0.75)
        vectors = [(b[0], space_id, "region", b[0], v, blob) for b, blob in zip(boxes, encode(x))]
        cur.executemany(INSERT_SHOT, shots)
        cur.executemany(INSERT_KEYFRAME, keyframes)
        cur.executemany(INSERT_TRACK, tracks)
        cur.executemany(INSERT_BOX, boxes)
        cur.executemany(INSERT_LABEL, labels)
        cur.executemany(INSERT_VECTOR, vectors)
        cur.execute(INSERT_VIDEO_SPACE, (v, space_id))
        if v % 50 == 0 or track_id >= n:
            db.commit()
            print(f"  rows: {track_id:>9} tracks  {time.perf_counter() - started:7.1f} s", flush=True)
    db.commit()
    db.execute("ANALYZE")
    db.close()
    rows_s = time.perf_counter() - started
    report = store.sync(space_id, "region")
    return {
        "tracks": track_id,
        "videos": n_videos,
        "space": space_name,
        "dim": dim,
        "rows_s": rows_s,
        "index_s": report.seconds,
        "factory": report.factory,
    }


# ---------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "video_inst.cli", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(base + "/health", timeout=30).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("server did not start")


def _query_images(count: int) -> list[np.ndarray]:
    """``count`` distinct RGB images: the shared test photos, then frame grabs of the shared clips."""
    import av
    from PIL import Image

    media = Path(os.environ.get("VIDEO_INST_TEST_MEDIA", REPO.parent / "shared" / "media"))
    photos = sorted(p for p in (media / "images").iterdir() if p.suffix.lower() in (".jpg", ".png", ".bmp"))
    images = []
    for path in photos[:count]:
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("RGB")))
    clips = sorted((media / "clips").glob("*.mp4")) + sorted((media / "edits").glob("*.mp4"))
    for n, clip in enumerate(clips):
        if len(images) >= count:
            break
        per_clip = -(-(count - len(images)) // (len(clips) - n))  # the last (long) edit takes the rest
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            taken, next_s = 0, 0.5
            for frame in container.decode(stream):  # sequential: some clips decode badly after a seek
                if frame.time is not None and frame.time >= next_s:
                    images.append(frame.to_ndarray(format="rgb24"))
                    taken, next_s = taken + 1, next_s + 0.9
                    if taken >= per_clip or len(images) >= count:
                        break
    return images


def random_box(rnd: random.Random, w: int, h: int) -> tuple[int, int, int, int]:
    """A query box (x0, y0, x1, y1): top-left in the first half of each side, at least 1/8 of it."""
    x0, y0 = rnd.randrange(0, w // 2), rnd.randrange(0, h // 2)
    return x0, y0, rnd.randrange(x0 + w // 8, w + 1), rnd.randrange(y0 + h // 8, h + 1)


def crop_queries(count: int, seed: int = 3) -> list[tuple[bytes, str, str]]:
    """``count`` distinct JPEG query images (at most 1280 px) with two random boxes each.

    Distinct images, so the first box of each is a cold query (the server's feature-map
    cache cannot answer it); the second box on the same image is what an editor dragging a
    new box on the search page sends.
    """
    from PIL import Image

    rnd = random.Random(seed)
    out = []
    for pixels in _query_images(count):
        image = Image.fromarray(pixels)
        image.thumbnail((1280, 1280))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=90)
        w, h = image.size
        boxes = [",".join(map(str, random_box(rnd, w, h))) for _ in range(2)]
        out.append((buf.getvalue(), boxes[0], boxes[1]))
    if len(out) < count:
        raise SystemExit(f"only {len(out)} distinct query images in the shared media, {count} asked")
    return out


def percentiles(times: list[float]) -> str:
    ms = np.asarray(times) * 1000
    return (
        f"p50 {np.percentile(ms, 50):7.1f} ms  p95 {np.percentile(ms, 95):7.1f} ms  mean {ms.mean():7.1f} ms"
    )


def server_ms(response: object) -> float:
    """The search time the server reports in its Server-Timing header (ms)."""
    header = response.headers.get("server-timing", "")  # type: ignore[attr-defined]
    found = re.search(r"search;dur=([0-9.]+)", header)
    return float(found.group(1)) if found else float("nan")


def run_http(base: str, queries: int, top_k: int) -> dict[str, list[float]]:
    """Sequential searches over one connection: client latency and the server's own search time.

    Crop queries alternate: a new image with a box (cold: one forward pass), then another box
    on that same image (served from the feature-map cache unless it is off).
    """
    import httpx

    crops = crop_queries(queries + 3)
    kinds = ("text", "crop", "crop again")
    times: dict[str, list[float]] = {k: [] for k in kinds} | {f"{k} server": [] for k in kinds}

    def crop(client: httpx.Client, image: bytes, box: str) -> httpx.Response:
        files = {"image": ("q.jpg", image, "image/jpeg")}
        return client.post("/search", data={"box": box, "top_k": str(top_k)}, files=files)

    def text(client: httpx.Client, words: str) -> httpx.Response:
        return client.post("/search", json={"text": words, "top_k": top_k})

    def timed(kind: str, send: Callable[..., httpx.Response], *args: object) -> None:
        t = time.perf_counter()
        r = send(*args)
        times[kind].append(time.perf_counter() - t)
        r.raise_for_status()
        times[f"{kind} server"].append(server_ms(r) / 1000)

    with httpx.Client(base_url=base, timeout=120) as client:
        for i in range(3):  # warm-up: label table, index pages, SQLite cache (images not reused)
            text(client, TEXTS[i]).raise_for_status()
            crop(client, crops[i][0], crops[i][1]).raise_for_status()
        for i in range(queries):
            timed("text", text, client, TEXTS[i % len(TEXTS)])
        for image, box, second_box in crops[3:]:
            timed("crop", crop, client, image, box)
            timed("crop again", crop, client, image, second_box)
    return times


# --------------------------------------------------------------------------- profile


def profile(settings: Settings, queries: int, top_k: int) -> None:
    """Where a search spends its time, measured piece by piece in this process."""
    import torch

    from video_inst.api.serialise import search_json
    from video_inst.media.images import load_image, parse_box
    from video_inst.search.label_postings import PostingsCache
    from video_inst.search.searcher import Query, Searcher

    if settings.search_threads > 0:
        torch.set_num_threads(settings.search_threads)  # as ``serve`` does
    # No feature-map cache here: "crop: search total" runs the forward pass again for the image
    # "crop: DASR embed" just timed (the HTTP run shows the cache's effect).
    settings = settings.model_copy(update={"search_feature_cache": 0})
    searcher = Searcher(settings)
    sql_searcher = Searcher(settings)  # no postings: the SQL ranking (the CLI's path)
    crops = crop_queries(min(queries, 24))
    parts: dict[str, list[float]] = {
        k: []
        for k in (
            "text: label match",
            "text: SQL label rank",
            "text: postings rank",
            "text: search total",
            "crop: decode image",
            "crop: DASR embed",
            "crop: FAISS search",
            "crop: search total",
            "json",
        )
    }
    searcher.label_postings = PostingsCache(searcher.catalog.session)
    with searcher.catalog.session() as s:
        dasr = searcher._active(s, "dasr")
        t = time.perf_counter()
        searcher.label_postings.get(s, dasr.space_id, wait=True)
        print(f"  label postings built in {time.perf_counter() - t:.1f} s", flush=True)
    space_id = dasr.space_id
    sql_searcher._labels = searcher.labels
    for i in range(3):
        searcher.search(Query(text=TEXTS[i], top_k=top_k))
    fetch = min(max(top_k * 10, 100), 10_000)
    for i in range(queries):
        text = TEXTS[i % len(TEXTS)]
        t = time.perf_counter()
        searcher.labels.match(text)
        parts["text: label match"].append(time.perf_counter() - t)
        with searcher.catalog.session() as s:
            t = time.perf_counter()
            sql_searcher._by_labels(s, text, fetch, dasr)
            parts["text: SQL label rank"].append(time.perf_counter() - t - parts["text: label match"][-1])
            t = time.perf_counter()
            searcher._by_labels(s, text, fetch, dasr)
            parts["text: postings rank"].append(time.perf_counter() - t - parts["text: label match"][-1])
        t = time.perf_counter()
        result = searcher.search(Query(text=text, top_k=top_k))
        parts["text: search total"].append(time.perf_counter() - t)
        t = time.perf_counter()
        json.dumps(search_json(result, ""))
        parts["json"].append(time.perf_counter() - t)
    for i in range(queries):
        data, box_text, _ = crops[i % len(crops)]
        t = time.perf_counter()
        image = load_image(data)
        parts["crop: decode image"].append(time.perf_counter() - t)
        box = parse_box(box_text)
        t = time.perf_counter()
        vector = searcher.dasr.embed_query(image, box)
        parts["crop: DASR embed"].append(time.perf_counter() - t)
        t = time.perf_counter()
        searcher.store.search(space_id, "region", vector[None, :], fetch)
        parts["crop: FAISS search"].append(time.perf_counter() - t)
        t = time.perf_counter()
        searcher.search(Query(image=image, box=box, top_k=top_k))
        parts["crop: search total"].append(time.perf_counter() - t)
    for name, times in parts.items():
        print(f"  {name:<22} {percentiles(times)}", flush=True)
    print("label search per text (search._by_labels incl. the label match, best of 3; SQL vs postings):")
    per_text(sql_searcher, searcher, dasr, top_k)


def per_text(sql_searcher: object, searcher: object, dasr: object, top_k: int) -> None:
    """Label search per bench text: classes matched, label rows they hold, best of 3 (in-process)."""
    from sqlalchemy import func, select

    from video_inst.catalog.models import Label
    from video_inst.models.labels import label_names

    fetch = min(max(top_k * 10, 100), 10_000)
    for text in TEXTS:
        names = label_names(dict(searcher.labels.match(text)))  # type: ignore[attr-defined]
        with searcher.catalog.session() as s:  # type: ignore[attr-defined]
            rows = s.scalar(select(func.count()).select_from(Label).where(Label.label.in_(names)))
            best = []
            for who in (sql_searcher, searcher):
                times = []
                for _ in range(4):  # the first one warms the pages
                    t = time.perf_counter()
                    got = who._by_labels(s, text, fetch, dasr)  # type: ignore[attr-defined]
                    times.append(time.perf_counter() - t)
                best.append((min(times[1:]) * 1000, [(c.track_id, c.score) for c in got]))
        same = "same" if best[0][1] == best[1][1] else "DIFFERENT"
        print(
            f"  {text!r:22} {len(names):4} classes {rows:>9,} label rows  SQL {best[0][0]:7.0f} ms"
            f"  postings {best[1][0]:6.1f} ms  ranking {same}"
        )


def _noisy_region_queries(
    settings: Settings, queries: int, noise: float
) -> tuple[Catalog, int | None, np.ndarray]:
    """(catalog, active DASR space id, queries): stored region vectors + noise / sqrt(dim), L2-normalised."""
    from video_inst.catalog.db import get_catalog
    from video_inst.spaces.active import active_space
    from video_inst.vectors.store import IndexStore

    catalog = get_catalog(settings)
    with catalog.session() as s:
        space_id = active_space(s, "dasr", settings).space_id
    rng = np.random.default_rng(11)
    base = IndexStore(settings.index_dir, catalog, settings)
    ids = rng.integers(1, 1_000_000, queries)
    vecs = base.vectors_for(ids, space_id=space_id, kind="region", missing="nan")
    vecs = vecs[~np.isnan(vecs).any(axis=1)]
    q = vecs + rng.standard_normal(vecs.shape).astype(np.float32) * np.float32(noise / np.sqrt(vecs.shape[1]))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return catalog, space_id, q


def _timed_searches(
    store: IndexStore, space_id: int | None, q: np.ndarray, fetch: int
) -> tuple[list[float], list[list[int]]]:
    """(seconds, hit vector ids) of one ``IndexStore.search`` per query row, after loading the index."""
    store.search(space_id, "region", q[:1], fetch)  # load the index
    times, found = [], []
    for row in q:
        t = time.perf_counter()
        hits = store.search(space_id, "region", row[None, :], fetch)[0]
        times.append(time.perf_counter() - t)
        found.append([v for v, _ in hits])
    return times, found


def nprobe_sweep(settings: Settings, probes: list[int], queries: int, top_k: int) -> None:
    """IVF lists probed vs time and recall@k (against the most probes) through ``IndexStore.search``.

    Queries are stored region vectors plus noise (the synthetic catalog has no real crops), so
    each has true neighbours in the index; every search re-ranks with the SQL vectors as served.
    """
    from video_inst.vectors.store import IndexStore

    catalog, space_id, q = _noisy_region_queries(settings, queries, noise=0.5)
    fetch = min(max(top_k * 10, 100), 10_000)
    results: dict[int, tuple[list[float], list[set[int]]]] = {}
    for nprobe in sorted(probes, reverse=True):
        store = IndexStore(settings.index_dir, catalog, settings, nprobe=nprobe)
        times, found = _timed_searches(store, space_id, q, fetch)
        results[nprobe] = (times, [set(hits[:top_k]) for hits in found])
    reference = results[max(probes)][1]
    for nprobe in sorted(probes):
        times, found = results[nprobe]
        recall = np.mean([len(f & r) / max(len(r), 1) for f, r in zip(found, reference)])
        print(
            f"  nprobe {nprobe:>5}: {percentiles(times)}  recall@{top_k} vs nprobe {max(probes)} {recall:.3f}"
        )


def oversample_sweep(settings: Settings, factors: list[int], queries: int, top_k: int, noise: float) -> None:
    """Re-rank candidates per wanted hit vs time and recall (against the largest factor), as served.

    Queries are stored region vectors plus ``noise`` (0.5 as ``nprobe_sweep``: the stored vector
    stays the clear nearest; 2.0: a query far from every stored vector, whose neighbours are
    near-ties, the hard case for PQ ranking); ``fetch`` hits as ``Searcher.search`` asks for
    them (``top_k`` x 10), recall of the top ``top_k`` and of all of them.
    """
    from video_inst.vectors.store import IndexStore

    catalog, space_id, q = _noisy_region_queries(settings, queries, noise=noise)
    fetch = min(max(top_k * 10, 100), 10_000)
    results: dict[int, tuple[list[float], list[list[int]]]] = {}
    for factor in sorted(factors, reverse=True):
        store = IndexStore(settings.index_dir, catalog, settings, oversample=factor)
        results[factor] = _timed_searches(store, space_id, q, fetch)
    reference = results[max(factors)][1]
    for factor in sorted(factors):
        times, found = results[factor]
        at_k = np.mean(
            [len(set(f[:top_k]) & set(r[:top_k])) / max(len(r[:top_k]), 1) for f, r in zip(found, reference)]
        )
        at_all = np.mean([len(set(f) & set(r)) / max(len(r), 1) for f, r in zip(found, reference)])
        print(
            f"  oversample {factor:>3} ({factor * fetch:>5} vectors read): {percentiles(times)}"
            f"  recall@{top_k} {at_k:.3f}  recall@{fetch} {at_all:.3f} vs oversample {max(factors)}"
        )


# ------------------------------------------------------------------------------ main


def http(env: dict[str, str], queries: int, top_k: int) -> None:
    """Serve the catalog, time the queries over HTTP, print the figures and the server's memory."""
    started = time.perf_counter()
    proc, base = start_server(env)
    print(f"server up in {time.perf_counter() - started:.0f} s (models, label postings)", flush=True)
    try:
        idle, _ = rss_mib(proc.pid)
        times = run_http(base, queries, top_k)
        now, peak = rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    threads = env.get("VIDEO_INST_SEARCH_THREADS", "1 (default)")
    cache = env.get("VIDEO_INST_SEARCH_FEATURE_CACHE", "16 (default)")
    precision = env.get("VIDEO_INST_SEARCH_PRECISION", "float32 (default)")
    print(
        f"HTTP, {queries} sequential queries each, top_k {top_k}, {os.cpu_count()} CPUs,"
        f" search_threads {threads}, search_feature_cache {cache}, search_precision {precision}:"
    )
    labels = ("text (labels)", "crop, new image", "crop, same image, new box")
    for kind, label in zip(("text", "crop", "crop again"), labels, strict=True):
        overhead = np.asarray(times[kind]) - np.asarray(times[f"{kind} server"])
        print(f"  {label:<26} {percentiles(times[kind])}")
        print(f"    of which API + HTTP (latency - Server-Timing search) {percentiles(list(overhead))}")
    print(f"server RSS: {idle:.0f} MiB after start, {now:.0f} MiB after the queries, peak {peak:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="tracks in the index")
    parser.add_argument("--home", type=Path, help="data dir to build in / reuse (default: a temp dir)")
    parser.add_argument("--queries", type=int, default=100, help="queries of each kind")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument(
        "--approx", choices=["ivfpq", "hnsw"], default="ivfpq", help="index past 200k vectors"
    )
    parser.add_argument("--profile", action="store_true", help="also time the pieces in-process")
    parser.add_argument("--nprobe-sweep", help="comma-separated IVF nprobe values to time (in-process)")
    parser.add_argument(
        "--oversample-sweep", help="comma-separated re-rank factors to time with recall (in-process)"
    )
    parser.add_argument("--sweep-noise", type=float, default=0.5, help="query noise of --oversample-sweep")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP run (profile / sweeps only)")
    args = parser.parse_args()

    tmp = None
    home = args.home
    if home is None:
        tmp = tempfile.TemporaryDirectory(prefix="vi_bench_api_")
        home = Path(tmp.name)
    env = {
        **os.environ,
        "VIDEO_INST_HOME": str(home),
        "VIDEO_INST_APPROX_INDEX": args.approx,
        "PYTHONPATH": str(REPO),
    }
    for var in ("VIDEO_INST_DATABASE_URL", "VIDEO_INST_CONFIG", "VIDEO_INST_BROKER_URL"):
        env.pop(var, None)
    settings = Settings(home=home, database_url=None, approx_index=args.approx)
    settings.ensure_dirs()
    if (home / "catalog.sqlite3").exists() and any((home / "index").glob("*.faiss")):
        print(f"reusing {home}")
    else:
        print(f"building {args.n} tracks in {home}", flush=True)
        info = build(home, args.n, settings)
        print(
            f"built {info['tracks']} tracks in {info['videos']} videos, "
            f"space {info['space']} ({info['dim']}-d): "
            f"rows {info['rows_s']:.0f} s, index {info['factory']} in {info['index_s']:.0f} s",
            flush=True,
        )
    from video_inst.catalog.db import get_catalog
    from video_inst.catalog.models import IndexState, Track

    with get_catalog(settings).session() as s:
        from sqlalchemy import func, select

        tracks = s.scalar(select(func.count()).select_from(Track))
        states = s.execute(select(IndexState.kind, IndexState.factory, IndexState.count)).all()
    print(f"catalog: {tracks} tracks; indexes: {[tuple(r) for r in states]}", flush=True)

    if not args.no_http:
        http(env, args.queries, args.top_k)
    if args.profile:
        print("in-process breakdown:")
        profile(settings, min(args.queries, 50), args.top_k)
    if args.oversample_sweep:
        print(f"re-rank oversample sweep (in-process, IndexStore.search, noise {args.sweep_noise}):")
        factors = [int(v) for v in args.oversample_sweep.split(",")]
        oversample_sweep(settings, factors, args.queries, args.top_k, args.sweep_noise)
    if args.nprobe_sweep:
        print("IVF nprobe sweep (in-process, IndexStore.search with SQL re-rank):")
        nprobe_sweep(settings, [int(v) for v in args.nprobe_sweep.split(",")], args.queries, args.top_k)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
