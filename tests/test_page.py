"""The search page driven in headless Chromium (Debian's ``chromium`` package + Playwright for Python).

A text search and a crop search (upload an image, drag a box), a hit played in the HTML5
player with its box drawn over it, "more like this" and an export download; the filters,
paging, flat list, URL state (reload, back / forward), SMPTE per card, hover-scrub and keys
(issue 16 item 7) on the shared two-clip catalog. A screenshot
is kept in ``test-artifacts/`` (gitignored). Without Chromium the test FAILS and says how to
install it: ``apt-get install -y chromium`` (Playwright's own browser download is not used).
"""

from __future__ import annotations

import re
import shutil
from fractions import Fraction
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


# --- issue 16 item 7: filters, paging, flat list, URL state, SMPTE per card, scrub, keys ---------


def _search_answer(page, action) -> dict:  # noqa: ANN001 - playwright Page, a callable
    """Run ``action`` (a click...) and return the JSON of the ``POST /search`` it makes."""
    with page.expect_response(lambda r: r.url.endswith("/search") and r.request.method == "POST") as answered:
        action()
    assert answered.value.status == 200, answered.value.text()
    answer = answered.value.json()
    page.wait_for_function(
        "(n) => document.querySelectorAll('#results .hit').length === n"
        " && !/Searching/.test(document.getElementById('status').textContent)",
        arg=len(answer["hits"]),
        timeout=60_000,
    )
    return answer


def _wait_cards(page, n: int) -> None:  # noqa: ANN001 - playwright Page
    """Wait until the hits on screen answer the URL's query (after back / forward / reload), n of them."""
    page.wait_for_function(
        "(n) => document.getElementById('results').dataset.query === location.search.slice(1)"
        " && document.querySelectorAll('#results .hit').length === n",
        arg=n,
        timeout=60_000,
    )


def _cards(page) -> list[dict]:  # noqa: ANN001 - playwright Page
    return page.locator("#results .hit").evaluate_all(
        """nodes => nodes.map(n => ({rank: Number(n.dataset.rank), track: Number(n.dataset.trackId),
            video: Number(n.dataset.videoId), tc_in: n.querySelector('.tc-in')?.textContent,
            tc_out: n.querySelector('.tc-out')?.textContent}))"""
    )


def _params(page) -> dict[str, str]:  # noqa: ANN001 - playwright Page
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(page.url).query))


def test_page_filters_paging_flat_list_and_url_state(browser, live_api: LiveApi) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_api.url("/"))
    page.wait_for_function("() => document.querySelectorAll('#f-video option').length > 2")
    image, _, _ = frame_png(live_api.media / "clips" / "sintel_snow.mp4", 1.0)
    page.set_input_files("#file", files=[{"name": "frame.png", "mimeType": "image/png", "buffer": image}])
    page.locator("#crop").wait_for(state="visible")
    everything = _search_answer(page, lambda: page.click("#search"))
    hits = everything["hits"]
    assert len(hits) >= 2 and len({h["video_id"] for h in hits}) >= 2, hits  # a hit in each clip
    params = _params(page)
    assert re.fullmatch(r"[0-9a-z]+-1", params.pop("img"))  # names the image in the page's memory
    assert params == {"top_k": "20"}  # the image itself is not in the URL

    # SMPTE in / out on each card: the hit's own source timecode
    cards = _cards(page)
    by_rank = {c["rank"]: c for c in cards}
    for rank, hit in enumerate(hits, 1):
        assert (by_rank[rank]["tc_in"], by_rank[rank]["tc_out"]) == (hit["start_tc"], hit["end_tc"])
        assert by_rank[rank]["track"] == hit["track_id"]

    # the flat list: one list, rank order, the API's order; the view is in the URL
    page.select_option("#view", "flat")
    assert page.locator("#results .group").count() == 0
    flat = _cards(page)
    assert [c["rank"] for c in flat] == list(range(1, len(hits) + 1))
    assert [c["track"] for c in flat] == [h["track_id"] for h in hits]
    assert _params(page)["view"] == "flat"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-flat-list.png"), full_page=True)

    # filter by video: the body's video_ids, fewer hits, all of that video, held in the URL
    other = hits[-1]["video_id"]
    page.select_option("#f-video", str(other))
    narrowed = _search_answer(page, lambda: page.click("#search"))
    assert 0 < len(narrowed["hits"]) < len(hits)
    assert {c["video"] for c in _cards(page)} == {other}
    assert _params(page)["video"] == str(other) and _params(page)["view"] == "flat"

    # min score: only hits at or above it
    page.select_option("#f-video", "")
    floor = round((hits[0]["score"] + hits[-1]["score"]) / 2, 3)
    page.fill("#f-min-score", str(floor))
    scored = _search_answer(page, lambda: page.click("#search"))
    assert 0 < len(scored["hits"]) < len(hits) and all(h["score"] >= floor for h in scored["hits"])
    assert _params(page)["min_score"] == str(floor) and "video" not in _params(page)

    # a time range past every hit: none left, and the page says so
    page.fill("#f-min-score", "")
    page.fill("#f-from", "1000")
    assert _search_answer(page, lambda: page.click("#search"))["hits"] == []
    assert page.text_content("#results .empty") == "No shot matches this query."
    assert _params(page)["from"] == "1000" and "to" not in _params(page)
    page.go_back()  # to the min score search (the back button checks below start from there)
    _wait_cards(page, len(scored["hits"]))
    page.fill("#f-from", "")

    # the back button: the previous filters (video), then the first search, the image from memory
    page.go_back()
    _wait_cards(page, len(narrowed["hits"]))
    assert page.input_value("#f-video") == str(other) and page.input_value("#f-min-score") == ""
    assert _params(page)["video"] == str(other)
    page.go_back()
    _wait_cards(page, len(hits))
    assert page.input_value("#f-video") == "" and "video" not in _params(page)
    assert page.locator("#crop").is_visible()  # the query image came back from the page's memory
    assert [c["track"] for c in _cards(page)] == [h["track_id"] for h in hits]
    page.go_forward()
    _wait_cards(page, len(narrowed["hits"]))
    assert {c["video"] for c in _cards(page)} == {other}

    # paging: one shot a page, next / previous by offset, the page in the URL
    page.select_option("#f-video", "")
    page.fill("#top-k", "1")
    first = _search_answer(page, lambda: page.click("#search"))
    assert [h["track_id"] for h in first["hits"]] == [hits[0]["track_id"]]
    assert page.is_disabled("#prev") and not page.is_disabled("#next")
    second = _search_answer(page, lambda: page.click("#next"))
    assert [h["track_id"] for h in second["hits"]] == [hits[1]["track_id"]]
    assert [c["rank"] for c in _cards(page)] == [2]
    assert _params(page)["offset"] == "1" and page.text_content("#page-info") == "hits 2–2"
    _search_answer(page, lambda: page.click("#prev"))
    assert [c["rank"] for c in _cards(page)] == [1] and "offset" not in _params(page)
    page.go_back()
    _wait_cards(page, 1)
    assert [c["rank"] for c in _cards(page)] == [2] and _params(page)["offset"] == "1"

    # keyboard: J / K move through the hits, L plays the one reached, I / O park on its in / out
    page.select_option("#view", "grouped")
    page.fill("#top-k", "20")
    _search_answer(page, lambda: page.click("#search"))
    page.locator("h1").click()
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert page.get_attribute("#results .hit.cursor", "data-rank") == "1"
    page.keyboard.press("j")
    assert page.get_attribute("#results .hit.cursor", "data-rank") == "2"
    page.keyboard.press("l")
    _wait_playing_with_box(page)
    assert basename_of(hits[1]["path"]) in page.text_content("#now-playing")
    page.keyboard.press("o")
    page.wait_for_function("() => document.getElementById('player').paused")
    rate = Fraction(everything["videos"][str(hits[1]["video_id"])]["frame_rate"])
    expected_out = max(hits[1]["start_s"], hits[1]["end_s"] - 1 / float(rate))
    page.wait_for_function(
        f"() => Math.abs(document.getElementById('player').currentTime - {expected_out}) < 0.02"
    )
    page.keyboard.press("i")
    page.wait_for_function(
        f"() => Math.abs(document.getElementById('player').currentTime - {hits[1]['start_s']}) < 0.02"
    )

    # hover-scrub: the pointer across a thumbnail shows its shot's keyframes, leaving restores it
    scrubbed = next(
        (rank, h, shot)
        for rank, h in enumerate(hits, 1)
        for shot in httpx.get(live_api.url(f"/videos/{h['video_id']}/shots"), timeout=10).json()
        if shot["index"] == h["shot"]["index"] and len(shot["keyframes"]) >= 2
    )
    rank, hit, shot = scrubbed
    thumb = page.locator(f"#results .hit[data-rank='{rank}'] .thumb")
    area = thumb.bounding_box()
    img = thumb.locator("img")
    page.mouse.move(area["x"] + 2, area["y"] + area["height"] / 2)
    page.mouse.move(area["x"] + area["width"] - 2, area["y"] + area["height"] / 2, steps=6)
    page.wait_for_function(
        "([sel, url]) => document.querySelector(sel).getAttribute('src') === url",
        arg=[f"#results .hit[data-rank='{rank}'] .thumb img", shot["keyframes"][-1]["thumbnail_url"]],
    )
    page.mouse.move(area["x"] + 2, area["y"] + area["height"] / 2, steps=6)
    assert img.get_attribute("src") == shot["keyframes"][0]["thumbnail_url"]
    page.mouse.move(5, 5)
    assert img.get_attribute("src") == hit["thumbnail_url"]

    # a reload cannot bring the image back (it never left the page): the page says so
    page.reload()
    page.wait_for_function("() => /drop the image again/.test(document.getElementById('status').textContent)")
    assert page.locator("#results .hit").count() == 0
    # nor does an image dropped after the reload stand in for it when back returns there
    other_image, _, _ = frame_png(live_api.media / "clips" / "realshort.mp4", 0.5)
    page.set_input_files("#file", files=[{"name": "b.png", "mimeType": "image/png", "buffer": other_image}])
    page.locator("#crop").wait_for(state="visible")
    _search_answer(page, lambda: page.click("#search"))
    page.go_back()
    page.wait_for_function("() => /drop the image again/.test(document.getElementById('status').textContent)")
    assert page.locator("#crop").is_hidden() and page.locator("#results .hit").count() == 0
    assert errors == []
    page.close()


def basename_of(path: str) -> str:
    return Path(path).name


def test_page_reload_restores_a_text_query_with_its_filters(browser, live_api: LiveApi) -> None:  # noqa: ANN001
    """A query without an image lives in the URL: a reload (or the link elsewhere) runs the same body."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_api.url("/"))
    page.wait_for_function("() => document.querySelectorAll('#f-video option').length > 2")
    label = _label_of_a_track(live_api)
    page.fill("#text", label)
    hits = _search_answer(page, lambda: page.click("#search"))["hits"]
    assert hits
    page.fill("#f-min-score", "0.05")
    page.fill("#f-from", "0")
    page.fill("#f-to", "120")
    page.fill("#f-label", label)
    page.select_option("#f-video", str(hits[0]["video_id"]))
    page.select_option("#view", "flat")
    with page.expect_request(lambda r: r.url.endswith("/search")) as sent:
        answer = _search_answer(page, lambda: page.click("#search"))
    body = sent.value.post_data_json
    assert body == {
        "text": label,
        "top_k": 20,
        "min_score": 0.05,
        "video_ids": [hits[0]["video_id"]],
        "label": label,
        "time_range": [0, 120],
    }
    assert answer["hits"] and all(h["video_id"] == hits[0]["video_id"] for h in answer["hits"])
    before = _cards(page)
    with page.expect_request(lambda r: r.url.endswith("/search")) as resent:
        page.reload()
    assert resent.value.post_data_json == body
    _wait_cards(page, len(before))
    assert _cards(page) == before and page.locator("#results .group").count() == 0  # still flat
    assert page.input_value("#f-label") == label and page.input_value("#f-to") == "120"
    assert page.input_value("#f-video") == str(hits[0]["video_id"]) and page.input_value("#view") == "flat"
    assert errors == []
    page.close()
