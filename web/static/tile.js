// One tile of a video wall: the <video>, the site's name, its state badge and quality, the last
// picture kept while it reconnects, and the hidden <audio> of that participant.
import { el, setBilingual } from "./ui.js";

/** One participant's tile. */
export class Tile {
  constructor(identity, { local = false, mirror = false } = {}) {
    this.identity = identity;
    this.local = local;
    this.root = el("div", "tile");
    this.root.dataset.identity = identity;
    this.root.tabIndex = 0;
    this.root.setAttribute("role", "button");
    this.video = document.createElement("video");
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.muted = true; // sound goes through the participant's <audio>, so video always autoplays
    if (mirror) this.video.classList.add("mirror");
    // the last picture, drawn over the <video> while it has none (an ended track shows black)
    this.frozen = document.createElement("canvas");
    this.frozen.className = "tile-frozen";
    this.frozen.hidden = true;
    this.frozenAt = 0;
    this.placeholder = el("div", "tile-placeholder", "无视频", "No video");
    this.label = el("div", "tile-label");
    this.badge = el("div", "tile-badge");
    this.quality = el("div", "tile-quality");
    this.qualityBars = el("span", "bars");
    for (let i = 0; i < 3; i += 1) this.qualityBars.append(el("i"));
    this.qualityText = el("span", "qtext");
    this.quality.append(this.qualityBars, this.qualityText);
    this.micOff = el("div", "tile-micoff", "静音", "Muted");
    this.micOff.hidden = true;
    this.overlay = el("div", "tile-reconnecting");
    this.overlay.setAttribute("role", "status");
    const chip = el("span", "tile-reconnecting-chip");
    chip.append(el("span", "spinner"), el("span", "tile-reconnecting-text", "重连中", "Reconnecting…"));
    this.overlay.append(chip);
    this.overlay.hidden = true;
    const top = el("div", "tile-top");
    top.append(this.badge, this.quality);
    this.root.append(this.video, this.frozen, this.placeholder, this.overlay, top, this.micOff, this.label);
    this.audio = null;
    this.stats = null;      // previous raw counters, for deltas
    this.q = null;          // last computed quality
    this.videoTrack = null;
  }

  setLabel(zh, en, extra) {
    setBilingual(this.label, zh, en);
    if (extra) {
      const me = el("span", "tile-you", extra.zh, extra.en);
      this.label.prepend(me);
    }
  }

  setBadge(kind, zh, en) {
    this.badge.dataset.kind = kind;
    setBilingual(this.badge, zh, en);
  }

  setVideoTrack(track) {
    if (track === this.videoTrack) return;
    if (this.videoTrack) this.freeze();  // no black gap until the new track's first frame
    this.videoTrack = track;
    this.stats = null;
    this.video.srcObject = track ? new MediaStream([track]) : null;
    if (!track) return;
    this.video.play().catch(() => { /* muted video: only fails when detached */ });
    const thaw = () => { if (this.videoTrack === track) this.thaw(); };
    this.video.addEventListener("loadeddata", thaw, { once: true });
    if (typeof this.video.requestVideoFrameCallback === "function") this.video.requestVideoFrameCallback(thaw);
  }

  /** Keep the picture on screen now (if there is a live one) until thaw(). */
  freeze() {
    const v = this.video;
    if (this.isFrozen || !this.videoTrack || this.videoTrack.readyState !== "live" || !v.videoWidth || v.hidden) return;
    this.frozen.width = v.videoWidth;
    this.frozen.height = v.videoHeight;
    try {
      this.frozen.getContext("2d").drawImage(v, 0, 0);
    } catch {
      return;
    }
    this.frozen.classList.toggle("mirror", v.classList.contains("mirror"));
    this.frozen.hidden = false;
    this.frozenAt = performance.now();
  }

  thaw() {
    this.frozen.hidden = true;
  }

  get isFrozen() {
    return !this.frozen.hidden;
  }

  setAudioTracks(tracks, onBlocked) {
    const current = this.audio && this.audio.srcObject ? this.audio.srcObject.getAudioTracks() : [];
    const same = current.length === tracks.length && current.every((t) => tracks.includes(t));
    if (same) return;
    if (!tracks.length) {
      if (this.audio) { this.audio.srcObject = null; this.audio.remove(); this.audio = null; }
      return;
    }
    if (!this.audio) {
      this.audio = document.createElement("audio");
      this.audio.autoplay = true;
      this.audio.hidden = true;
      this.audio.dataset.identity = this.identity;
      this.root.append(this.audio);
    }
    this.audio.srcObject = new MediaStream(tracks);
    this.audio.play().catch((err) => { if (err && err.name === "NotAllowedError") onBlocked(); });
  }
}
