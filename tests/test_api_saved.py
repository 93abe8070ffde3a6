"""Feedback, several exemplars and saved searches over real HTTP (issue 16 items 4-6)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from api_live import LiveApi, error_of, frame_png, shared_live_api


@pytest.fixture(scope="module")
def live_api(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> LiveApi:
    return shared_live_api(shared_media, tmp_path_factory)


def test_feedback_exemplars_and_weak_hits_over_http(live_api: LiveApi) -> None:
    snow, w, h = frame_png(live_api.media / "clips" / "sintel_snow.mp4", 1.0)
    short, w2, h2 = frame_png(live_api.media / "clips" / "realshort.mp4", 0.5)
    files = [("image", ("snow.png", snow, "image/png")), ("image", ("short.png", short, "image/png"))]
    both = httpx.post(
        live_api.url("/search"), data={"box": ["", f"0,0,{w2},{h2}"], "top_k": "5"}, files=files, timeout=120
    )
    assert both.status_code == 200, both.text
    body = both.json()
    assert {hit["video_id"] for hit in body["hits"]} == set(live_api.videos.values())  # both objects found
    # One rule per query: the measured floor, or a fraction of the query's best score when higher
    rule = body["weak_rule"]
    assert rule["floor"] == live_api.settings.weak_score_dasr and rule["best"] == body["hits"][0]["score"]
    assert (
        body["weak_below"]
        == rule["threshold"]
        == max(rule["floor"], round(rule["relative"] * rule["best"], 6))
    )
    assert all(hit["weak"] == (hit["score"] < body["weak_below"]) for hit in body["hits"])
    top = body["hits"][0]
    wrong = body["hits"][1]
    again = httpx.post(
        live_api.url("/search"),
        data={"positives": str(top["track_id"]), "negatives": str(wrong["track_id"]), "top_k": "5"},
        files=files[:1],
        timeout=120,
    ).json()
    assert wrong["track_id"] not in {hit["track_id"] for hit in again["hits"]}
    hidden = httpx.post(
        live_api.url("/search"),
        json={"positives": [top["track_id"]], "hide_weak": True, "top_k": 20},
        timeout=120,
    ).json()
    assert hidden["mode"] == "feedback" and hidden["hits"] and not any(hit["weak"] for hit in hidden["hits"])
    refused = httpx.post(live_api.url("/search"), json={"positives": [1], "negatives": [1]}, timeout=30)
    assert refused.status_code == 422 and "right and wrong" in error_of(refused)["message"]
    too_many = httpx.post(
        live_api.url("/search"), data={"box": ["1,1,5,5", "1,1,5,5"]}, files=files[:1], timeout=30
    )
    assert too_many.status_code == 422


def test_saved_searches_over_http(live_api: LiveApi) -> None:
    snow, w, h = frame_png(live_api.media / "clips" / "sintel_snow.mp4", 1.0)
    files = {"image": ("snow.png", snow, "image/png")}
    url = live_api.url("/saved-searches?name=snow%20frame&threshold=0.5")
    assert httpx.post(url, files=files, timeout=120).status_code == 401  # changes state: the token
    made = httpx.post(url, files=files, headers=live_api.auth, timeout=120)
    assert made.status_code == 201, made.text
    saved = made.json()
    assert saved["name"] == "snow frame" and saved["threshold"] == 0.5 and saved["vectors"] >= 1
    listed = httpx.get(live_api.url("/saved-searches"), timeout=10).json()
    assert "snow frame" in {s["name"] for s in listed}
    ran = httpx.post(live_api.url(f"/saved-searches/{saved['saved_search_id']}/search?top_k=3"), timeout=120)
    assert ran.status_code == 200
    assert [x["track_id"] for x in ran.json()["hits"]] == [x["track_id"] for x in saved["result"]["hits"][:3]]
    assert httpx.get(live_api.url("/saved-searches/snow%20frame/matches"), timeout=10).json() == []
    missing = httpx.get(live_api.url("/saved-searches/nope/matches"), timeout=10)
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    gone = httpx.delete(live_api.url("/saved-searches/snow%20frame"), headers=live_api.auth, timeout=10)
    assert gone.status_code == 200 and gone.json() == {"deleted": saved["saved_search_id"]}
