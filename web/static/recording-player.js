// The recording player: every track of a session side by side on one clock. Each track plays the
// segment (a WebM/MKV file the server serves with Range) that covers the clock's time, seeked to it;
// a track drifting more than 150 ms from the clock is put back on it. The room's events are markers
// on the timeline and a list: a click jumps there.
import { setupExport } from "./recording-export.js";
import { el, fmtTime, pageData, setBilingual } from "./ui.js";

const DRIFT = 0.15;
const TICK_MS = 100;
const BEFORE_EVENT = 1.0; // a jump to an event starts this long before it

const data = pageData();
const manifest = data.manifest;
const token = data.token || "";
const start = manifest.started_at;
const length = Math.max(0.1, manifest.ended_at - start);
const withToken = (url) => (token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : url);

const state = { position: 0, playing: false, last: null, tracks: [] };
window.__player = state;

function covering(track, t) {
  return track.segments.find((s) => s.url && s.start <= t && t <= (s.end ?? s.start)) || null;
}

function buildStage() {
  const stage = document.getElementById("rec-stage");
  const owners = new Map();
  for (const track of manifest.tracks) {
    if (track.kind !== "video") continue;
    const tile = el("figure", "rec-tile");
    tile.dataset.track = track.id;
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.preload = "auto";
    const gap = el("div", "rec-gap", "此时无画面", "Nothing recorded at this moment");
    const label = el("figcaption", "rec-label", track.site_zh || track.name, track.name);
    tile.append(video, gap, label);
    stage.append(tile);
    owners.set(track.owner, tile);
    state.tracks.push({ track, media: video, tile, segment: null, pending: false });
  }
  for (const track of manifest.tracks) {
    if (track.kind !== "audio") continue;
    const audio = document.createElement("audio");
    audio.preload = "auto";
    const tile = owners.get(track.owner) || null;
    if (tile) tile.classList.add("rec-has-audio");
    document.body.append(audio);
    state.tracks.push({ track, media: audio, tile, segment: null, pending: false });
  }
  if (!manifest.tracks.length) stage.append(el("div", "card empty", "此录像没有轨道", "This recording has no tracks"));
}

function load(entry, segment, offset) {
  entry.segment = segment;
  entry.pending = true;
  const media = entry.media;
  media.src = withToken(segment.url);
  media.addEventListener("loadedmetadata", () => {
    entry.pending = false;
    media.currentTime = Math.max(0, offset);
    if (state.playing) media.play().catch(() => {});
  }, { once: true });
  media.load();
}

function follow(entry) {
  const t = start + state.position;
  const segment = covering(entry.track, t);
  if (entry.tile && entry.media.tagName === "VIDEO") entry.tile.classList.toggle("rec-tile-gap", !segment);
  if (!segment) {
    if (!entry.media.paused) entry.media.pause();
    entry.segment = null;
    return;
  }
  const offset = t - segment.start;
  if (entry.segment !== segment) {
    load(entry, segment, offset);
    return;
  }
  if (entry.pending) return;
  if (Math.abs(entry.media.currentTime - offset) > DRIFT) entry.media.currentTime = offset;
  if (state.playing && entry.media.paused && !entry.media.ended) entry.media.play().catch(() => {});
  if (!state.playing && !entry.media.paused) entry.media.pause();
}

function paint() {
  document.getElementById("rec-progress").style.width = `${(state.position / length) * 100}%`;
  document.getElementById("rec-clock").textContent = fmtTime(start + state.position);
}

function tick() {
  const now = performance.now();
  if (state.playing && state.last !== null) {
    state.position = Math.min(length, state.position + (now - state.last) / 1000);
    if (state.position >= length) setPlaying(false);
  }
  state.last = now;
  for (const entry of state.tracks) follow(entry);
  paint();
}

function setPlaying(playing) {
  state.playing = playing;
  const button = document.getElementById("rec-play");
  setBilingual(button, playing ? "暂停" : "播放", playing ? "Pause" : "Play");
  if (playing && state.position >= length) state.position = 0;
  tick();
}

/** Put the clock at `position` seconds from the session's start. */
export function seek(position) {
  state.position = Math.max(0, Math.min(length, position));
  for (const entry of state.tracks) {
    const segment = covering(entry.track, start + state.position);
    if (segment && entry.segment === segment && !entry.pending) entry.media.currentTime = start + state.position - segment.start;
  }
  tick();
}
state.seek = seek;

function buildTimeline() {
  const markers = document.getElementById("rec-markers");
  const list = document.getElementById("rec-event-list");
  for (const item of data.timeline || []) {
    const at = Math.max(0, item.at - start);
    const jump = () => { seek(at - BEFORE_EVENT); };
    const marker = el("button", `rec-marker rec-marker-${item.kind}`);
    marker.type = "button";
    marker.style.left = `${(at / length) * 100}%`;
    marker.title = `${item.local} ${item.zh} ${item.en}`;
    marker.addEventListener("click", (e) => { e.stopPropagation(); jump(); });
    markers.append(marker);
    const row = el("li", `rec-event rec-event-${item.kind}`);
    row.dataset.kind = item.kind;
    row.dataset.at = String(item.at);
    const button = el("button", "rec-event-jump");
    button.type = "button";
    button.append(el("span", "rec-event-time", item.local), " ", el("span", "rec-event-text", item.zh, item.en));
    if (item.detail) button.append(" ", el("span", "muted", item.detail));
    button.addEventListener("click", jump);
    row.append(button);
    if (item.link) {
      const link = el("a", "rec-event-link", "详情", "details");
      link.href = withToken(item.link);
      row.append(" ", link);
    }
    list.append(row);
  }
  if (!(data.timeline || []).length) list.append(el("li", "muted", "这段时间没有会商事件", "No events in this time"));
  const bar = document.getElementById("rec-timeline");
  bar.addEventListener("click", (e) => {
    const box = bar.getBoundingClientRect();
    seek(((e.clientX - box.left) / box.width) * length);
  });
  bar.addEventListener("keydown", (e) => {
    if (e.key === "ArrowRight") seek(state.position + 5);
    if (e.key === "ArrowLeft") seek(state.position - 5);
  });
}

function buildDownloads() {
  const list = document.getElementById("rec-download-list");
  for (const track of manifest.tracks) {
    const whole = track.segments.filter((s) => s.state === "whole");
    const row = el("li", "rec-download");
    const link = el("a", "btn btn-secondary", `${track.site_zh} · ${track.kind === "video" ? "视频" : "音频"}`,
      `${track.name} · ${track.kind} · ${track.codec}`);
    link.href = withToken(track.download);
    link.dataset.track = track.id;
    row.append(link, " ", el("span", "muted", `${whole.length} 段 segments · ${(whole.reduce((n, s) => n + s.bytes, 0) / 1048576).toFixed(1)} MB`));
    if (track.dropped || track.lost) row.append(" ", el("span", "rec-warn", `丢包 ${track.dropped + track.lost}`, "packets lost"));
    list.append(row);
  }
}

buildStage();
buildTimeline();
buildDownloads();
setupExport(manifest.id, withToken);
document.getElementById("rec-length").textContent = `${Math.round(length)} s`;
document.getElementById("rec-play").addEventListener("click", () => setPlaying(!state.playing));
const wanted = Number(data.t || new URLSearchParams(location.search).get("t"));
if (wanted) seek(wanted - start - BEFORE_EVENT);
setInterval(tick, TICK_MS);
tick();
