"""``POST /search`` over real HTTP: crop, text (labels), track and fused queries, filters, every error."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import pytest
from api_live import LiveApi, error_of, frame_png, png_bytes, post_image, post_json, shared_live_api
from PIL import Image

HIT_KEYS = {
    "video_id",
    "path",
    "shot",
    "start_s",
    "end_s",
    "keyframe_s",
    "start_tc",  # the hit's source timecode, as every export writes it (issue 16 item 1)
    "end_tc",
    "keyframe_tc",
    "rate",
    "drop_frame",
    "box",
    "score",
    "track_id",
    "mode",
    "labels",
    "keyframe_id",
    "weak",
    "thumbnail_url",
}


@pytest.fixture(scope="module")
def live_api(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> LiveApi:
    return shared_live_api(shared_media, tmp_path_factory)


def search_ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"hits", "mode", "notes", "spaces", "videos", "weak_below", "weak_rule"}
    # Every answer names the DASR space its tracks come from (and the CLIP one when it was used).
    assert body["spaces"]["dasr"].startswith("dasr:") and set(body["spaces"]) <= {"dasr", "clip"}
    assert re.fullmatch(r"search;dur=[0-9.]+, serialise;dur=[0-9.]+", response.headers["server-timing"])
    for hit in body["hits"]:
        assert set(hit) == HIT_KEYS
        assert hit["start_s"] <= hit["keyframe_s"] <= hit["end_s"] + 1e-6
        assert hit["shot"]["start_s"] - 1e-6 <= hit["start_s"] < hit["end_s"] <= hit["shot"]["end_s"] + 1e-6
        assert str(hit["video_id"]) in body["videos"]
    return body


# ---------------------------------------------------------------- crop search


@pytest.mark.parametrize("clip", ["sintel_snow.mp4", "realshort.mp4"])
def test_crop_of_a_frame_finds_its_own_clip_first(live_api: LiveApi, clip: str) -> None:
    path = live_api.media / "clips" / clip
    image, w, h = frame_png(path, 0.5)
    box = f"{w // 4},{h // 4},{3 * w // 4},{3 * h // 4}"
    body = search_ok(post_image(live_api, image, box=box, top_k=5))
    assert body["mode"] == "image"
    assert body["hits"], "a frame of an ingested clip finds something"
    top = body["hits"][0]
    assert top["video_id"] == live_api.videos[clip]
    video = body["videos"][str(top["video_id"])]
    assert video["media_url"] == f"/videos/{top['video_id']}/media"
    assert video["duration_s"] >= top["end_s"] - 1e-6
    x0, y0, x1, y1 = top["box"]
    assert 0 <= x0 < x1 <= video["width"] and 0 <= y0 < y1 <= video["height"]
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_prepare_computes_the_feature_map_once_and_the_search_after_it_is_unchanged(
    live_api: LiveApi,
) -> None:
    """``/search/prepare`` (the page calls it on drop) runs the network once; searches are the same."""
    image, w, h = frame_png(live_api.media / "clips" / "realshort.mp4", 0.3)
    box = f"{w // 5},{h // 5},{4 * w // 5},{4 * h // 5}"
    before = search_ok(post_image(live_api, image, box=box, top_k=5))  # computed (and kept) by the search
    mirrored = Image.open(io.BytesIO(image)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buf = io.BytesIO()
    mirrored.save(buf, format="PNG")
    first = post_image(live_api, buf.getvalue(), path="/search/prepare")
    assert first.status_code == 200, first.text
    assert first.json() == {
        "width": w,
        "height": h,
        "space": before["spaces"]["dasr"],
        "feature_map": "computed",
    }
    again = post_image(live_api, buf.getvalue(), path="/search/prepare")
    assert again.json()["feature_map"] == "cached"
    assert post_image(live_api, image, path="/search/prepare").json()["feature_map"] == "cached"
    after = search_ok(post_image(live_api, image, box=box, top_k=5))
    assert [(h["track_id"], h["score"]) for h in after["hits"]] == [
        (h["track_id"], h["score"]) for h in before["hits"]
    ]


def test_prepare_refuses_what_is_not_an_image(live_api: LiveApi) -> None:
    response = post_image(live_api, b"GIF89a but truncated", path="/search/prepare")
    assert response.status_code == 415
    assert error_of(response)["code"] == "not_an_image"
    missing = httpx.post(live_api.url("/search/prepare"), data={"box": "1,2,3,4"}, timeout=30)
    assert missing.status_code == 422
    assert "image" in error_of(missing)["message"]


def test_hit_thumbnail_is_the_keyframe_jpeg(live_api: LiveApi) -> None:
    image, w, h = frame_png(live_api.media / "clips" / "sintel_snow.mp4", 1.0)
    body = search_ok(post_image(live_api, image, top_k=3))
    hit = next(h for h in body["hits"] if h["thumbnail_url"])
    assert hit["thumbnail_url"] == f"/thumbnails/{hit['video_id']}/{hit['keyframe_id']}.jpg"
    response = httpx.get(live_api.url(hit["thumbnail_url"]), timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(response.content))
    video = body["videos"][str(hit["video_id"])]
    assert thumb.format == "JPEG"
    assert max(thumb.size) <= live_api.settings.thumbnail_max_side
    assert abs(thumb.width / thumb.height - video["width"] / video["height"]) < 0.05


# ------------------------------------------------------- text, track and fused


def _a_labelled_track(live: LiveApi) -> dict:
    video_id = live.videos["sintel_snow.mp4"]
    tracks = httpx.get(live.url(f"/videos/{video_id}/tracks"), timeout=10).json()
    labelled = [t for t in tracks if t["labels"]]
    assert labelled, "ingest labels object tracks"
    return max(labelled, key=lambda t: t["labels"][0][1])


def test_text_is_answered_from_labels_without_clip_weights(live_api: LiveApi) -> None:
    track = _a_labelled_track(live_api)
    label = track["labels"][0][0]
    body = search_ok(post_json(live_api, {"text": label, "top_k": 50}))
    assert body["mode"] == "labels"
    # The server loaded CLIP at warm-up, so its note says what is missing and how to provide it.
    assert any("no CLIP weights" in n and "VIDEO_INST_CLIP_WEIGHTS" in n for n in body["notes"]), body[
        "notes"
    ]
    assert body["hits"], f"text {label!r} is a label of track {track['track_id']}"
    shots = {(h["video_id"], h["shot"]["index"]) for h in body["hits"]}
    assert (track["video_id"], track["shot_index"]) in shots
    assert all(h["mode"] == "labels" for h in body["hits"])


def test_more_like_this_excludes_the_track_itself(live_api: LiveApi) -> None:
    image, _, _ = frame_png(live_api.media / "clips" / "realshort.mp4", 0.3)
    first = search_ok(post_image(live_api, image, top_k=1))["hits"][0]
    body = search_ok(post_json(live_api, {"track_id": first["track_id"], "top_k": 10}))
    assert body["mode"] == "track"
    assert body["hits"]
    assert first["track_id"] not in {h["track_id"] for h in body["hits"]}


def test_image_and_text_fuse(live_api: LiveApi) -> None:
    image, _, _ = frame_png(live_api.media / "clips" / "sintel_snow.mp4", 0.5)
    label = _a_labelled_track(live_api)["labels"][0][0]
    body = search_ok(post_image(live_api, image, text=label, top_k=5))
    assert body["mode"] == "image+labels"
    assert body["hits"]


# ------------------------------------------------------------------- filters


def test_video_filter_offset_time_range_and_min_score(live_api: LiveApi) -> None:
    image, _, _ = frame_png(live_api.media / "clips" / "sintel_snow.mp4", 0.5)
    everything = search_ok(post_image(live_api, image, top_k=20))["hits"]
    assert len(everything) >= 2, "one hit per shot: each ingested clip is a shot"

    other = everything[1]["video_id"]
    only = search_ok(post_image(live_api, image, top_k=20, video_ids=[other]))["hits"]
    assert only and {h["video_id"] for h in only} == {other}

    paged = search_ok(post_image(live_api, image, top_k=1, offset=1))["hits"]
    assert [h["track_id"] for h in paged] == [everything[1]["track_id"]]
    assert search_ok(post_image(live_api, image, top_k=5, offset=len(everything)))["hits"] == []

    threshold = (everything[0]["score"] + everything[1]["score"]) / 2
    strong = search_ok(post_image(live_api, image, top_k=20, min_score=threshold))["hits"]
    assert [h["track_id"] for h in strong] == [everything[0]["track_id"]]

    early = search_ok(post_image(live_api, image, top_k=20, time_range="0,0.1"))["hits"]
    assert early and all(h["start_s"] < 0.1 for h in early)
    late = search_ok(post_image(live_api, image, top_k=20, time_range="500,600"))
    assert late["hits"] == []
    reversed_range = post_json(live_api, {"text": "bird", "time_range": [5, 1]})
    assert reversed_range.status_code == 422


def test_label_filter_keeps_only_tracks_carrying_the_label(live_api: LiveApi) -> None:
    from video_inst.models.labels import label_class_ids, label_names

    image, _, _ = frame_png(live_api.media / "clips" / "sintel_snow.mp4", 0.5)
    everything = search_ok(post_image(live_api, image, top_k=20))["hits"]
    for hit in everything:  # a label of one hit that some other hit lacks, so the filter must drop it
        name = hit["labels"][0][0]
        wanted = set(label_names(label_class_ids(name)))
        lacking = [h["track_id"] for h in everything if not {n for n, _ in h["labels"]} & wanted]
        if lacking:
            break
    else:
        pytest.skip("every hit carries every hit's top label")
    labelled = search_ok(post_image(live_api, image, top_k=20, label=name))["hits"]
    assert hit["track_id"] in {h["track_id"] for h in labelled}
    assert all({n for n, _ in h["labels"]} & wanted for h in labelled)
    assert not set(lacking) & {h["track_id"] for h in labelled}


# --------------------------------------------------------------------- errors


def test_malformed_json_is_400(live_api: LiveApi) -> None:
    response = httpx.post(
        live_api.url("/search"),
        content=b'{"text": ',
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"text": "bird", "top_k": "many"}, "top_k"),
        ({"text": 12}, "text"),
        ({"track_id": 1.5}, "track_id"),
        ({"text": "bird", "video_ids": "3"}, "video_ids"),
        ({"text": "bird", "time_range": [1]}, "time_range"),
        ({"text": "bird", "offset": -1}, "offset"),
        ({"text": "bird", "colour": "red"}, "colour"),
        (["bird"], "SearchRequest"),
    ],
)
def test_wrong_types_are_422_naming_the_field(live_api: LiveApi, body: object, field: str) -> None:
    response = post_json(live_api, body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert field in error["message"] or field == "SearchRequest"


def test_query_without_image_text_or_track_is_422(live_api: LiveApi) -> None:
    response = post_json(live_api, {"top_k": 5})
    assert response.status_code == 422
    assert "an image, a text, a track id or hits marked right" in error_of(response)["message"]


def test_top_k_over_the_limit_is_422(live_api: LiveApi) -> None:
    limit = live_api.settings.max_top_k
    response = post_json(live_api, {"text": "bird", "top_k": limit + 1})
    assert response.status_code == 422
    assert str(limit) in error_of(response)["message"]
    assert post_json(live_api, {"text": "bird", "top_k": limit}).status_code == 200


def test_file_that_is_not_an_image_is_415(live_api: LiveApi) -> None:
    response = post_image(live_api, b"%PDF-1.4 definitely not pixels")
    assert response.status_code == 415
    assert error_of(response)["code"] == "not_an_image"


def test_box_outside_the_image_is_422(live_api: LiveApi) -> None:
    response = post_image(live_api, png_bytes(64, 48), box="10,10,80,40")
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_query" and "64x48" in error["message"]
    assert post_image(live_api, png_bytes(64, 48), box="1,2,3").status_code == 422


def test_box_without_image_is_refused(live_api: LiveApi) -> None:
    response = httpx.post(live_api.url("/search"), data={"text": "bird", "box": "0,0,5,5"}, timeout=10)
    assert response.status_code == 422
    assert "box" in error_of(response)["message"]


def test_unknown_track_is_404(live_api: LiveApi) -> None:
    response = post_json(live_api, {"track_id": 987654321})
    assert response.status_code == 404
    assert "987654321" in error_of(response)["message"]


def test_other_content_types_are_415(live_api: LiveApi) -> None:
    response = httpx.post(
        live_api.url("/search"), content=b"text=bird", headers={"content-type": "text/plain"}, timeout=10
    )
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_unknown_form_field_is_422(live_api: LiveApi) -> None:
    response = post_image(live_api, png_bytes(32, 32), colour="red")
    assert response.status_code == 422
    assert "colour" in error_of(response)["message"]
