"""The search page driven in headless Chromium (Debian's ``chromium`` package + Playwright for Python).

A text search and a crop search (upload an image, drag a box), a hit played in the HTML5
player with its box drawn over it, "more like this" and an export download. A screenshot
is kept in ``test-artifacts/`` (gitignored). Without Chromium the test FAILS and says how to
install it: ``apt-get install -y chromium`` (Playwright's own browser download is not used).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest
from api_live import LiveApi, frame_png, shared_live_api

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def live_api(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> LiveApi:
    return shared_live_api(shared_media, tmp_path_factory)


@pytest.fixture(scope="module")
def browser():
    executable = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    if not executable:
        pytest.fail(
            "Chromium not found at /usr/bin/chromium: install Debian's package with "
            "`apt-get update && apt-get install -y chromium` (the page test drives it headless)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright for Python is missing: `.venv/bin/pip install playwright` (no `playwright install`)"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def _label_of_a_track(live: LiveApi) -> str:
    video_id = live.videos["sintel_snow.mp4"]
    tracks = httpx.get(live.url(f"/videos/{video_id}/tracks"), timeout=10).json()
    return max((t for t in tracks if t["labels"]), key=lambda t: t["labels"][0][1])["labels"][0][0]


def _wait_playing_with_box(page) -> dict:  # noqa: ANN001 - playwright Page
    page.wait_for_function(
        "() => { const v = document.getElementById('player');"
        " return v.readyState >= 2 && !document.getElementById('overlay').hidden; }",
        timeout=30_000,
    )
    return page.evaluate(
        """() => {
        const v = document.getElementById('player');
        const o = document.getElementById('overlay').getBoundingClientRect();
        const r = v.getBoundingClientRect();
        return {src: v.currentSrc, time: v.currentTime, error: v.error && v.error.code,
                video: [r.left, r.top, r.right, r.bottom], box: [o.left, o.top, o.right, o.bottom]};
    }"""
    )


def test_text_and_crop_search_in_chromium(browser, live_api: LiveApi) -> None:  # noqa: ANN001
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_api.url("/"))
    page.wait_for_function(
        "() => /videos in the catalog/.test(document.getElementById('catalog').textContent)"
    )

    # --- text search: answered from labels, hits grouped by video with a timeline bar each
    label = _label_of_a_track(live_api)
    page.fill("#text", label)
    page.click("#search")
    page.wait_for_selector(".group .hit", timeout=60_000)
    assert "labels" in page.text_content("#status")
    groups = page.locator(".group")
    assert groups.count() >= 1
    ranges = page.locator(".group .timeline .range")
    assert ranges.count() == page.locator(".group .hit").count()
    width = ranges.first.bounding_box()["width"]
    assert width > 0

    # clicking a hit plays its range from /videos/{id}/media with the box over the picture
    page.locator(".hit").first.click()
    state = _wait_playing_with_box(page)
    assert state["error"] is None
    assert re.search(r"/videos/\d+/media$", state["src"])
    vx0, vy0, vx1, vy1 = state["video"]
    bx0, by0, bx1, by1 = state["box"]
    assert vx0 - 1 <= bx0 < bx1 <= vx1 + 1 and vy0 - 1 <= by0 < by1 <= vy1 + 1

    # --- crop search: upload a frame, drag a box around its middle
    page.fill("#text", "")
    image, w, h = frame_png(live_api.media / "clips" / "sintel_snow.mp4", 1.0)
    with page.expect_response(lambda r: r.url.endswith("/search/prepare")) as prepared:
        page.set_input_files("#file", files=[{"name": "frame.png", "mimeType": "image/png", "buffer": image}])
    assert prepared.value.status == 200  # the network runs over the image while the box is dragged
    assert prepared.value.json()["feature_map"] in ("computed", "cached")
    canvas = page.locator("#crop")
    canvas.wait_for(state="visible")
    area = canvas.bounding_box()
    page.mouse.move(area["x"] + area["width"] * 0.25, area["y"] + area["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.75, area["y"] + area["height"] * 0.8, steps=8)
    page.mouse.up()
    x0, y0, x1, y1 = (int(v) for v in page.text_content("#box-text").split(","))
    assert abs(x0 - 0.25 * w) <= 0.02 * w and abs(x1 - 0.75 * w) <= 0.02 * w
    assert abs(y0 - 0.2 * h) <= 0.02 * h and abs(y1 - 0.8 * h) <= 0.02 * h
    page.click("#search")
    page.wait_for_function(
        "() => / image · /.test(document.getElementById('status').textContent)", timeout=60_000
    )
    first_group = page.locator(".group").first
    assert first_group.get_attribute("data-video-id") == str(live_api.videos["sintel_snow.mp4"])
    page.locator(".hit").first.click()
    _wait_playing_with_box(page)
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "page-crop-search.png"), full_page=True)

    # --- exports download the hit list
    with page.expect_download() as download_info:
        page.click(".export[data-format='edl']")
    download = download_info.value
    assert download.suggested_filename.endswith(".edl")
    assert Path(download.path()).read_text().startswith("TITLE:")

    # --- more like this: a track query from a hit
    track_id = page.locator(".hit").first.get_attribute("data-track-id")
    page.locator(".hit .more").first.click()
    page.wait_for_function(
        "() => / track · /.test(document.getElementById('status').textContent)", timeout=60_000
    )
    assert page.text_content("#like-id") == track_id
    assert track_id not in {h.get_attribute("data-track-id") for h in page.locator(".hit").all()}
    assert errors == []
    page.close()
