"""Ingest, upload, jobs and delete over HTTP: the token, media roots, upload limits and job outcomes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from api_live import MAX_UPLOAD_MB, TOKEN, LiveApi, error_of, shared_live_api, wait_job


@pytest.fixture(scope="module")
def live_api(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> LiveApi:
    return shared_live_api(shared_media, tmp_path_factory)


def ingest(live: LiveApi, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(
        live.url("/ingest"), json=body, headers=live.auth if headers is None else headers, timeout=30
    )


def upload(
    live: LiveApi, name: str, data: bytes, headers: dict | None = None, **fields: str
) -> httpx.Response:
    return httpx.post(
        live.url("/ingest/upload"),
        files={"file": (name, data, "application/octet-stream")},
        data=fields,
        headers=live.auth if headers is None else headers,
        timeout=60,
    )


def video_count(live: LiveApi) -> int:
    return len(httpx.get(live.url("/videos"), timeout=10).json())


# ---------------------------------------------------------------------- token


def test_state_changing_endpoints_need_the_token(live_api: LiveApi) -> None:
    clip = str(live_api.media / "clips" / "flower.mp4")
    before = video_count(live_api)
    video_id = live_api.videos["realshort.mp4"]
    attempts = [
        ingest(live_api, {"path": clip}, headers={}),
        ingest(live_api, {"path": clip}, headers={"Authorization": "Bearer wrong"}),
        ingest(live_api, {"path": clip}, headers={"Authorization": f"Basic {TOKEN}"}),
        upload(live_api, "a.mp4", b"0" * 100, headers={}),
        httpx.delete(live_api.url(f"/videos/{video_id}"), timeout=10),
    ]
    for response in attempts:
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert error_of(response)["code"] == "unauthorized"
    assert video_count(live_api) == before
    assert httpx.get(live_api.url(f"/videos/{video_id}"), timeout=10).status_code == 200


# ------------------------------------------------------------------ ingest path


def test_path_outside_the_media_roots_is_403(live_api: LiveApi) -> None:
    for path in ("/etc/hostname", str(live_api.media / ".." / ".." / "etc" / "hostname")):
        response = ingest(live_api, {"path": path})
        assert response.status_code == 403
        error = error_of(response)
        assert (
            error["code"] == "outside_media_roots"
            and "outside the configured media roots" in error["message"]
        )
        assert (
            str(live_api.media) not in error["message"]
        )  # the server's folders stay unnamed (api/redact.py)


def test_missing_file_under_the_roots_is_404(live_api: LiveApi) -> None:
    response = ingest(live_api, {"path": str(live_api.media / "clips" / "no-such-clip.mp4")})
    assert response.status_code == 404
    assert error_of(response)["code"] == "missing_file"


def test_ingest_body_is_validated(live_api: LiveApi) -> None:
    for body in ({}, {"path": ""}, {"path": 3}, {"path": "/a", "force": "maybe"}, {"path": "/a", "x": 1}):
        response = ingest(live_api, body)
        assert response.status_code == 422, body
        assert error_of(response)["code"] == "invalid_request"


def test_ingest_a_path_answers_a_job_and_delete_removes_the_video(live_api: LiveApi) -> None:
    clip = live_api.media / "clips" / "stream-of-water.mp4"
    response = ingest(live_api, {"path": str(clip), "analyse": False})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] in ("queued", "running") and job["path"] == str(clip)
    done = wait_job(live_api, job["job_id"])
    assert done["status"] == "done", done
    video_id = done["video_id"]
    video = httpx.get(live_api.url(f"/videos/{video_id}"), timeout=10).json()
    assert video["path"] == str(clip) and video["status"] == "done" and video["counts"]["shots"] >= 1
    jobs = httpx.get(live_api.url("/jobs?status=done"), timeout=10).json()
    assert job["job_id"] in {j["job_id"] for j in jobs}
    assert all(j["status"] == "done" for j in jobs)
    assert httpx.get(live_api.url("/jobs?status=sleeping"), timeout=10).status_code == 422

    deleted = httpx.delete(live_api.url(f"/videos/{video_id}"), headers=live_api.auth, timeout=30)
    assert deleted.status_code == 200 and deleted.json() == {"deleted": video_id}
    assert httpx.get(live_api.url(f"/videos/{video_id}"), timeout=10).status_code == 404
    again = httpx.delete(live_api.url(f"/videos/{video_id}"), headers=live_api.auth, timeout=10)
    assert again.status_code == 404


# ---------------------------------------------------------------------- upload


def test_upload_of_known_content_is_skipped_and_the_copy_dropped(live_api: LiveApi) -> None:
    data = (live_api.media / "clips" / "realshort.mp4").read_bytes()
    response = upload(live_api, "../../evil name.mp4", data)
    assert response.status_code == 202, response.text
    job = response.json()
    uploads = live_api.settings.home / "uploads"
    saved = Path(job["path"])
    assert uploads in saved.parents and saved.name == "evil name.mp4"
    done = wait_job(live_api, job["job_id"])
    assert done["status"] == "done" and done["counts"]["outcome"] == "skipped"
    assert done["video_id"] == live_api.videos["realshort.mp4"]
    assert not saved.parent.exists()


def test_upload_that_is_not_a_video_fails_its_job_with_the_reason(live_api: LiveApi) -> None:
    response = upload(live_api, "notes.mp4", b"these are words, not frames\n" * 20)
    assert response.status_code == 202
    done = wait_job(live_api, response.json()["job_id"])
    assert done["status"] == "failed"
    assert "notes.mp4" in done["error"]


def test_upload_larger_than_the_limit_is_413(live_api: LiveApi) -> None:
    limit = MAX_UPLOAD_MB * 1024 * 1024
    response = upload(live_api, "big.mp4", b"\0" * (limit + 1024))
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "too_large" and f"{MAX_UPLOAD_MB} MB" in error["message"]

    def chunks():  # no Content-Length: counted as it arrives
        boundary = b"--b0undary\r\n"
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
        for _ in range(MAX_UPLOAD_MB * 4 + 4):
            yield b"\0" * (256 * 1024)
        yield b"\r\n--b0undary--\r\n"

    chunked = httpx.post(
        live_api.url("/ingest/upload"),
        content=chunks(),
        headers={**live_api.auth, "Content-Type": "multipart/form-data; boundary=b0undary"},
        timeout=60,
    )
    assert chunked.status_code == 413
    assert error_of(chunked)["code"] == "too_large"
    search = httpx.post(
        live_api.url("/search"), files={"image": ("big.png", b"\0" * (limit + 10), "image/png")}, timeout=30
    )
    assert search.status_code == 413


def test_upload_form_errors(live_api: LiveApi) -> None:
    as_json = httpx.post(
        live_api.url("/ingest/upload"), json={"file": "x"}, headers=live_api.auth, timeout=10
    )
    assert as_json.status_code == 415
    no_file = httpx.post(
        live_api.url("/ingest/upload"),
        data={"force": "true"},
        files={"other": ("a", b"1")},
        headers=live_api.auth,
        timeout=10,
    )
    assert no_file.status_code == 422 and "file" in error_of(no_file)["message"]
    bad_flag = upload(live_api, "a.mp4", b"1", force="perhaps")
    assert bad_flag.status_code == 422 and "force" in error_of(bad_flag)["message"]
