// Draws a RoomClient: one tile per participant (video, site name zh/en, state badge, quality),
// spotlight on click, hidden <audio> per participant, the connection banner, toasts. A tile whose
// site (or we) is reconnecting keeps its <video> and last picture under a "重连中 Reconnecting…"
// overlay; a page replaced by another session of its identity shows "在此继续 Continue here".

import { FIXED_LAYOUTS, gridFit, spotlightStrip } from "./layouts.js";
import { Tile } from "./tile.js";
import { el, setBilingual, toast } from "./ui.js";

const STATS_INTERVAL_MS = 2_000;
// A tile keeps its last picture while its site (or we) reconnect; once everyone is back it waits
// this long for new frames before it says "waiting for video" instead.
const FROZEN_MAX_MS = 10_000;

const STATE_TEXT = {
  connecting: ["正在连接…", "Connecting…"],
  connected: ["已连接", "Connected"],
  reconnecting: ["连接中断，正在重连…", "Reconnecting…"],
  replaced: ["已在其他页面或设备继续", "Continued in another tab or device"],
  ended: ["已停止：无法继续", "Stopped: cannot continue"],
};

// Why a page stopped for good (RoomClient state "ended"), and whether signing in again can help.
const ENDED_TEXT = {
  token_revoked: ["此登录或链接已被吊销", "This sign-in or link was revoked", true],
  token_expired: ["此登录或链接已过期", "This sign-in or link has expired", true],
  access_withdrawn: ["此账号或站点已无权进入", "This account or site no longer has access", false],
  invalid_token: ["此链接无效", "This link is not valid", false],
  unauthenticated: ["请重新登录", "Please sign in again", true],
};

/** Build an element with a class and optional bilingual text. */
/** Site label {zh, en} for a participant, from the page's `sites` table. */
function siteLabel(sites, info) {
  const site = info && info.site && sites ? sites[info.site] : null;
  if (site) return { zh: site.name_zh, en: site.name_en };
  const name = (info && (info.name || info.identity)) || "?";
  return { zh: name, en: info && info.site ? info.site : "" };
}

/**
 * Who a tile is within its site, when that needs saying: a person's or device's given name (never a
 * raw id such as "levee-phone"), or "终端 N Terminal N" when a site has several and no names.
 */
export function whoLabel(info, siblings) {
  const named = info.name && info.name !== info.identity && !info.name.startsWith("device:") ? info.name : null;
  if (named) return named;
  if (siblings.length < 2) return null;
  return `终端 ${siblings.indexOf(info.identity) + 1} Terminal ${siblings.indexOf(info.identity) + 1}`;
}

function qualityLevel(q) {
  if (!q) return "unknown";
  if (q.stalled || q.lossPct >= 10 || (q.rttMs != null && q.rttMs > 800)) return "poor";
  // frame rate alone says little: field kits and encoders send 5-15 fps on purpose; under 4 is choppy
  if (q.lossPct >= 2 || (q.fps != null && q.fps < 4) || (q.rttMs != null && q.rttMs > 300)) return "fair";
  return "good";
}

function qualityText(q) {
  if (!q) return "—";
  const fps = q.fps == null ? "—" : Math.round(q.fps);
  const loss = q.lossPct == null ? "—" : q.lossPct.toFixed(1);
  const rtt = q.rttMs == null ? "—" : Math.round(q.rttMs);
  const rate = q.kbps == null ? "" : `${q.kbps >= 1000 ? (q.kbps / 1000).toFixed(1) + " Mbps" : Math.round(q.kbps) + " kbps"} · `;
  return `${rate}${fps} fps · 丢包 ${loss}% · ${rtt} ms`;
}

/** Tiles a fixed wall layout shows at most. */
export class RoomView {
  /**
   * @param {RoomClient} client
   * @param {object} opts {wall: Element, sites, localTile: bool, mirrorLocal: bool, spotlight: bool}
   */
  constructor(client, opts) {
    this.client = client;
    this.wall = opts.wall;
    this.sites = opts.sites || {};
    this.spotlightEnabled = opts.spotlight !== false;
    this.showLocalTile = !!opts.localTile;
    this.mirrorLocal = opts.mirrorLocal !== false;
    this.localVideo = opts.localVideo || null;   // a page's own preview element, if not a tile
    this._uplinkPrev = null;
    this.onSpotlight = opts.onSpotlight || (() => {});
    this.baseLayout = this.wall.dataset.layout || "grid";
    this.tiles = new Map();      // identity -> Tile (remote)
    this.localTile = null;
    this.spotlit = null;         // the tile on the main screen now (computed in render)
    this.pinned = null;          // this screen's own choice, over the room's
    this.roomView = { spotlight: null, layout: null, followSpeaker: false, speaker: null, cells: [], rotateEvery: 0, rotateGroup: "" };
    this.groups = opts.groups || [];   // saved site groups, for turning through one
    this.rollcallSpot = null;    // the site being called in a roll-call, while it is
    this.followRollcall = !!opts.followRollcall;       // walls show the site called large
    this._turn = 0;              // how many times the free cells of a fixed layout have turned
    this._rotateTimer = null;
    this._vacant = new Map();    // site -> placeholder of a placed site that is not here
    this.followRoomLayout = !!opts.followRoomLayout;   // walls take the chair's layout
    this.onlyVideo = !!opts.onlyVideo;                 // walls show only sites that send video
    this.decorators = [];        // (tile, identity) => void, e.g. the room control's badges
    this.soundBlocked = false;
    client.view = this;

    client.addEventListener("participants", () => this.render());
    client.addEventListener("state", (e) => this.showState(e.detail.state, e.detail));
    client.addEventListener("toast", (e) => toast(e.detail.text, e.detail.level));
    client.addEventListener("join-error", (e) => this.showJoinError(e.detail));
    client.addEventListener("local-stream", (e) => this.setLocalStream(e.detail.stream));
    client.addEventListener("local-mute", () => this.render());
    client.addEventListener("media-closing", () => { for (const tile of this.tiles.values()) tile.freeze(); });
    client.addEventListener("replaced", (e) => this.showReplaced(e.detail.message));
    client.addEventListener("access-ended", (e) => this.showEnded(e.detail));

    const soundBtn = document.getElementById("enable-sound");
    if (soundBtn) soundBtn.addEventListener("click", () => this.enableSound());
    this.wall.addEventListener("click", (e) => {
      const tile = e.target.closest(".tile");
      if (tile && this.spotlightEnabled) this.toggleSpotlight(tile.dataset.identity);
    });
    this.wall.addEventListener("keydown", (e) => {
      const tile = e.target.closest(".tile");
      if (tile && (e.key === "Enter" || e.key === " ") && this.spotlightEnabled) {
        e.preventDefault();
        this.toggleSpotlight(tile.dataset.identity);
      }
    });
    // the wall also changes size when a side panel opens or closes, not only with the window
    if (typeof ResizeObserver === "function") new ResizeObserver(() => this.layout()).observe(this.wall);
    else window.addEventListener("resize", () => this.layout());
    this._statsTimer = setInterval(() => this.updateQuality().catch(() => {}), STATS_INTERVAL_MS);
    this.showState(client.state, {});
  }

  /** The <video> showing a participant (ourselves included), for tests and snapshots. */
  videoFor(identity) {
    if (this.client.me && identity === this.client.me.identity) {
      if (this.localTile) return this.localTile.video;
      if (this.localVideo) return this.localVideo;
    }
    const tile = this.tiles.get(identity);
    return tile ? tile.video : null;
  }

  setLocalStream(stream) {
    if (!this.showLocalTile) return;
    if (!this.localTile) {
      const id = (this.client.me && this.client.me.identity) || "__local";
      this.localTile = new Tile(id, { local: true, mirror: this.mirrorLocal });
      this.localTile.root.classList.add("tile-local");
    }
    this.localTile.video.srcObject = stream;
    this.localTile.video.play().catch(() => {});
    this.render();
  }

  /** Pin a tile on this screen only (click again to unpin and follow the room). */
  toggleSpotlight(identity) {
    if (this.spotlit === identity) {
      // unpin back to the room's choice, or (when the room's choice is this tile) to the grid
      this.pinned = this.pinned === identity && this.roomView.spotlight !== identity ? null : "__grid";
    } else {
      this.pinned = identity;
    }
    this.render();
    this.onSpotlight(this.pinned && this.pinned !== "__grid" ? this.pinned : null);
  }

  /** The room's control state: the chair's spotlight and layout, follow-speaker, the active speaker. */
  setRoomView(patch) {
    const changed = "spotlight" in patch && patch.spotlight !== this.roomView.spotlight;
    if ("rotateEvery" in patch && patch.rotateEvery !== this.roomView.rotateEvery) {
      clearInterval(this._rotateTimer);
      this._rotateTimer = patch.rotateEvery > 0 ? setInterval(() => { this._turn += 1; this.render(); }, patch.rotateEvery * 1000) : null;
    }
    Object.assign(this.roomView, patch);
    if (changed && this.pinned === "__grid") this.pinned = null;  // a new room spotlight shows again
    this.render();
  }

  _present(identity) {
    return !!identity && (this.tiles.has(identity) || !!(this.localTile && this.localTile.identity === identity));
  }

  _mainTile(layout) {
    if (this.pinned === "__grid") return null;
    if (this._present(this.pinned)) return this.pinned;
    const room = this.roomView;
    if (this._present(room.spotlight)) return room.spotlight;
    if (room.followSpeaker && this._present(room.speaker)) return room.speaker;
    if (layout === "spotlight") {
      if (this._present(room.speaker)) return room.speaker;
      const first = [...this.tiles.keys()][0];
      return first || null;
    }
    return null;
  }

  enableSound() {
    this.soundBlocked = false;
    const btn = document.getElementById("enable-sound");
    if (btn) btn.hidden = true;
    for (const tile of this.tiles.values()) {
      if (tile.audio) tile.audio.play().catch(() => this._soundBlocked());
    }
  }

  _soundBlocked() {
    this.soundBlocked = true;
    const btn = document.getElementById("enable-sound");
    if (btn) btn.hidden = false;
  }

  showState(state, detail) {
    const banner = document.getElementById("conn-banner");
    const [zh, en] = STATE_TEXT[state] || STATE_TEXT.connecting;
    if (banner) {
      banner.dataset.state = state;
      setBilingual(document.getElementById("conn-text"), zh, en);
    }
    if (state !== "replaced") this.hideReplaced();
    const pill = document.getElementById("conn-pill");
    if (pill) {
      pill.dataset.state = state;
      const short = {
        connecting: "连接中 Connecting", connected: "已连接 Connected", reconnecting: "重连中 Reconnecting",
        replaced: "已在别处继续 Continued elsewhere", ended: "已停止 Stopped",
      };
      pill.querySelector(".pill-text").textContent = short[state] || state;
    }
    document.body.dataset.conn = state;
    if (detail && detail.reason) console.info("state", state, detail.reason);
    this.render();
  }

  showJoinError(err) {
    const text = document.getElementById("conn-text");
    if (text) setBilingual(text, `无法加入：${err.message || err.code}`, "Cannot join, retrying…");
  }

  /**
   * Another tab or device took this identity over. This page stops and says so; it must not come
   * back by itself (the two would take each other over for ever), only when the user asks here.
   */
  showReplaced(message) {
    let box = document.getElementById("session-replaced");
    if (!box) {
      box = el("div", "session-replaced");
      box.id = "session-replaced";
      box.setAttribute("role", "alertdialog");
      box.setAttribute("aria-modal", "true");
      box.setAttribute("aria-labelledby", "session-replaced-title");
      const card = el("div", "card session-replaced-card");
      const title = el("h2", "", "已在其他页面或设备继续", "Continued in another tab or device");
      title.id = "session-replaced-title";
      const detail = el("p", "session-replaced-message");
      detail.id = "session-replaced-message";
      const hint = el("p", "muted", "本页已停止，不会自动重连。", "This page has stopped and will not reconnect by itself.");
      const button = el("button", "btn btn-primary btn-xl btn-block", "在此继续", "Continue here");
      button.type = "button";
      button.id = "btn-continue-here";
      button.addEventListener("click", () => {
        this.hideReplaced();
        this.client.resume();
      });
      card.append(title, detail, hint, button);
      box.append(card);
      document.body.append(box);
    }
    document.getElementById("session-replaced-message").textContent = message || "";
    box.hidden = false;
    document.getElementById("btn-continue-here").focus();
  }

  /**
   * Refused for good: a revoked or expired link, an ended sign-in, a site without access. The page
   * stops and says so in words a field unit can act on; only a sign-in can help a user's page.
   */
  showEnded({ code, message }) {
    const [zh, en, mayHelp] = ENDED_TEXT[code] || ["无法继续", "Cannot continue", false];
    // A device link cannot sign in: only a person's page gets the button.
    const signIn = mayHelp && (this.client.me || {}).kind !== "device";
    const box = el("div", "session-replaced");
    box.id = "session-ended";
    box.dataset.code = code;
    box.setAttribute("role", "alertdialog");
    box.setAttribute("aria-modal", "true");
    box.setAttribute("aria-labelledby", "session-ended-title");
    const card = el("div", "card session-replaced-card");
    const title = el("h2", "", zh, en);
    title.id = "session-ended-title";
    const detail = el("p", "session-replaced-message");
    detail.textContent = message && !message.includes(zh) ? `${message} (${code})` : `(${code})`;
    const hint = signIn
      ? el("p", "muted", "本页已停止，不会自动重连。", "This page has stopped and will not reconnect.")
      : el("p", "muted", "本页已停止，不会自动重连。如需继续，请联系值班员获取新链接。",
        "This page has stopped and will not reconnect. To go on, ask the duty officer for a new link.");
    card.append(title, detail, hint);
    if (signIn) {
      const link = el("a", "btn btn-primary btn-xl btn-block", "重新登录", "Sign in again");
      link.href = `/login?next=${encodeURIComponent(location.pathname)}`;
      link.id = "btn-sign-in-again";
      card.append(link);
    }
    box.append(card);
    document.getElementById("session-ended")?.remove();
    document.body.append(box);
  }

  hideReplaced() {
    const box = document.getElementById("session-replaced");
    if (box) box.hidden = true;
  }

  /** Bring the DOM in line with the client's model. */
  render() {
    const client = this.client;
    const seen = new Set();
    const bySite = new Map();   // site -> its identities here, in a stable order (to tell them apart)
    for (const p of [...client.participants.values()].sort((a, b) => a.info.identity.localeCompare(b.info.identity))) {
      if (!bySite.has(p.info.site)) bySite.set(p.info.site, []);
      bySite.get(p.info.site).push(p.info.identity);
    }
    for (const p of client.participants.values()) {
      const id = p.info.identity;
      // a wall or any other observer that sends nothing is no picture: the roster lists it, the wall does not
      if (p.info.role === "observer" && !client.publicationsOf(id).length) continue;
      seen.add(id);
      let tile = this.tiles.get(id);
      if (!tile) {
        tile = new Tile(id);
        this.tiles.set(id, tile);
        // the first frame (or a new size) changes what the badge should say
        tile.video.addEventListener("resize", () => {
          const q = this.client.participants.get(id);
          if (q) this._renderRemoteBadge(tile, q);
        });
      }
      const label = siteLabel(this.sites, p.info);
      tile.setLabel(label.zh, label.en);
      const who = this.sites[p.info.site] ? whoLabel(p.info, bySite.get(p.info.site) || []) : null;
      if (who) tile.label.append(el("span", "tile-who", who));
      tile.setVideoTrack(p.videoTrack);
      tile.setAudioTracks(p.audioTracks, () => this._soundBlocked());
      this._renderRemoteBadge(tile, p);
    }
    for (const [id, tile] of this.tiles) {
      if (!seen.has(id)) {
        tile.setVideoTrack(null);
        tile.setAudioTracks([], () => {});
        tile.root.remove();
        this.tiles.delete(id);
      }
    }
    if (this.pinned && this.pinned !== "__grid" && !this._present(this.pinned)) {
      this.pinned = null;
      this.onSpotlight(null);
    }
    const calling = this.followRollcall && this._present(this.rollcallSpot) ? this.rollcallSpot : null;
    const roomLayout = calling ? "spotlight" : this.followRoomLayout && this.roomView.layout ? this.roomView.layout : this.baseLayout;
    this.spotlit = calling || this._mainTile(roomLayout);
    if (this.localTile) this._renderLocal();

    const order = [];
    if (this.localTile) order.push(this.localTile);
    order.push(...[...this.tiles.values()].sort((a, b) => a.label.textContent.localeCompare(b.label.textContent, "zh")));
    const sendsVideo = (t) => this.client.publicationsOf(t.identity).some((x) => x.kind === "video");
    const without = this.onlyVideo ? order.filter((t) => !sendsVideo(t)) : [];
    if (without.length) order.splice(0, order.length, ...order.filter(sendsVideo));
    const cap = FIXED_LAYOUTS[roomLayout] || 0;
    if (cap) {
      // a fixed wall grid: the sites the chair placed in their cells, the free cells filled by the
      // main tile and the speaker first, then the rest by name, turning when the chair asks (轮巡)
      const rank = (t) => (t.identity === this.spotlit ? 0 : t.identity === this.roomView.speaker ? 1 : 2);
      order.sort((a, b) => rank(a) - rank(b));
      order.splice(0, order.length, ...this._cellOrder(cap, order));
    }
    order.forEach((tile, i) => {
      tile.root.classList.toggle("spotlit", tile.identity === this.spotlit);
      tile.root.classList.toggle("speaking", tile.identity === this.roomView.speaker);
      tile.root.hidden = cap > 0 && i >= cap;
      const cell = cap > 0 && this._cellOf ? this._cellOf.get(tile) : undefined;
      const n = Math.sqrt(cap);
      tile.root.style.gridArea = cell === undefined ? "" : `${Math.floor(cell / n) + 1} / ${(cell % n) + 1}`;
      if (!tile.vacant) for (const decorate of this.decorators) decorate(tile, tile.identity);
      if (tile.root.parentNode !== this.wall) this.wall.append(tile.root);
    });
    for (const [site, vacant] of this._vacant) {
      if (!order.includes(vacant)) { vacant.root.remove(); this._vacant.delete(site); }
    }
    // keep DOM order stable but sorted, without re-appending (which would restart videos) when unchanged
    for (const tile of without) {
      tile.root.hidden = true;
      if (tile.root.parentNode !== this.wall) this.wall.append(tile.root);
    }
    const domOrder = order.concat(without);
    const current = [...this.wall.querySelectorAll(":scope > .tile")];
    if (current.some((node, i) => node !== domOrder[i].root)) domOrder.forEach((t) => this.wall.append(t.root));

    const empty = document.getElementById("wall-empty");
    if (empty) empty.hidden = order.filter((t) => !t.vacant).length - (this.localTile ? 1 : 0) > 0;
    this.wall.dataset.layout = cap ? roomLayout : this.spotlit ? "spotlight" : roomLayout === "spotlight" ? "grid" : roomLayout;
    const count = document.getElementById("participant-count");
    if (count) count.textContent = String(this.tiles.size + (this.client.me ? 1 : 0));
    this.layout();
    requestAnimationFrame(() => this._reportTileSizes());
  }

  /** Tell the server how large each remote video is shown (device pixels; 0 x 0: hidden): a
   * simulcast publication then comes in the layer that fills its tile, not always the full one. */
  _reportTileSizes() {
    const dpr = window.devicePixelRatio || 1;
    const sizes = new Map();
    for (const tile of this.tiles.values()) {
      const v = tile.video;
      if (!tile.videoTrack) continue;
      const shown = v.isConnected && !v.hidden && v.clientWidth > 0;
      sizes.set(tile.videoTrack, shown ? [Math.round(v.clientWidth * dpr), Math.round(v.clientHeight * dpr)] : [0, 0]);
    }
    this.client.setTileSizes(sizes);
  }

  _renderRemoteBadge(tile, p) {
    const pubs = this.client.publicationsOf(p.info.identity);
    const video = pubs.find((x) => x.kind === "video");
    const audio = pubs.find((x) => x.kind === "audio");
    tile.micOff.hidden = !(audio && audio.muted);
    // the site (or we) reconnecting: its last picture stays, marked as such, until frames come back
    const reconnecting = p.info.state === "reconnecting" || this.client.state === "reconnecting";
    if (tile.isFrozen && reconnecting) tile.frozenAt = performance.now();
    if (tile.isFrozen && !reconnecting) {
      const gone = !p.videoTrack || (video && video.muted) || performance.now() - tile.frozenAt > FROZEN_MAX_MS;
      if (gone) tile.thaw();
    }
    tile.overlay.hidden = !reconnecting;
    tile.root.classList.toggle("reconnecting", reconnecting);
    if (reconnecting && tile.q) { tile.q = null; this._paintQuality(tile); }  // no stale "good" bars
    const hasPicture = !!(p.videoTrack && !(video && video.muted)) || tile.isFrozen;
    tile.placeholder.hidden = hasPicture;
    tile.video.hidden = !hasPicture;
    if (reconnecting) {
      tile.setBadge("warn", "重连中", "Reconnecting");
    } else if (!video) {
      tile.setBadge("idle", "未发布视频", "No video");
      setBilingual(tile.placeholder, "未发布视频", "No video");
    } else if (video.paused) {
      tile.setBadge("warn", "带宽不足已暂停", "Paused: bandwidth");
      setBilingual(tile.placeholder, "带宽不足已暂停", "Paused: bandwidth");
      tile.placeholder.hidden = tile.isFrozen;
    } else if (video.muted) {
      tile.setBadge("idle", "摄像头已关", "Camera off");
      setBilingual(tile.placeholder, "摄像头已关闭", "Camera off");
    } else if (!p.videoTrack || tile.video.videoWidth === 0) {
      tile.setBadge("warn", "等待画面", "Waiting");
      setBilingual(tile.placeholder, "等待画面…", "Waiting for video…");
      tile.placeholder.hidden = tile.isFrozen;
    } else if (tile.q && tile.q.stalled) {
      tile.setBadge("bad", "画面中断", "Stalled");
    } else {
      tile.setBadge("ok", "在线", "Live");
    }
  }

  _renderLocal() {
    const tile = this.localTile;
    const me = this.client.me || {};
    const label = siteLabel(this.sites, me);
    tile.setLabel(label.zh, label.en, { zh: "本机", en: "You" });
    const camOff = this.client.cameraMuted;
    tile.placeholder.hidden = !camOff;
    tile.video.hidden = camOff;
    setBilingual(tile.placeholder, "摄像头已关闭", "Camera off");
    tile.micOff.hidden = !this.client.micMuted;
    if (!this.client.publisher) tile.setBadge("warn", "未发布", "Not live");
    else if (camOff) tile.setBadge("idle", "摄像头已关", "Camera off");
    else tile.setBadge("ok", "发布中", "Sending");
  }

  /** A fixed layout's tiles in cell order: placed sites (a vacant cell when absent), then the rest, turned. */
  _cellOrder(cap, tiles) {
    const cells = (this.roomView.cells || []).slice(0, cap);
    const siteOf = (t) => (t.local ? this.client.me && this.client.me.site : (this.client.participants.get(t.identity) || { info: {} }).info.site);
    const slots = new Array(cap).fill(null);
    const used = new Set();
    cells.forEach((site, i) => {
      if (!site) return;
      const tile = tiles.find((t) => !used.has(t) && siteOf(t) === site);
      if (tile) { used.add(tile); slots[i] = tile; } else slots[i] = this._vacantTile(site);
    });
    let rest = tiles.filter((t) => !used.has(t));
    const free = slots.filter((x) => x === null).length;
    // turning through a saved group: its sites fill the free cells, the others wait off the wall
    const group = this.roomView.rotateEvery > 0 && this.roomView.rotateGroup
      ? (this.groups.find((g) => g.id === this.roomView.rotateGroup) || { sites: null }).sites : null;
    if (group) rest = rest.filter((t) => group.includes(siteOf(t)));
    let turned = rest;
    if (this.roomView.rotateEvery > 0 && rest.length > free && free > 0) {
      const start = (this._turn * free) % rest.length;
      turned = rest.slice(start).concat(rest.slice(0, start));
    }
    let k = 0;
    for (let i = 0; i < cap; i += 1) if (slots[i] === null && k < turned.length) slots[i] = turned[k++];
    // each shown tile keeps its cell (a placed site stays where the chair put it, gaps and all)
    this._cellOf = new Map(slots.map((t, i) => [t, i]).filter(([t]) => t));
    const shown = slots.filter(Boolean);
    // every other tile after them (hidden beyond the cells), those off the group's turn included
    return shown.concat(tiles.filter((t) => !shown.includes(t)));
  }

  /** The placeholder of a placed site that is not here: its name and "offline", in its cell. */
  _vacantTile(site) {
    let vacant = this._vacant.get(site);
    if (!vacant) {
      const root = el("div", "tile tile-vacant");
      root.dataset.site = site;
      const info = this.sites[site];
      root.append(el("div", "tile-placeholder", "离线", "Offline"), el("div", "tile-label", info ? info.name_zh : site, info ? info.name_en : ""));
      vacant = { root, vacant: true, identity: `vacant:${site}`, label: root.lastChild };
      this._vacant.set(site, vacant);
    }
    return vacant;
  }

  /** Follow a roll-call on this screen: the site being called is on the main screen until the call moves on. */
  setRollcall(identity) {
    this.rollcallSpot = identity || null;
    this.render();
  }

  /** Size the grid so every tile is as large as the wall allows at 16:9. */
  layout() {
    const wall = this.wall;
    if (wall.dataset.layout === "spotlight") { this._layoutSpotlight(); return; }
    if (wall.dataset.layout !== "grid") return;
    const n = wall.querySelectorAll(":scope > .tile:not([hidden])").length || 1;
    const fit = gridFit(n, wall.clientWidth, wall.clientHeight);
    wall.style.setProperty("--cols", String(fit.cols));
    wall.style.setProperty("--rows", String(fit.rows));
  }

  /** Spotlight: the main tile and a strip beside it (below it on a portrait screen) that fits every other tile. */
  _layoutSpotlight() {
    const wall = this.wall;
    const n = wall.querySelectorAll(":scope > .tile:not([hidden]):not(.spotlit)").length;
    const css = getComputedStyle(wall);
    const gap = parseFloat(css.columnGap) || 0;
    const W = wall.clientWidth - parseFloat(css.paddingLeft) - parseFloat(css.paddingRight);
    const H = wall.clientHeight - parseFloat(css.paddingTop) - parseFloat(css.paddingBottom);
    const fit = spotlightStrip(n, W, H, gap);
    wall.dataset.strip = fit.side;
    for (const [name, value] of Object.entries(fit.vars)) wall.style.setProperty(name, value);
  }

  /** Inbound fps, loss % and RTT per tile, from getStats every couple of seconds. */
  async updateQuality() {
    const client = this.client;
    if (!client.subscriber) return;
    this._reportTileSizes();  // a tile resized without a render (window, panel) is caught here
    const [video, audio, rttMs] = await Promise.all([
      client.inboundVideoStats(), client.inboundAudioStats(), client.subscriberRtt(),
    ]);
    const now = performance.now();
    const byIdentity = new Map();
    for (const s of [...video, ...audio]) {
      if (!s.identity) continue;
      const acc = byIdentity.get(s.identity) || { received: 0, lost: 0, frames: 0, fps: null, bytes: 0 };
      acc.received += s.packetsReceived || 0;
      acc.bytes += s.bytesReceived || 0;
      acc.lost += s.packetsLost || 0;
      if ("framesDecoded" in s) { acc.frames += s.framesDecoded; acc.fps = s.framesPerSecond; }
      byIdentity.set(s.identity, acc);
    }
    for (const [identity, tile] of this.tiles) {
      const acc = byIdentity.get(identity);
      if (!acc) { tile.q = null; this._paintQuality(tile); continue; }
      const prev = tile.stats;
      tile.stats = { ...acc, at: now };
      if (!prev) continue;
      const dRecv = acc.received - prev.received;
      const dLost = Math.max(0, acc.lost - prev.lost);
      const dt = (now - prev.at) / 1000;
      const fps = tile.videoTrack ? (acc.frames - prev.frames) / dt : null;
      const pub = client.publicationsOf(identity).find((x) => x.kind === "video");
      tile.q = {
        kbps: dt > 0 ? (8 * Math.max(0, acc.bytes - prev.bytes)) / dt / 1000 : null,
        fps,
        lossPct: dRecv + dLost > 0 ? (100 * dLost) / (dRecv + dLost) : 0,
        rttMs,
        stalled: !!(tile.videoTrack && pub && !pub.muted && !pub.paused && fps !== null && fps < 0.5),
      };
      this._paintQuality(tile);
      const p = client.participants.get(identity);
      if (p) this._renderRemoteBadge(tile, p);
    }
    if (client.publisher) this._paintLocalQuality(await client.outboundVideoStats(), now);
  }

  _paintQuality(tile) {
    const level = qualityLevel(tile.q);
    tile.quality.dataset.level = level;
    tile.qualityText.textContent = qualityText(tile.q);
    tile.quality.title = "码率 · 帧率 · 丢包 · 往返时延  bitrate · fps · packet loss · round-trip time";
  }

  _paintLocalQuality(up, now) {
    if (!up) return;
    const prev = this._uplinkPrev;
    this._uplinkPrev = { ...up, at: now };
    const lossPct = up.fractionLost != null ? up.fractionLost * 100 : 0;
    const dt = prev ? (now - prev.at) / 1000 : 0;
    const kbps = prev && dt > 0 ? (8 * Math.max(0, up.bytesSent - prev.bytesSent)) / dt / 1000 : null;
    const q = { kbps, fps: up.framesPerSecond, lossPct, rttMs: up.rttMs, stalled: false };
    if (prev && up.packetsSent === prev.packetsSent && !this.client.cameraMuted) q.stalled = true;
    if (this.localTile) { this.localTile.q = q; this._paintQuality(this.localTile); }
    this._emitUplink(q);
  }

  _emitUplink(q) {
    this.client.dispatchEvent(new CustomEvent("uplink", { detail: { ...q, level: qualityLevel(q), text: qualityText(q) } }));
  }

  destroy() {
    clearInterval(this._statsTimer);
    clearInterval(this._rotateTimer);
  }
}
