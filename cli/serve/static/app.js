// lbsearch serve: the search page. Plain DOM code, no build step. Text from the server is only
// ever set with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("search");
const filters = $("filters");
const results = $("results");
const message = $("message");
const viewer = $("viewer");
const chosen = new Set();
let current = [];
let shown = null;

const FIELDS = ["not", "path", "after", "before", "min_duration", "max_duration", "limit"];

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function clock(seconds) {
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  const mm = String(m).padStart(2, "0"), ss = String(s).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function say(text, isError = false, more = false) {
  message.textContent = text;
  message.classList.toggle("error", isError);
  if (more && again) {
    const button = el("button", { id: "more", type: "button", textContent: "Show more" });
    button.title = "the results below the relevance cut-off too";
    const rerun = again;
    button.addEventListener("click", () => rerun());
    message.append(" ", button);
  }
}

// ------------------------------------------------------------------------- the query

function params() {
  const p = new URLSearchParams();
  const text = $("q").value.trim();
  if (text) p.append("box", text); // the CLI's language in one line, read by the core's parse_box
  for (const name of FIELDS) {
    const value = filters.querySelector(`[name=${name}]`).value.trim();
    if (!value) continue;
    if (name === "not") value.split(",").map((v) => v.trim()).filter(Boolean).forEach((v) => p.append("not", v));
    else p.append(name, value);
  }
  for (const m of chosen) p.append("m", m);
  return p;
}

function restore(p) {
  $("q").value = p.get("box") || "";
  for (const name of FIELDS) {
    const input = filters.querySelector(`[name=${name}]`);
    const values = p.getAll(name);
    if (values.length) input.value = values.join(", ");
  }
  p.getAll("m").forEach((m) => chosen.add(m));
}

// A search is kept as a function of extra parameters, so "Show more" can ask the same question
// again without the relevance cut-off (all=1), as `lbsearch query --all` does.
let again = null;

async function run(ask, label, everything = false) {
  again = everything ? null : () => run(ask, label, true);
  say("Searching…");
  const started = performance.now();
  let body;
  try {
    const response = await ask(everything ? [["all", "1"]] : []);
    body = await response.json();
    if (!response.ok) {
      clearResults(); // an error never sits above the answer to an earlier search
      say(`${body.error || response.statusText}${body.hint ? " — " + body.hint : ""}`, true);
      return;
    }
  } catch (error) {
    clearResults();
    say(`The service did not answer (${error.message}).`, true);
    return;
  }
  current = body.results;
  render();
  const ms = Math.round(performance.now() - started);
  say(summary(current, label, everything) + ` (${ms} ms)`, false, !everything && current.length > 0);
}

function summary(hits, label, everything) {
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  if (!hits.length) return `No match for ${label}.`;
  if (everything) return `${plural(hits.length, "result")} for ${label}, strong and weak`;
  const strong = hits.filter((hit) => !hit.weak).length;
  if (!strong) return `Nothing cleared the bar for ${label}: ${plural(hits.length, "weak result")} shown`;
  return `${plural(strong, "strong result")} for ${label}`;
}

function searchText() {
  const p = params();
  if (!p.get("box")) { say("Type something to look for, or drop a file.", true); return; }
  history.replaceState(null, "", "?" + p.toString());
  run((extra) => fetch("/api/search?" + withExtra(p, extra)), `“${p.get("box")}”`);
}

function searchSimilar(hit) {
  const p = params();
  p.delete("box");
  p.append("like_id", String(hit.file_id));
  run((extra) => fetch("/api/search?" + withExtra(p, extra)), `files like ${baseName(hit.path)}`);
}

function searchExample(file) {
  const ask = (extra) => {
    const data = new FormData();
    for (const [key, value] of params()) if (key !== "box") data.append(key, value);
    for (const [key, value] of extra) data.append(key, value);
    data.append("like", file, file.name);
    return fetch("/api/search", { method: "POST", body: data });
  };
  run(ask, `files like ${file.name}`);
}

function withExtra(p, extra) {
  const copy = new URLSearchParams(p);
  for (const [key, value] of extra) copy.append(key, value);
  return copy.toString();
}

// --------------------------------------------------------------------------- results

function relevanceText(hit) {
  return typeof hit.relevance === "number" ? `rel ${hit.relevance.toFixed(1)}` : hit.score.toFixed(3);
}

function baseName(path) {
  return path.split("/").pop();
}

function render() {
  results.replaceChildren(...current.map((hit, index) => card(hit, index)));
}

function clearResults() {
  current = [];
  render();
}

function card(hit, index) {
  const img = el("img", { src: hit.thumbnail_url, alt: `${hit.modality}: ${baseName(hit.path)}`, loading: "lazy" });
  const open = el("button", { className: "thumb", type: "button", title: hit.path }, img);
  open.addEventListener("click", () => show(index));
  const similar = el("button", { className: "similar", type: "button", textContent: "Similar" });
  similar.addEventListener("click", () => searchSimilar(hit));
  const span = hit.span ? el("span", { className: "span", textContent: hit.span }) : "";
  const meta = el("div", { className: "meta" },
    el("span", { className: "name", textContent: baseName(hit.path), title: hit.path }),
    el("span", { className: "line" },
      el("span", { className: "badge", textContent: hit.modality }),
      el("span", { className: "score", textContent: relevanceText(hit), title: `cosine ${hit.score.toFixed(3)}` }), span,
      hit.weak ? el("span", { className: "badge weak", textContent: "weak", title: "below the relevance cut-off" }) : "",
      hit.offline ? el("span", { className: "badge offline", textContent: "offline", title: "its folder could not be read at the last index run" }) : ""),
    el("span", { className: "line" }, similar));
  const item = el("li", { className: hit.weak ? "card weak" : "card" }, open, meta);
  item.dataset.index = index;
  return item;
}

// ---------------------------------------------------------------------------- viewer

function show(index) {
  const hit = current[index];
  shown = hit;
  const body = $("viewer-body");
  $("viewer-title").textContent = baseName(hit.path);
  const best = (hit.moments || [])[0];
  $("viewer-facts").textContent = [hit.path, hit.modality, `score ${hit.score.toFixed(3)}`,
    hit.span ? `segment ${hit.span}` : "",
    best ? `moment ${clock(best.start_s)}–${clock(best.end_s)} (${streamText(best)})` : ""].filter(Boolean).join(" · ");
  $("viewer-note").textContent = "";
  $("viewer-download").hidden = true;
  $("viewer-timeline").replaceChildren();
  $("viewer-timeline").hidden = true;
  let media;
  if (hit.modality === "video" || hit.modality === "audio") {
    // the player itself (not the box around an audio player) plays the best moment
    const player = el(hit.modality === "video" && !/\.(mp3|m4a|wav|flac|ogg|opus|aac)$/i.test(hit.path) ? "video" : "audio",
      { controls: true, preload: "metadata", src: hit.content_url });
    media = player;
    if (player.tagName === "AUDIO") {
      media = el("div", { className: "audio" }, el("img", { src: hit.thumbnail_url + "?size=640", alt: "spectrogram" }), player);
    }
    moments(hit, player);
  } else if (hit.modality === "depth") {
    media = el("img", { src: hit.thumbnail_url + "?size=640", alt: "depth map in false colour" });
  } else {
    media = el("img", { src: hit.content_url, alt: baseName(hit.path) });
    // formats a browser cannot show (TIFF, HEIC, ...): the large thumbnail instead
    media.addEventListener("error", () => { media.src = hit.thumbnail_url + "?size=640"; }, { once: true });
  }
  body.replaceChildren(media);
  viewer.showModal();
}

function closeViewer() {
  stopMoment();
  $("viewer-body").querySelectorAll("video, audio").forEach((m) => m.pause());
  $("viewer-body").replaceChildren();
  $("viewer-timeline").replaceChildren();
  if (viewer.open) viewer.close();
}

// ------------------------------------------------------------------- moments, timeline

// The moment being played: the player pauses at its end (a seek out of it lets it play on).
let playing = null;
let picked = null; // the moment last played: the one the download button cuts
let stopTimer = 0;

function momentsOf(hit) {
  const listed = (hit.moments || []).filter((m) => m.end_s > m.start_s);
  if (listed.length) return listed;
  return hit.end_s > hit.start_s ? [{ start_s: hit.start_s, end_s: hit.end_s }] : [];
}

function streamText(m) {
  const p = typeof m.picture_relevance === "number" ? m.picture_relevance : m.picture_score;
  const s = typeof m.sound_relevance === "number" ? m.sound_relevance : m.sound_score;
  if (typeof p === "number" && typeof s === "number") return `picture ${p.toFixed(2)}, sound ${s.toFixed(2)}`;
  if (typeof p === "number") return `picture ${p.toFixed(2)}`;
  return typeof s === "number" ? `sound ${s.toFixed(2)}` : "";
}

function moments(hit, player) {
  const list = momentsOf(hit);
  picked = list[0] || null;
  if (!list.length) {
    player.addEventListener("loadedmetadata", () => {
      player.currentTime = hit.start_s;
      player.play().catch(() => {});
    }, { once: true });
    return;
  }
  const track = el("div", { className: "track" });
  const head = el("span", { className: "playhead" });
  const spans = list.map((m, i) => {
    const label = `moment ${i + 1}: ${clock(m.start_s)}–${clock(m.end_s)}`;
    const span = el("button", { type: "button", className: "moment", title: [label, streamText(m)].filter(Boolean).join(" · ") });
    span.setAttribute("aria-label", `play ${label}`);
    span.dataset.start = String(m.start_s);
    span.dataset.end = String(m.end_s);
    span.addEventListener("click", () => playMoment(player, m, span));
    return span;
  });
  track.append(...spans, head);
  const ends = el("div", { className: "ends" }, el("span", { textContent: "00:00" }), el("span", { className: "length" }));
  $("viewer-timeline").replaceChildren(track, ends);
  $("viewer-timeline").hidden = false;
  const place = (duration) => {
    if (!(duration > 0)) return;
    spans.forEach((span, i) => {
      span.style.left = `${(100 * list[i].start_s) / duration}%`;
      span.style.width = `${Math.max(0.5, (100 * (list[i].end_s - list[i].start_s)) / duration)}%`;
    });
    ends.querySelector(".length").textContent = clock(duration);
    $("viewer-timeline").dataset.duration = String(duration);
  };
  place(hit.duration_s || Math.max(...list.map((m) => m.end_s)));
  player.addEventListener("loadedmetadata", () => {
    if (Number.isFinite(player.duration)) place(player.duration);
    playMoment(player, list[0], spans[0]);
  }, { once: true });
  player.addEventListener("timeupdate", () => {
    const duration = Number($("viewer-timeline").dataset.duration);
    if (duration > 0) head.style.left = `${Math.min(100, (100 * player.currentTime) / duration)}%`;
    checkEnd(player);
  });
  player.addEventListener("seeking", () => {
    if (playing && (player.currentTime < playing.start_s - 0.05 || player.currentTime >= playing.end_s)) stopMoment();
  });
  player.addEventListener("play", () => checkEnd(player));
  $("viewer-download").hidden = false;
}

function playMoment(player, moment, span) {
  playing = moment;
  picked = moment;
  $("viewer-timeline").querySelectorAll(".moment").forEach((s) => s.classList.toggle("active", s === span));
  $("viewer-download").textContent = `Download ${clock(moment.start_s)}–${clock(moment.end_s)}`;
  player.currentTime = moment.start_s;
  player.play().catch(() => {}); // autoplay may be refused; the controls are there
}

function stopMoment() {
  playing = null;
  clearTimeout(stopTimer);
}

// timeupdate comes every quarter second or so: a timer set for the time left stops on time
function checkEnd(player) {
  if (!playing) return;
  clearTimeout(stopTimer);
  const left = playing.end_s - player.currentTime;
  if (left <= 0.02) {
    player.pause();
    stopMoment();
  } else if (!player.paused) {
    stopTimer = setTimeout(() => checkEnd(player), (1000 * left) / (player.playbackRate || 1));
  }
}

// The shown moment's clip, cut by the service (GET /api/files/ID/clip), saved under the name
// the service gives it; an error (too long, busy) is said under the player.
async function downloadClip() {
  const hit = shown;
  const moment = picked;
  if (!hit || !moment) return;
  const button = $("viewer-download");
  const note = $("viewer-note");
  const query = new URLSearchParams({ start: moment.start_s.toFixed(3), end: moment.end_s.toFixed(3) });
  button.disabled = true;
  note.textContent = "Cutting the clip…";
  try {
    const response = await fetch(`/api/files/${hit.file_id}/clip?${query}`);
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      note.textContent = `No clip: ${body.error || response.statusText}${body.hint ? " — " + body.hint : ""}`;
      return;
    }
    const name = savedName(response.headers.get("content-disposition")) || "clip";
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    note.textContent = `Saved ${name}`;
  } catch (error) {
    note.textContent = `No clip: the service did not answer (${error.message}).`;
  } finally {
    button.disabled = false;
  }
}

function savedName(header) {
  if (!header) return "";
  const exact = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (exact) return decodeURIComponent(exact[1]);
  const plain = /filename="([^"]*)"/i.exec(header);
  return plain ? plain[1] : "";
}

// ------------------------------------------------------------------------ modalities

async function loadChips() {
  try {
    const status = await (await fetch("/api/status")).json();
    const names = (status.modalities || []).filter((m) => m.segments > 0).map((m) => m.modality);
    $("chips").replaceChildren(...names.map(chip));
  } catch (error) {
    say("Could not read the library's status.", true);
  }
}

function chip(name) {
  const button = el("button", { type: "button", className: "chip", textContent: name });
  button.setAttribute("aria-pressed", String(chosen.has(name)));
  button.addEventListener("click", () => {
    chosen.has(name) ? chosen.delete(name) : chosen.add(name);
    button.setAttribute("aria-pressed", String(chosen.has(name)));
    if ($("q").value.trim()) searchText();
  });
  return button;
}

// ------------------------------------------------------------------ keys, drag & drop

function moveFocus(step) {
  const cards = [...results.querySelectorAll(".thumb")];
  if (!cards.length) return;
  const at = cards.indexOf(document.activeElement);
  const columns = getComputedStyle(results).gridTemplateColumns.split(" ").length;
  const delta = { left: -1, right: 1, up: -columns, down: columns }[step];
  const next = at < 0 ? 0 : Math.min(cards.length - 1, Math.max(0, at + delta));
  cards[next].focus();
}

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (viewer.open) return; // the dialog handles Escape itself
  if (event.key === "/" && !typing) { event.preventDefault(); $("q").focus(); $("q").select(); return; }
  if (typing && event.key === "ArrowDown" && document.activeElement === $("q")) { event.preventDefault(); moveFocus("down"); return; }
  if (typing) return;
  const keys = { ArrowLeft: "left", ArrowRight: "right", ArrowUp: "up", ArrowDown: "down" };
  if (keys[event.key]) { event.preventDefault(); moveFocus(keys[event.key]); }
  if (event.key === "s" && document.activeElement.classList.contains("thumb")) {
    searchSimilar(current[document.activeElement.closest(".card").dataset.index]);
  }
});

let dragDepth = 0;
document.addEventListener("dragenter", (e) => { e.preventDefault(); dragDepth++; $("drop").hidden = false; });
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("dragleave", () => { if (--dragDepth <= 0) { dragDepth = 0; $("drop").hidden = true; } });
document.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  $("drop").hidden = true;
  const file = event.dataTransfer.files[0];
  if (file) searchExample(file);
});

form.addEventListener("submit", (event) => { event.preventDefault(); searchText(); });
$("example-button").addEventListener("click", () => $("example").click());
$("example").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) searchExample(file);
  event.target.value = "";
});
$("viewer-close").addEventListener("click", closeViewer);
$("viewer-download").addEventListener("click", downloadClip);
$("viewer-similar").addEventListener("click", () => { const hit = shown; closeViewer(); if (hit) searchSimilar(hit); });
viewer.addEventListener("close", closeViewer);

const initial = new URLSearchParams(location.search);
restore(initial);
loadChips().then(() => { if (initial.get("box")) searchText(); });
