/* video_inst search page: plain JS, no build step.
 *
 * Query: an image (dropped, chosen or pasted) with an optional box dragged on it, and/or
 * text, or "more like this" (a track id). POST search (multipart with an image, JSON
 * otherwise); hits are grouped by video with a timeline bar each; clicking a hit plays its
 * range from /videos/{id}/media with the track's box drawn over the video. "Appearance report"
 * POSTs the same query to report and draws a strip per video: where the object is on screen.
 */
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  file: null, // the query image (File / Blob)
  bitmap: null, // its decoded pixels, EXIF orientation applied (as the server reads it)
  box: null, // [x0, y0, x1, y1] in image pixels, or null = whole image
  like: null, // track id of "more like this"
  lastQuery: null, // the query of the hits on screen (for exports)
  result: null,
  playing: null, // {hit, video, boxes}
  trackBoxes: new Map(), // track id -> [{time_s, box}]
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

async function setImage(file) {
  if (!file) return;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch (_) {
    setStatus(`${file.name || "that file"} is not an image this browser can read`, "error");
    return;
  }
  state.file = file;
  state.bitmap = bitmap;
  state.box = null;
  $("drop-hint").hidden = true;
  $("crop").hidden = false;
  $("crop-tools").hidden = false;
  $("drop").classList.add("has-image");
  layoutCanvas();
  setStatus("Drag a box around the object, or search with the whole image.");
  prepare(file);
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

function currentQuery() {
  const topK = parseInt($("top-k").value, 10);
  return {
    file: state.file,
    box: state.file ? state.box : null,
    text: $("text").value.trim() || null,
    track_id: state.like,
    top_k: Number.isFinite(topK) && topK > 0 ? topK : null,
  };
}

function requestOf(query) {
  if (query.file) {
    const form = new FormData();
    form.append("image", query.file, query.file.name || "query.png");
    if (query.box) form.append("box", query.box.join(","));
    if (query.text) form.append("text", query.text);
    if (query.track_id) form.append("track_id", String(query.track_id));
    if (query.top_k) form.append("top_k", String(query.top_k));
    return { method: "POST", body: form };
  }
  const body = {};
  for (const key of ["text", "track_id", "top_k"]) if (query[key] !== null) body[key] = query[key];
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
}

async function runSearch(query) {
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
    state.result = result;
    state.lastQuery = query;
    const ms = Math.round(performance.now() - started);
    const videos = new Set(result.hits.map((h) => h.video_id)).size;
    setStatus(`${result.hits.length} shots in ${videos} videos · ${result.mode} · ${ms} ms`, "ok");
    $("notes").replaceChildren(...result.notes.map((n) => el("p", { text: n.split("\n")[0] })));
    document.querySelectorAll(".export").forEach((b) => (b.disabled = false));
    renderResults(result);
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

function renderResults(result) {
  const groups = new Map();
  result.hits.forEach((hit, i) => {
    if (!groups.has(hit.video_id)) groups.set(hit.video_id, []);
    groups.get(hit.video_id).push({ hit, rank: i + 1 });
  });
  const sections = [];
  for (const [videoId, items] of groups) {
    const video = result.videos[String(videoId)] || {
      video_id: videoId,
      path: items[0].hit.path,
      duration_s: Math.max(...items.map((x) => x.hit.end_s)),
      width: 0,
      height: 0,
      media_url: `videos/${videoId}/media`,
    };
    sections.push(renderGroup(video, items));
  }
  if (!sections.length) sections.push(el("p", { class: "empty", text: "No shot matches this query." }));
  $("results").replaceChildren(...sections);
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

function renderHit(hit, rank, video) {
  const thumb = el("div", { class: "thumb" });
  if (video.width && video.height) thumb.style.aspectRatio = `${video.width} / ${video.height}`;
  if (hit.thumbnail_url) thumb.append(el("img", { src: hit.thumbnail_url, alt: `keyframe at ${fmtTime(hit.keyframe_s)}`, loading: "lazy" }));
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
    { class: hit.weak ? "hit weak" : "hit", "data-rank": rank, title: why ? `weak: ${why}` : null, "data-track-id": hit.track_id ?? "", tabindex: 0, onclick: () => play(hit, video), onkeydown: (e) => e.key === "Enter" && play(hit, video) },
    thumb,
    el(
      "div",
      { class: "hit-meta" },
      el("div", { class: "line1" }, el("b", { text: `#${rank}` }), el("span", { class: "score", text: hit.score.toFixed(3) }), el("span", { class: `mode mode-${hit.mode.replace("+", "-")}`, text: hit.mode })),
      el("div", { class: "tc", text: `${hitTc(hit)}  ·  shot ${hit.shot.index}` }),
      el("div", { class: "labels", text: labels }),
      why && el("div", { class: "weak-why", text: `weak: ${why}` }),
      more,
    ),
  );
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
  document.querySelectorAll(`.group[data-video-id="${hit.video_id}"] [data-rank]`).forEach((n) => {
    if (state.result.hits.indexOf(hit) + 1 === Number(n.dataset.rank)) n.classList.add("active");
  });
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

/* ------------------------------------------------------------------- export */

async function exportHits(format) {
  if (!state.lastQuery) return;
  setStatus(`Exporting ${format}…`, "busy");
  try {
    const response = await fetch(`export?format=${encodeURIComponent(format)}`, requestOf(state.lastQuery));
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

/* --------------------------------------------------------------------- main */

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
}

main();
