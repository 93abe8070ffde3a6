/* video_inst search page: plain JS, no build step.
 *
 * Query: an image (dropped, chosen or pasted) with an optional box dragged on it, and/or
 * text, or "more like this" (a track id). POST search (multipart with an image, JSON
 * otherwise); hits are grouped by video with a timeline bar each; clicking a hit plays its
 * range from /videos/{id}/media with the track's box drawn over the video. "Appearance report"
 * POSTs the same query to report and draws a strip per video: where the object is on screen.
 * Selects: hits picked (and reordered) or rejected are what the export buttons write, with handles.
 * Filters (min score, video, label, time range, hide weak) go as the search body's fields; pages
 * of top_k hits by offset; grouped or flat (rank order) view. The query's fields, view and page
 * are the URL's (pushState), so reload and back / forward restore them; a query image is kept in
 * this page's memory only (the URL names it "img=<load>-<n>"), so a reload says it must be dropped again.
 * J / K next / previous hit, L play it, I / O its in / out point; hovering a thumbnail scrubs
 * through its shot's keyframes.
 */
"use strict";

const $ = (id) => document.getElementById(id);

// Names this page load in image keys: an "img" left in the history by an earlier load (or a
// shared link) never matches an image dropped after a reload.
const PAGE_ID = Math.random().toString(36).slice(2, 8);

const state = {
  file: null, // the query image (File / Blob)
  bitmap: null, // its decoded pixels, EXIF orientation applied (as the server reads it)
  box: null, // [x0, y0, x1, y1] in image pixels, or null = whole image
  like: null, // track id of "more like this"
  lastQuery: null, // the query of the hits on screen (for exports)
  result: null,
  playing: null, // {hit, video, boxes}
  trackBoxes: new Map(), // track id -> [{time_s, box}]
  imageKey: null, // the key of state.file in state.images (the URL's "img")
  images: new Map(), // key ("<PAGE_ID>-<n>") -> File: query images of this page's history (memory only)
  imageSeq: 0,
  view: "grouped", // or "flat": one list in rank order
  offset: 0, // of the hits on screen
  cursor: null, // rank of the hit J / K moved to
  shots: new Map(), // video id -> Promise of its shots (hover-scrub keyframes)
};

/* ------------------------------------------------------------------ helpers */

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "style") Object.assign(node.style, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function basename(path) {
  return String(path).split(/[\\/]/).pop();
}

// The hit's source timecode in/out (the frames every export writes) and the rate it counts at.
function hitTc(hit) {
  if (!hit.start_tc) return `${fmtTime(hit.start_s)} – ${fmtTime(hit.end_s)}`;
  return `${hit.start_tc} – ${hit.end_tc} @ ${hit.rate}${hit.drop_frame ? " DF" : ""}`;
}

function fmtTime(s) {
  const m = Math.floor(s / 60);
  const sec = (s - m * 60).toFixed(2).padStart(5, "0");
  return `${m}:${sec}`;
}

function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return `${body.error.message} (${response.status} ${body.error.code})`;
  } catch (_) {
    /* not JSON */
  }
  return `HTTP ${response.status}`;
}

/* ------------------------------------------------------------- query image */

async function setImage(file, { box = null, key = null, send = true } = {}) {
  if (!file) return false;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch (_) {
    setStatus(`${file.name || "that file"} is not an image this browser can read`, "error");
    return false;
  }
  if (key === null) {
    key = `${PAGE_ID}-${++state.imageSeq}`;
    state.images.set(key, file);
  }
  state.file = file;
  state.imageKey = key;
  state.bitmap = bitmap;
  state.box = box;
  $("drop-hint").hidden = true;
  $("crop").hidden = false;
  $("crop-tools").hidden = false;
  $("drop").classList.add("has-image");
  layoutCanvas();
  if (send) {
    setStatus("Drag a box around the object, or search with the whole image.");
    prepare(file);
  }
  return true;
}

/* Send the image now: the server runs the network over it while a box is dragged, and the
   box's search then reuses that work (POST /search/prepare). A failure here is only a lost
   head start: the search itself reports any problem with the image. */
function prepare(file) {
  const form = new FormData();
  form.append("image", file, file.name || "query.png");
  fetch("search/prepare", { method: "POST", body: form }).catch(() => {});
}

function clearImage() {
  state.file = null;
  state.imageKey = null;
  state.bitmap = null;
  state.box = null;
  $("crop").hidden = true;
  $("crop-tools").hidden = true;
  $("drop-hint").hidden = false;
  $("drop").classList.remove("has-image");
  $("file").value = "";
}

function canvasScale() {
  return $("crop").width / state.bitmap.width;
}

function layoutCanvas() {
  if (!state.bitmap) return;
  const canvas = $("crop");
  const maxW = $("drop").clientWidth - 2;
  const maxH = 340;
  const scale = Math.min(maxW / state.bitmap.width, maxH / state.bitmap.height, 4);
  canvas.width = Math.max(1, Math.round(state.bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(state.bitmap.height * scale));
  drawCanvas();
}

function drawCanvas(draft = null) {
  const canvas = $("crop");
  const ctx = canvas.getContext("2d");
  ctx.drawImage(state.bitmap, 0, 0, canvas.width, canvas.height);
  const s = canvasScale();
  const box = draft || (state.box && state.box.map((v) => v * s));
  if (box) {
    const [x0, y0, x1, y1] = box;
    ctx.fillStyle = "rgba(8, 12, 20, 0.55)";
    ctx.fillRect(0, 0, canvas.width, y0);
    ctx.fillRect(0, y1, canvas.width, canvas.height - y1);
    ctx.fillRect(0, y0, x0, y1 - y0);
    ctx.fillRect(x1, y0, canvas.width - x1, y1 - y0);
    ctx.strokeStyle = "#3ee0d0";
    ctx.lineWidth = 2;
    ctx.strokeRect(x0 + 1, y0 + 1, x1 - x0 - 2, y1 - y0 - 2);
  }
  $("box-text").textContent = state.box ? state.box.join(",") : "whole image";
}

function installCropper() {
  const canvas = $("crop");
  let start = null;
  const point = (event) => {
    const rect = canvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) * canvas.width) / rect.width;
    const y = ((event.clientY - rect.top) * canvas.height) / rect.height;
    return [Math.min(Math.max(x, 0), canvas.width), Math.min(Math.max(y, 0), canvas.height)];
  };
  const rectOf = (a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  canvas.addEventListener("pointerdown", (event) => {
    if (!state.bitmap) return;
    start = point(event);
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (start) drawCanvas(rectOf(start, point(event)));
  });
  canvas.addEventListener("pointerup", (event) => {
    if (!start) return;
    const [x0, y0, x1, y1] = rectOf(start, point(event));
    start = null;
    const s = canvasScale();
    const w = state.bitmap.width;
    const h = state.bitmap.height;
    if (x1 - x0 < 4 || y1 - y0 < 4) {
      state.box = null; // a click, not a drag: whole image
    } else {
      state.box = [
        Math.max(0, Math.floor(x0 / s)),
        Math.max(0, Math.floor(y0 / s)),
        Math.min(w, Math.ceil(x1 / s)),
        Math.min(h, Math.ceil(y1 / s)),
      ];
    }
    drawCanvas();
  });
}

function installDrop() {
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((name) =>
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    }),
  );
  ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = [...(event.dataTransfer?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) setImage(file);
  });
  $("file").addEventListener("change", (event) => setImage(event.target.files[0]));
  document.addEventListener("paste", (event) => {
    const item = [...(event.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
    if (item) setImage(item.getAsFile());
  });
  window.addEventListener("resize", layoutCanvas);
}

/* ------------------------------------------------------------------- search */

function numberOf(id) {
  const text = $(id).value.trim();
  const value = text === "" ? NaN : Number(text);
  return Number.isFinite(value) ? value : null;
}

// The form's query (offset 0: a new search starts at its first page).
function currentQuery() {
  const topK = parseInt($("top-k").value, 10);
  const from = numberOf("f-from");
  const to = numberOf("f-to");
  const video = parseInt($("f-video").value, 10);
  return {
    file: state.file,
    imageKey: state.file ? state.imageKey : null,
    box: state.file ? state.box : null,
    text: $("text").value.trim() || null,
    track_id: state.like,
    top_k: Number.isFinite(topK) && topK > 0 ? topK : null,
    min_score: numberOf("f-min-score"),
    video_ids: Number.isFinite(video) ? [video] : null,
    label: $("f-label").value.trim() || null,
    // an open end is the whole video: 0 .. a time past any video's end
    time_range: from === null && to === null ? null : [from ?? 0, to ?? 1e9],
    hide_weak: $("f-hide-weak").checked,
    offset: 0,
  };
}

const BODY_FIELDS = ["text", "track_id", "top_k", "min_score", "video_ids", "label", "time_range", "offset", "hide_weak"];

// The search body's fields of a query that are set (offset 0 and hide_weak false are defaults).
function bodyFields(query) {
  const body = {};
  for (const key of BODY_FIELDS) {
    const value = query[key];
    if (value === null || value === undefined || value === false || (key === "offset" && !value)) continue;
    body[key] = value;
  }
  return body;
}

function requestOf(query) {
  const body = bodyFields(query);
  if (query.file) {
    const form = new FormData();
    form.append("image", query.file, query.file.name || "query.png");
    if (query.box) form.append("box", query.box.join(","));
    for (const [key, value] of Object.entries(body)) form.append(key, Array.isArray(value) ? value.join(",") : String(value));
    return { method: "POST", body: form };
  }
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
}

/* ---------------------------------------------------------------- URL state */
/* The URL holds the query's fields, the view and the page, not the image: "img=<load>-<n>" names a
   query image kept in this page's memory (state.images), which back / forward find again and a
   reload (or a shared link) does not. */

function paramsOf(query, view = state.view) {
  const params = new URLSearchParams();
  if (query.imageKey) params.set("img", query.imageKey);
  if (query.box) params.set("box", query.box.join(","));
  if (query.text) params.set("text", query.text);
  if (query.track_id !== null) params.set("track", String(query.track_id));
  if (query.top_k) params.set("top_k", String(query.top_k));
  if (query.min_score !== null) params.set("min_score", String(query.min_score));
  if (query.video_ids) params.set("video", query.video_ids.join(","));
  if (query.label) params.set("label", query.label);
  if (query.time_range) {
    params.set("from", String(query.time_range[0]));
    if (query.time_range[1] < 1e9) params.set("to", String(query.time_range[1]));
  }
  if (query.hide_weak) params.set("hide_weak", "1");
  if (query.offset) params.set("offset", String(query.offset));
  if (view !== "grouped") params.set("view", view);
  return params;
}

// The same search, whatever its page and view: a new one starts a new selection.
function searchKey(query) {
  const params = paramsOf({ ...query, offset: 0 }, "grouped");
  return params.toString();
}

function writeUrl(query, push) {
  const search = `?${paramsOf(query).toString()}`;
  if (search === location.search) return;
  const url = `${location.pathname}${search === "?" ? "" : search}`;
  if (push) history.pushState({ search: true }, "", url);
  else history.replaceState({ search: true }, "", url);
}

// Put the URL's query into the form and run it (reload, back / forward, a shared link).
async function restoreFromUrl() {
  const params = new URLSearchParams(location.search);
  const get = (name) => params.get(name) ?? "";
  $("text").value = get("text");
  $("top-k").value = get("top_k") || $("top-k").defaultValue;
  $("f-min-score").value = get("min_score");
  $("f-label").value = get("label");
  $("f-from").value = get("from");
  $("f-to").value = get("to");
  $("f-hide-weak").checked = get("hide_weak") === "1";
  await videosListed;
  const video = get("video");
  if (video && ![...$("f-video").options].some((o) => o.value === video)) $("f-video").append(el("option", { value: video, text: `video ${video}` }));
  $("f-video").value = video;
  const track = parseInt(get("track"), 10);
  setLike(Number.isFinite(track) ? track : null);
  setView(get("view") === "flat" ? "flat" : "grouped", false);
  const box = get("box") ? get("box").split(",").map(Number) : null;
  let lostImage = false;
  if (params.has("img")) {
    const key = get("img");
    const file = state.images.get(key);
    if (file) await setImage(file, { box: box && box.length === 4 ? box : null, key, send: false });
    else {
      clearImage();
      lostImage = true;
    }
  } else clearImage();
  const query = currentQuery();
  query.offset = Math.max(0, parseInt(get("offset"), 10) || 0);
  if (lostImage) {
    showResults(null);
    setStatus("This search was by an image, which is kept only in the page that searched (not across a reload or in a shared link): drop the image again to search.", "error");
    return;
  }
  if (!query.file && !query.text && query.track_id === null) {
    showResults(null);
    setStatus("");
    return;
  }
  await runSearch(query, { history: "none" });
}

function showResults(result) {
  $("results-bar").hidden = result === null;
  if (result === null) {
    state.result = null;
    $("results").replaceChildren();
  }
}

async function runSearch(query, { history: mode = "push" } = {}) {
  if (!query.file && !query.text && !query.track_id) {
    setStatus("Give an image, a text, or both.", "error");
    return;
  }
  $("search").disabled = true;
  setStatus("Searching…", "busy");
  const started = performance.now();
  try {
    const response = await fetch("search", requestOf(query));
    if (!response.ok) {
      setStatus(await errorText(response), "error");
      return;
    }
    const result = await response.json();
    const sameSearch = state.lastQuery !== null && searchKey(state.lastQuery) === searchKey(query);
    state.result = result;
    state.lastQuery = query;
    state.offset = query.offset || 0;
    state.cursor = null;
    if (mode !== "none") writeUrl(query, mode === "push");
    const ms = Math.round(performance.now() - started);
    const videos = new Set(result.hits.map((h) => h.video_id)).size;
    setStatus(`${result.hits.length} shots in ${videos} videos · ${result.mode} · ${ms} ms`, "ok");
    $("notes").replaceChildren(...result.notes.map((n) => el("p", { text: n.split("\n")[0] })));
    document.querySelectorAll(".export").forEach((b) => (b.disabled = false));
    if (!sameSearch) resetSelects(); // another page of the same search keeps the picks
    rememberHits(result, state.offset);
    showResults(result);
    renderResults(result);
    renderPager(result, query);
    renderSelects();
  } catch (err) {
    setStatus(`search failed: ${err}`, "error");
  } finally {
    $("search").disabled = false;
  }
}

function setLike(trackId) {
  state.like = trackId;
  $("like").hidden = trackId === null;
  $("like-id").textContent = trackId === null ? "" : String(trackId);
}

/* ------------------------------------------------------------------ results */

function videoOf(result, hit) {
  return (
    result.videos[String(hit.video_id)] || {
      video_id: hit.video_id,
      path: hit.path,
      duration_s: Math.max(...result.hits.filter((h) => h.video_id === hit.video_id).map((h) => h.end_s)),
      width: 0,
      height: 0,
      media_url: `videos/${hit.video_id}/media`,
    }
  );
}

// The hit's rank in the whole answer (1-based; the page starts at the query's offset).
function rankOf(hit) {
  return state.offset + state.result.hits.indexOf(hit) + 1;
}

function renderResults(result) {
  const items = result.hits.map((hit, i) => ({ hit, rank: state.offset + i + 1 }));
  const sections = [];
  if (state.view === "flat") {
    if (items.length) {
      sections.push(el("ol", { class: "hits flat", start: state.offset + 1 }, ...items.map(({ hit, rank }) => renderHit(hit, rank, videoOf(result, hit), true))));
    }
  } else {
    const groups = new Map();
    for (const item of items) {
      if (!groups.has(item.hit.video_id)) groups.set(item.hit.video_id, []);
      groups.get(item.hit.video_id).push(item);
    }
    for (const group of groups.values()) sections.push(renderGroup(videoOf(result, group[0].hit), group));
  }
  if (!sections.length) sections.push(el("p", { class: "empty", text: state.offset ? "No more shots: this is past the last page." : "No shot matches this query." }));
  $("results").replaceChildren(...sections);
  $("results").setAttribute("aria-label", state.view === "flat" ? "Hits in rank order" : "Hits grouped by video");
  // the URL query these hits answer (as location.search, without "?"): what tests wait for
  $("results").dataset.query = paramsOf({ ...state.lastQuery, offset: state.offset }).toString();
}

function renderPager(result, query) {
  const size = query.top_k || result.hits.length || 1;
  const first = state.offset + 1;
  $("page-info").textContent = result.hits.length ? `hits ${first}–${state.offset + result.hits.length}` : `no hits from ${first}`;
  $("prev").disabled = state.offset === 0;
  // a full page may have a next one; a short page is the last
  $("next").disabled = result.hits.length < size;
}

function goToPage(step) {
  if (!state.lastQuery) return;
  const size = state.lastQuery.top_k || parseInt($("top-k").defaultValue, 10);
  const offset = Math.max(0, state.offset + step * size);
  runSearch({ ...state.lastQuery, offset });
}

function setView(view, write = true) {
  state.view = view;
  $("view").value = view;
  if (state.result) {
    renderResults(state.result);
    renderSelects();
  }
  if (write && state.lastQuery) writeUrl({ ...state.lastQuery, offset: state.offset }, false);
}

function renderGroup(video, items) {
  const duration = Math.max(video.duration_s || 0, ...items.map((x) => x.hit.end_s), 0.001);
  const bar = el("div", { class: "timeline", title: `${basename(video.path)}: ${fmtTime(duration)}` });
  for (const { hit, rank } of items) {
    const left = (100 * hit.start_s) / duration;
    const width = Math.max((100 * (hit.end_s - hit.start_s)) / duration, 0.6);
    bar.append(
      el("button", {
        type: "button",
        class: "range",
        "data-rank": rank,
        title: `#${rank} ${fmtTime(hit.start_s)}–${fmtTime(hit.end_s)} score ${hit.score.toFixed(3)}`,
        style: { left: `${left}%`, width: `${Math.min(width, 100 - left)}%` },
        onclick: () => play(hit, video),
      }),
      el("span", { class: "tick", style: { left: `${(100 * hit.keyframe_s) / duration}%` } }),
    );
  }
  const list = el("ol", { class: "hits" }, ...items.map(({ hit, rank }) => renderHit(hit, rank, video)));
  return el(
    "article",
    { class: "group", "data-video-id": video.video_id },
    el(
      "header",
      {},
      el("h2", { text: basename(video.path), title: video.path }),
      el("span", {
        class: "meta",
        text: `${items.length} shot${items.length > 1 ? "s" : ""} · ${fmtTime(duration)} · ${video.width}×${video.height}`,
      }),
    ),
    el("div", { class: "timeline-wrap" }, bar, el("div", { class: "scale" }, el("span", { text: "0:00" }), el("span", { text: fmtTime(duration) }))),
    list,
  );
}

function renderHit(hit, rank, video, withVideo = false) {
  const thumb = el("div", { class: "thumb" });
  if (video.width && video.height) thumb.style.aspectRatio = `${video.width} / ${video.height}`;
  if (hit.thumbnail_url) {
    thumb.append(el("img", { src: hit.thumbnail_url, alt: `keyframe at ${fmtTime(hit.keyframe_s)}`, loading: "lazy" }));
    installScrub(thumb, hit);
  }
  const wholeFrame = (box) => (box[2] - box[0]) * (box[3] - box[1]) >= 0.97 * video.width * video.height;
  if (hit.box.length === 4 && video.width && video.height && !wholeFrame(hit.box)) {
    const [x0, y0, x1, y1] = hit.box;
    thumb.append(
      el("span", {
        class: "thumb-box",
        style: {
          left: `${(100 * x0) / video.width}%`,
          top: `${(100 * y0) / video.height}%`,
          width: `${(100 * (x1 - x0)) / video.width}%`,
          height: `${(100 * (y1 - y0)) / video.height}%`,
        },
      }),
    );
  }
  const labels = hit.labels.slice(0, 3).map(([name, p]) => `${name} ${(100 * p).toFixed(0)}%`).join(" · ");
  const more = el("button", {
    type: "button",
    class: "more",
    disabled: hit.track_id === null,
    onclick: (event) => {
      event.stopPropagation();
      moreLikeThis(hit.track_id);
    },
    text: "More like this",
  });
  // A weak hit (under the query's weak_rule threshold) is greyed and says why (issue 16 item 4).
  const why = hit.weak ? (state.result && state.result.weak_rule && state.result.weak_rule.why) || "under the weak-score threshold" : null;
  return el(
    "li",
    { class: hit.weak ? "hit weak" : "hit", "data-rank": rank, title: why ? `weak: ${why}` : null, "data-track-id": hit.track_id ?? "", "data-video-id": hit.video_id, tabindex: 0, onclick: () => play(hit, video), onkeydown: (e) => e.key === "Enter" && play(hit, video) },
    thumb,
    el(
      "div",
      { class: "hit-meta" },
      el("div", { class: "line1" }, el("b", { text: `#${rank}` }), el("span", { class: "score", text: hit.score.toFixed(3) }), el("span", { class: `mode mode-${hit.mode.replace("+", "-")}`, text: hit.mode })),
      withVideo ? el("div", { class: "video-name", text: basename(hit.path), title: hit.path }) : null,
      tcLine(hit),
      el("div", { class: "labels", text: labels }),
      why && el("div", { class: "weak-why", text: `weak: ${why}` }),
      more,
      selectControls(hit),
    ),
  );
}

// The hit's SMPTE in / out (the frames every export writes), each in its own span.
function tcLine(hit) {
  if (!hit.start_tc) return el("div", { class: "tc", text: `${hitTc(hit)}  ·  shot ${hit.shot.index}` });
  return el(
    "div",
    { class: "tc", title: "source timecode in – out (out exclusive), the rate it counts at" },
    el("span", { class: "tc-in", text: hit.start_tc }),
    " – ",
    el("span", { class: "tc-out", text: hit.end_tc }),
    ` @ ${hit.rate}${hit.drop_frame ? " DF" : ""}  ·  shot ${hit.shot.index}`,
  );
}

/* Hover-scrub: the pointer's position across a thumbnail picks one of its shot's keyframes
   (GET videos/{id}/shots, once per video); leaving it shows the hit's keyframe again. */
function shotsOf(videoId) {
  if (!state.shots.has(videoId)) {
    state.shots.set(
      videoId,
      fetch(`videos/${videoId}/shots`)
        .then((r) => (r.ok ? r.json() : []))
        .catch(() => []),
    );
  }
  return state.shots.get(videoId);
}

function installScrub(thumb, hit) {
  const img = thumb.querySelector("img");
  let frames = null;
  thumb.addEventListener("pointerenter", async () => {
    if (frames === null) {
      const shots = await shotsOf(hit.video_id);
      const shot = shots.find((s) => s.index === hit.shot.index);
      frames = shot ? shot.keyframes.filter((k) => k.thumbnail_url) : [];
    }
  });
  thumb.addEventListener("pointermove", (event) => {
    if (!frames || frames.length < 2) return;
    const rect = thumb.getBoundingClientRect();
    const at = Math.min(frames.length - 1, Math.max(0, Math.floor(((event.clientX - rect.left) / rect.width) * frames.length)));
    if (thumb.dataset.scrub !== String(at)) {
      thumb.dataset.scrub = String(at);
      img.src = frames[at].thumbnail_url;
      thumb.classList.add("scrubbing");
    }
  });
  thumb.addEventListener("pointerleave", () => {
    delete thumb.dataset.scrub;
    thumb.classList.remove("scrubbing");
    img.src = hit.thumbnail_url;
  });
}

function moreLikeThis(trackId) {
  clearImage();
  $("text").value = "";
  setLike(trackId);
  runSearch(currentQuery());
}

/* ------------------------------------------------------------------- player */

async function boxesOf(hit) {
  if (hit.track_id === null) return [];
  if (!state.trackBoxes.has(hit.track_id)) {
    try {
      const response = await fetch(`tracks/${hit.track_id}`);
      const track = response.ok ? await response.json() : { boxes: [] };
      state.trackBoxes.set(hit.track_id, track.boxes.map((b) => ({ time_s: b.time_s, box: b.box })));
    } catch (_) {
      state.trackBoxes.set(hit.track_id, []);
    }
  }
  return state.trackBoxes.get(hit.track_id);
}

async function play(hit, video) {
  const player = $("player");
  $("player-panel").hidden = false;
  document.querySelectorAll(".hit.active, .range.active").forEach((n) => n.classList.remove("active"));
  const rank = rankOf(hit);
  document.querySelectorAll(`#results [data-rank="${rank}"]`).forEach((n) => n.classList.add("active"));
  const boxes = await boxesOf(hit);
  if (!boxes.length && hit.box.length === 4) boxes.push({ time_s: hit.keyframe_s, box: hit.box });
  state.playing = { hit, video, boxes };
  $("now-playing").replaceChildren(
    el("b", { text: basename(hit.path) }),
    el("span", { text: ` ${hitTc(hit)} · keyframe ${hit.keyframe_tc || fmtTime(hit.keyframe_s)} · shot ${hit.shot.index}` }),
    el("button", { type: "button", text: "Replay", onclick: () => seekAndPlay(hit.start_s) }),
    el("button", { type: "button", text: "Keyframe", onclick: () => seekAndPause(hit.keyframe_s) }),
  );
  const src = new URL(video.media_url, document.baseURI).href;
  if (player.src !== src) {
    player.src = src;
    await new Promise((resolve) => player.addEventListener("loadedmetadata", resolve, { once: true }));
  }
  seekAndPlay(hit.start_s);
  drawOverlay();
}

function seekAndPlay(t) {
  const player = $("player");
  player.currentTime = t;
  player.play().catch(() => {
    /* autoplay refused: the user presses play */
  });
}

function seekAndPause(t) {
  const player = $("player");
  player.pause();
  player.currentTime = t;
  drawOverlay();
}

function drawOverlay() {
  const overlay = $("overlay");
  const player = $("player");
  const playing = state.playing;
  if (!playing || !playing.boxes.length || !player.clientWidth) {
    overlay.hidden = true;
    return;
  }
  const t = player.currentTime;
  let best = playing.boxes[0];
  for (const b of playing.boxes) if (Math.abs(b.time_s - t) < Math.abs(best.time_s - t)) best = b;
  // Box coordinates are source pixels; the frame is letterboxed inside the element (object-fit: contain).
  const srcW = playing.video.width || player.videoWidth;
  const srcH = playing.video.height || player.videoHeight;
  if (!srcW || !srcH) {
    overlay.hidden = true;
    return;
  }
  const scale = Math.min(player.clientWidth / srcW, player.clientHeight / srcH);
  const offX = player.offsetLeft + (player.clientWidth - srcW * scale) / 2;
  const offY = player.offsetTop + (player.clientHeight - srcH * scale) / 2;
  const [x0, y0, x1, y1] = best.box;
  Object.assign(overlay.style, {
    left: `${offX + x0 * scale}px`,
    top: `${offY + y0 * scale}px`,
    width: `${(x1 - x0) * scale}px`,
    height: `${(y1 - y0) * scale}px`,
  });
  overlay.classList.toggle("far", Math.abs(best.time_s - t) > 0.5);
  overlay.dataset.keyframe = best.time_s.toFixed(3);
  overlay.hidden = false;
}

function installPlayer() {
  const player = $("player");
  player.addEventListener("timeupdate", () => {
    const playing = state.playing;
    if (playing && !player.paused && player.currentTime >= playing.hit.end_s) {
      player.pause();
    }
    drawOverlay();
  });
  player.addEventListener("seeked", drawOverlay);
  window.addEventListener("resize", drawOverlay);
}

/* ------------------------------------------------------------------- report */

async function runReport(query) {
  if (!query.file && !query.text && !query.track_id) {
    setStatus("Give an image, a text, or both.", "error");
    return;
  }
  $("report").disabled = true;
  setStatus("Measuring appearances…", "busy");
  try {
    const response = await fetch("report", requestOf({ ...query, top_k: null }));
    if (!response.ok) {
      setStatus(await errorText(response), "error");
      return;
    }
    const report = await response.json();
    const videos = report.videos.length;
    setStatus(`${report.screen_time_s.toFixed(2)} s on screen in ${videos} video${videos === 1 ? "" : "s"} · ${report.mode}`, "ok");
    $("notes").replaceChildren(...report.notes.map((n) => el("p", { text: n.split("\n")[0] })));
    renderReport(report);
  } catch (err) {
    setStatus(`report failed: ${err}`, "error");
  } finally {
    $("report").disabled = false;
  }
}

function renderReport(report) {
  const panel = $("report-panel");
  const total = el("p", {
    class: "report-total",
    text: `Appearance report: ${report.screen_time_s.toFixed(2)} s on screen in ${report.videos.length} video${report.videos.length === 1 ? "" : "s"} · tracks scoring ≥ ${report.threshold} counted${reportRule(report.weak_rule)}`,
  });
  const rows = report.videos.map(renderReportVideo);
  if (!rows.length) rows.push(el("p", { class: "empty", text: `No track scores ≥ ${report.threshold} for this query.` }));
  panel.replaceChildren(total, ...rows);
  panel.hidden = false;
}

// What set the report's threshold, when the weak rule did (not min_score).
function reportRule(rule) {
  if (!rule) return "";
  if (rule.relative !== null && rule.threshold > rule.floor) return ` (${rule.relative} × this query's best match ${rule.best}; weak hits are not counted)`;
  return ` (the weak-score threshold; weak hits are not counted)`;
}

function renderReportVideo(video) {
  const duration = Math.max(video.duration_s || 0, ...video.spans.map((s) => s.end_s), 0.001);
  const strip = el("div", { class: "strip", title: `${basename(video.path)}: ${fmtTime(duration)}` });
  for (const span of video.spans) {
    const left = (100 * span.start_s) / duration;
    const width = Math.max((100 * (span.end_s - span.start_s)) / duration, 0.4);
    strip.append(
      el("span", {
        class: "appear",
        "data-shot": span.shot,
        title: `shot ${span.shot}: ${fmtTime(span.start_s)}–${fmtTime(span.end_s)}, best score ${span.score.toFixed(3)}`,
        style: { left: `${left}%`, width: `${Math.min(width, 100 - left)}%` },
      }),
    );
  }
  return el(
    "article",
    { class: "report-video", "data-video-id": video.video_id },
    el(
      "header",
      {},
      el("h3", { text: basename(video.path), title: video.path }),
      el("span", {
        class: "meta",
        text: `${video.screen_time_s.toFixed(2)} s in ${video.shots.length} shot${video.shots.length === 1 ? "" : "s"} (${video.shots.join(", ")}) · first ${video.first_tc || fmtTime(video.first_s)} · last ${video.last_tc || fmtTime(video.last_s)}`,
      }),
    ),
    strip,
    el("div", { class: "scale" }, el("span", { text: "0:00" }), el("span", { text: fmtTime(duration) })),
  );
}

/* ------------------------------------------------------------------ selects */
/* The hits an editor keeps for export, by track id: picked ones in the editor's order (reordered
   in the Selects list), or, with none picked, every hit but the rejected ones. Exports send them
   with the handles, span, order and layout chosen (POST export, docs/EXPORT.md "Selects"). A new
   search starts a new selection. */

const selects = {
  picks: [], // track ids, in export order
  rejects: new Set(), // track ids left out when nothing is picked
  hits: new Map(), // track id -> {hit, rank} of the hits seen in this search
};

function resetSelects() {
  selects.picks = [];
  selects.rejects.clear();
  selects.hits.clear();
}

function rememberHits(result, offset = 0) {
  result.hits.forEach((hit, i) => {
    if (hit.track_id !== null && !selects.hits.has(hit.track_id)) selects.hits.set(hit.track_id, { hit, rank: offset + i + 1 });
  });
}

function togglePick(id) {
  const at = selects.picks.indexOf(id);
  if (at >= 0) selects.picks.splice(at, 1);
  else {
    selects.picks.push(id);
    selects.rejects.delete(id);
  }
  renderSelects();
}

function toggleReject(id) {
  if (selects.rejects.has(id)) selects.rejects.delete(id);
  else {
    selects.rejects.add(id);
    const at = selects.picks.indexOf(id);
    if (at >= 0) selects.picks.splice(at, 1);
  }
  renderSelects();
}

function moveSelect(id, step) {
  const at = selects.picks.indexOf(id);
  const to = at + step;
  if (at < 0 || to < 0 || to >= selects.picks.length) return;
  selects.picks.splice(at, 1);
  selects.picks.splice(to, 0, id);
  renderSelects();
}

function selectControls(hit) {
  const id = hit.track_id;
  const stop = (fn) => (event) => {
    event.stopPropagation();
    fn(id);
  };
  return el(
    "div",
    { class: "hit-picks" },
    el("button", { type: "button", class: "pick", "aria-pressed": "false", disabled: id === null, title: "Keep this hit for export", text: "Select", onclick: stop(togglePick) }),
    el("button", { type: "button", class: "reject", "aria-pressed": "false", disabled: id === null, title: "Leave this hit out of exports", text: "Reject", onclick: stop(toggleReject) }),
  );
}

function renderSelects() {
  const n = selects.picks.length;
  $("selects-list").replaceChildren(
    ...selects.picks.map((id, i) => {
      const { hit, rank } = selects.hits.get(id);
      return el(
        "li",
        { "data-track-id": id, "data-rank": rank },
        el("span", { text: `#${rank} ${basename(hit.path)} · ${hitTc(hit)}` }),
        el("button", { type: "button", class: "up", text: "↑", title: "Earlier in the export", disabled: i === 0, onclick: () => moveSelect(id, -1) }),
        el("button", { type: "button", class: "down", text: "↓", title: "Later in the export", disabled: i === n - 1, onclick: () => moveSelect(id, 1) }),
        el("button", { type: "button", class: "drop", text: "×", title: "Remove from the selects", onclick: () => togglePick(id) }),
      );
    }),
  );
  const rejected = selects.rejects.size;
  $("selects-count").textContent = n
    ? `${n} picked, exported in this order`
    : rejected
      ? `${rejected} rejected: the other hits are exported`
      : "none: every hit is exported";
  $("export-label").textContent = n ? `Export ${n} selects` : "Export hits";
  $("selects-clear").disabled = !n && !rejected;
  document.querySelectorAll(".hit[data-track-id]").forEach((node) => {
    if (!node.dataset.trackId) return;
    const id = Number(node.dataset.trackId);
    const picked = selects.picks.includes(id);
    const isRejected = selects.rejects.has(id);
    node.classList.toggle("picked", picked);
    node.classList.toggle("rejected", isRejected);
    node.querySelector(".pick")?.setAttribute("aria-pressed", String(picked));
    node.querySelector(".reject")?.setAttribute("aria-pressed", String(isRejected));
  });
}

function selectionFields() {
  const handles = parseInt($("handles").value, 10);
  return {
    picks: [...selects.picks],
    rejects: selects.picks.length ? [] : [...selects.rejects],
    handles: Number.isFinite(handles) ? handles : 0,
    span: $("span").value,
    order: $("order").value,
    as: $("layout").value,
  };
}

// The search request of the hits on screen plus the selection fields (multipart or JSON, as the search).
function exportRequest(query) {
  const request = requestOf(query);
  const fields = selectionFields();
  if (request.body instanceof FormData) {
    for (const [key, value] of Object.entries(fields)) {
      if (Array.isArray(value)) {
        if (value.length) request.body.append(key, value.join(","));
      } else request.body.append(key, String(value));
    }
  } else {
    request.body = JSON.stringify({ ...JSON.parse(request.body), ...fields });
  }
  return request;
}

function installSelects() {
  $("selects-clear").addEventListener("click", () => {
    selects.picks = [];
    selects.rejects.clear();
    renderSelects();
  });
}

/* ------------------------------------------------------------------- export */

async function exportHits(format) {
  if (!state.lastQuery) return;
  setStatus(`Exporting ${format}…`, "busy");
  try {
    const response = await fetch(`export?format=${encodeURIComponent(format)}`, exportRequest(state.lastQuery));
    if (!response.ok) {
      setStatus(await errorText(response), "error");
      return;
    }
    const disposition = response.headers.get("Content-Disposition") || "";
    const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || `video_inst.${format}`;
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    setStatus(`Exported ${name}`, "ok");
  } catch (err) {
    setStatus(`export failed: ${err}`, "error");
  }
}

/* ----------------------------------------------------------------- keyboard */
/* J / K: the next / previous hit in rank order (focused, scrolled to); L: play it; I / O: the
   player to its in point / its last frame, paused. Keys typed into a field are the field's. */

// "30000/1001" or "25" as a number (null when it is not a rate).
function rateValue(text) {
  const [num, den] = String(text ?? "").split("/").map(Number);
  const rate = den ? num / den : num;
  return Number.isFinite(rate) && rate > 0 ? rate : null;
}

function hitAtCursor() {
  if (!state.result || state.cursor === null) return null;
  return state.result.hits[state.cursor - state.offset - 1] || null;
}

function moveCursor(step) {
  if (!state.result || !state.result.hits.length) return;
  const first = state.offset + 1;
  const last = state.offset + state.result.hits.length;
  const rank = state.cursor === null ? (step > 0 ? first : last) : Math.min(last, Math.max(first, state.cursor + step));
  state.cursor = rank;
  document.querySelectorAll("#results .hit.cursor").forEach((n) => n.classList.remove("cursor"));
  const card = document.querySelector(`#results .hit[data-rank="${rank}"]`);
  if (card) {
    card.classList.add("cursor");
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest" });
  }
}

function installKeys() {
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, select, textarea")) return;
    const key = event.key.toLowerCase();
    if (key === "j" || key === "k") {
      event.preventDefault();
      moveCursor(key === "j" ? 1 : -1);
      return;
    }
    if (!["l", "i", "o"].includes(key)) return;
    const hit = hitAtCursor() || state.playing?.hit;
    if (!hit || !state.result) return;
    event.preventDefault();
    if (key === "l") {
      play(hit, videoOf(state.result, hit));
      return;
    }
    const frame = 1 / (rateValue(videoOf(state.result, hit).frame_rate) || rateValue(hit.rate) || 25); // a source frame
    const seek = () => seekAndPause(key === "i" ? hit.start_s : Math.max(hit.start_s, hit.end_s - frame));
    if (state.playing?.hit === hit) seek();
    else play(hit, videoOf(state.result, hit)).then(seek);
  });
}

/* --------------------------------------------------------------------- main */

// The video filter's choices: the catalog's videos (GET videos), by file name.
const videosListed = (async () => {
  try {
    const response = await fetch("videos?limit=10000");
    if (!response.ok) return;
    const videos = await response.json();
    $("f-video").append(...videos.map((v) => el("option", { value: String(v.video_id), text: basename(v.path), title: v.path })));
  } catch (_) {
    /* the filter offers "all videos" only */
  }
})();

async function showCatalog() {
  try {
    const response = await fetch("health");
    const body = await response.json();
    $("catalog").textContent = response.ok ? `${body.videos} videos in the catalog` : `catalog: ${body.error.message}`;
    $("catalog").classList.toggle("bad", !response.ok);
  } catch (_) {
    $("catalog").textContent = "server unreachable";
  }
}

function main() {
  installDrop();
  installCropper();
  installPlayer();
  installSelects();
  installKeys();
  $("view").addEventListener("change", () => setView($("view").value));
  $("prev").addEventListener("click", () => goToPage(-1));
  $("next").addEventListener("click", () => goToPage(1));
  window.addEventListener("popstate", () => restoreFromUrl());
  $("query").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch(currentQuery());
  });
  $("clear-box").addEventListener("click", () => {
    state.box = null;
    drawCanvas();
  });
  $("report").addEventListener("click", () => runReport(currentQuery()));
  $("clear-image").addEventListener("click", clearImage);
  $("clear-like").addEventListener("click", () => setLike(null));
  document.querySelectorAll(".export").forEach((b) => b.addEventListener("click", () => exportHits(b.dataset.format)));
  showCatalog();
  if (location.search) restoreFromUrl();
}

main();
