// Room control in the browser: the chair's panel (lock, mute all, end, layout, follow speaker, hand
// queue, history), per-tile actions (spotlight, mute, stop camera, remove, hand over the chair), and
// what every site sees: who is muted by whom, raised hands, the active speaker, the room ending.
// The server enforces all of it (server/control/); this only asks and shows.

import { el, pageData, setBilingual, toast } from "./ui.js";

const LAYOUTS = [
  ["grid", "宫格", "Grid"], ["spotlight", "主画面+条", "Spotlight"], ["2x2", "2×2", "4 tiles"],
  ["3x3", "3×3", "9 tiles"], ["4x4", "4×4", "16 tiles"],
];
const ACTIONS = {
  spotlight: ["设为主画面", "spotlight"], mute: ["静音", "mute"], unmute: ["解除静音", "unmute"],
  allow_self_unmute: ["允许自行开麦", "allow self-unmute"], mute_all: ["全体静音", "mute all"],
  remove: ["移出", "remove"], lock: ["锁定会商室", "lock"], unlock: ["解锁会商室", "unlock"], end: ["结束会商", "end"],
  raise_hand: ["举手", "raise hand"], lower_hand: ["放下手", "lower hand"], grant_floor: ["准许发言", "grant floor"],
  hand_over: ["移交主持", "hand over chair"], layout: ["切换布局", "layout"], self_unmuted: ["自行开麦", "unmuted self"],
  refused: ["被拒绝", "refused"], join_refused: ["拒绝加入", "join refused"],
  recording_started: ["开始录制", "recording started"], recording_stopped: ["停止录制", "recording stopped"],
};
const MODERATORS = new Set(["chair", "moderator"]);

/** What a history entry says: which layout, which cells, a spotlight set or cleared. */
export function historyText(e, sites) {
  const d = e.data || {};
  if (e.action === "spotlight" && !d.target) return ["取消主画面", "cleared the spotlight"];
  if (e.action === "layout") {
    const [, zh, en] = LAYOUTS.find(([v]) => v === d.layout) || [d.layout, d.layout, d.layout];
    const parts = [[`布局：${zh}`, `layout: ${en}`]];
    const placed = (d.cells || []).filter(Boolean).map((c) => (sites[c] ? sites[c].name_zh : c));
    if (placed.length) parts.push([`固定：${placed.join("、")}`, `placed: ${placed.length}`]);
    if (d.rotate_every) parts.push([`轮巡 ${d.rotate_every} 秒`, `rotating every ${d.rotate_every} s`]);
    if (d.follow_speaker) parts.push(["跟随发言人", "following the speaker"]);
    return [parts.map((p) => p[0]).join("，"), parts.map((p) => p[1]).join(", ")];
  }
  return ACTIONS[e.action] || [e.action, e.action];
}
const CELLS = { "2x2": 4, "3x3": 9, "4x4": 16 };


function button(zh, en, ctl, onClick, extra = "") {
  const b = el("button", `btn btn-ctl ${extra}`.trim(), zh, en);
  b.type = "button";
  b.dataset.ctl = ctl;
  b.addEventListener("click", (e) => { e.stopPropagation(); onClick(e); });
  return b;
}

export class RoomControlUI {
  /** @param {RoomClient} client @param {RoomView} view @param {{wall?: boolean}} opts */
  constructor(client, view, opts = {}) {
    this.client = client;
    this.view = view;
    this.wall = !!opts.wall;
    this.state = { chair: null, spotlight: null, layout: "grid", follow_speaker: false, locked: false, roles: {}, hands: [], mutes: [] };
    this.speaker = null;
    client.addEventListener("message", (e) => this.onMessage(e.detail));
    client.addEventListener("server-error", (e) => this.onServerError(e.detail));
    client.addEventListener("join-error", (e) => this.onJoinError(e.detail));
    client.addEventListener("state", (e) => { if (e.detail.state === "connected" && this.wall) this.hideOverlay(); });
    view.decorators.push((tile, identity) => this.decorate(tile, identity));
    if (!this.wall) this.buildControls();
    window.__control = this;
  }

  get me() { return (this.client.me && this.client.me.identity) || null; }
  get myRole() { return this.state.roles[this.me] || (this.client.me && this.client.me.role) || "participant"; }
  get moderating() { return MODERATORS.has(this.myRole); }

  name(identity) {
    if (!identity) return "—";
    const info = identity === this.me ? this.client.me : (this.client.participants.get(identity) || {}).info;
    const site = info && info.site ? this.view.sites[info.site] : null;
    return site ? site.name_zh : (info && info.name) || identity;
  }

  /** Send a control request; failures become a toast (the server says why). */
  async send(msg) {
    try {
      return await this.client.request(msg);
    } catch (err) {
      console.warn("control request failed", msg.type, err);
      return null;
    }
  }

  muteOf(identity, kind) { return this.state.mutes.find((m) => m.identity === identity && m.kind === kind) || null; }

  // --- messages ----------------------------------------------------------------------------------

  onMessage(msg) {
    switch (msg.type) {
      case "control_state":
        this.state = msg;
        this.speaker = msg.active_speaker;
        this.mirrorMutes();
        // the chair's own screen shows the layout it gives the walls (a participant keeps its own grid)
        if (!this.wall) this.view.followRoomLayout = this.moderating;
        this.view.setRoomView({ spotlight: msg.spotlight, layout: msg.layout, followSpeaker: msg.follow_speaker, speaker: msg.active_speaker,
          cells: msg.cells || [], rotateEvery: msg.rotate_every || 0, rotateGroup: msg.rotate_group || "" });
        this.paint();
        break;
      case "active_speaker":
        this.speaker = msg.identity;
        this.view.setRoomView({ speaker: msg.identity });
        break;
      case "control_notice":
        this.onNotice(msg);
        break;
      case "room_ended":
        this.ended(["会商已结束", "The consultation has ended"], `${msg.by_name} 结束了会商 · ended by ${msg.by_name}`);
        break;
      case "you_were_removed":
        this.ended(["您已被移出会商室", "You were removed from the room"], `${msg.by_name} ${msg.reason ? "· " + msg.reason : ""}`);
        break;
      default:
        break;
    }
  }

  onNotice(n) {
    const mine = n.target === this.me;
    const kindText = n.kind === "video" ? ["摄像头", "camera"] : ["麦克风", "microphone"];
    if (mine && n.action === "muted") {
      toast(`${n.actor_name} 关闭了您的${kindText[0]} · ${n.actor_name} turned off your ${kindText[1]}`, "warn");
    } else if (mine && (n.action === "floor_granted" || n.action === "unmuted")) {
      this.client.setMuted(n.kind || "audio", false);
      toast(n.action === "floor_granted" ? `${n.actor_name} 准许您发言，麦克风已打开 · You have the floor` : `${n.actor_name} 打开了您的${kindText[0]} · your ${kindText[1]} is on`, "info");
    } else if (n.action === "muted_all" && this.myRole !== "chair" && n.actor !== this.me) {
      toast(`${n.actor_name} 设置了全体静音 · ${n.actor_name} muted everyone`, "warn");
    } else if (mine && n.action === "chair_handed_over") {
      toast("您现在是主持人 · You are now the chair", "info");
    }
  }

  onServerError(msg) {
    if (msg.code === "unmute_refused") this.mirrorMutes(true);
  }

  onJoinError(msg) {
    if (msg.code === "removed_from_room") {
      this.ended(["您已被移出会商室", "You were removed from the room"], "");
    } else if (msg.code === "room_locked") {
      this.showOverlay(["会商室已锁定", "The room is locked"], "请联系主持人，正在重试… · Ask the chair; retrying…", false);
    }
  }

  /** A server mute on us turns our own button off too, so the page never says "on" while muted. */
  mirrorMutes(force = false) {
    for (const kind of ["audio", "video"]) {
      const muted = this.muteOf(this.me, kind);
      const local = kind === "video" ? this.client.cameraMuted : this.client.micMuted;
      if (muted && (!local || force)) this.client.setMuted(kind, true);
    }
  }

  ended(title, detail) {
    if (this.wall) {
      // a wall waits for the next consultation and rejoins by itself
      this.showOverlay(["会商已结束", "The consultation has ended"], "等待下一次会商… · Waiting for the next one…", false);
      return;
    }
    this.client.close();
    this.showOverlay(title, detail, true);
  }

  showOverlay(title, detail, back) {
    let box = document.getElementById("room-ended");
    if (!box) {
      box = el("div", "room-ended");
      box.id = "room-ended";
      box.setAttribute("role", "alertdialog");
      document.body.append(box);
    }
    box.replaceChildren();
    const card = el("div", "card room-ended-card");
    card.append(el("h2", "", title[0], title[1]));
    if (detail) { const p = el("p", "muted"); p.textContent = detail; card.append(p); }
    if (back) {
      const a = el("a", "btn btn-primary btn-xl", "返回会商室列表", "Back to rooms");
      a.href = "/";
      card.append(a);
    }
    box.append(card);
    box.hidden = false;
  }

  hideOverlay() {
    const box = document.getElementById("room-ended");
    if (box) box.hidden = true;
  }

  // --- tiles -------------------------------------------------------------------------------------

  decorate(tile, identity) {
    let box = tile.ctl;
    if (!box) {
      box = tile.ctl = el("div", "tile-ctl");
      tile.root.append(box);
    }
    const s = this.state;
    const hand = s.hands.find((h) => h.identity === identity);
    const audio = this.muteOf(identity, "audio");
    const video = this.muteOf(identity, "video");
    const local = !!tile.local;
    const key = JSON.stringify([s.roles[identity], !!hand, audio, video, this.moderating, this.myRole, s.spotlight === identity, local, this.wall]);
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    box.replaceChildren();
    const badges = el("div", "tile-ctl-badges");
    if (s.roles[identity] === "chair") badges.append(el("span", "ctl-badge ctl-chair", "主持", "Chair"));
    if (hand) badges.append(el("span", "ctl-badge ctl-hand", "举手", "Hand up"));
    if (audio) badges.append(el("span", "ctl-badge ctl-muted", `${audio.by_name} 已静音`, "Muted"));
    if (video) badges.append(el("span", "ctl-badge ctl-muted", `${video.by_name} 关摄像头`, "Camera stopped"));
    box.append(badges);
    if (this.wall || local || !this.moderating) return;
    const id = identity;
    const bar = el("div", "tile-actions");
    const spot = s.spotlight === id;
    bar.append(button(spot ? "取消主画面" : "主画面", spot ? "Unspotlight" : "Spotlight", "spotlight",
      () => this.send({ type: "spotlight", identity: spot ? null : id })));
    if (s.roles[id] !== "observer") {
      bar.append(button(audio ? "开麦" : "静音", audio ? "Unmute" : "Mute", "mute",
        () => this.send({ type: "mute_participant", identity: id, kind: "audio", muted: !audio })));
      bar.append(button(video ? "开摄像头" : "关摄像头", video ? "Camera on" : "Stop camera", "camera",
        () => this.send({ type: "mute_participant", identity: id, kind: "video", muted: !video })));
      if (audio) {
        bar.append(button(audio.self_unmute ? "禁止自行开麦" : "允许自行开麦", audio.self_unmute ? "Refuse self-unmute" : "Allow self-unmute",
          "allow", () => this.send({ type: "allow_self_unmute", identity: id, kind: "audio", allowed: !audio.self_unmute })));
      }
    }
    if (this.myRole === "chair" && s.roles[id] !== "observer") {
      bar.append(button("移交主持", "Make chair", "hand-over", () => {
        if (window.confirm(`将主持移交给 ${this.name(id)}? Hand the chair to ${this.name(id)}?`)) this.send({ type: "hand_over_chair", identity: id });
      }));
    }
    bar.append(button("移出", "Remove", "remove", () => {
      if (window.confirm(`将 ${this.name(id)} 移出会商室? Remove ${this.name(id)} from the room?`)) this.send({ type: "remove_participant", identity: id });
    }, "btn-danger"));
    box.append(bar);
  }

  // --- the controls bar, the panel ---------------------------------------------------------------

  buildControls() {
    const nav = document.querySelector("nav.controls, nav.field-controls");
    const leave = document.getElementById("btn-leave");
    const look = nav && nav.classList.contains("field-controls") ? "btn-field" : "btn-control";
    this.handBtn = button("举手", "Raise hand", "raise-hand", () => {
      const up = this.state.hands.some((h) => h.identity === this.me);
      this.send({ type: "raise_hand", raised: !up });
    }, look);
    this.handBtn.id = "btn-hand";
    this.handBtn.hidden = true;
    this.panelBtn = button("主持控制", "Chair controls", "panel", () => this.togglePanel(), look);
    this.panelBtn.id = "btn-chair";
    this.panelBtn.hidden = true;
    if (nav) { nav.insertBefore(this.handBtn, leave); nav.insertBefore(this.panelBtn, leave); }

    this.banner = el("div", "muted-banner");
    this.banner.id = "muted-banner";
    this.banner.hidden = true;
    // in the page's flow, above the video: it pushes the wall down instead of covering a picture
    const main = document.querySelector("main");
    if (main) main.prepend(this.banner); else document.body.append(this.banner);

    this.panel = el("aside", "control-panel");
    this.panel.id = "control-panel";
    this.panel.hidden = true;
    document.body.append(this.panel);

    for (const id of ["btn-mic", "btn-camera"]) {
      const b = document.getElementById(id);
      if (!b) continue;
      // a muted site's own button must not pretend it can unmute: ask for the floor instead
      b.addEventListener("click", (e) => {
        const kind = id === "btn-mic" ? "audio" : "video";
        const local = kind === "audio" ? this.client.micMuted : this.client.cameraMuted;
        const mute = this.muteOf(this.me, kind);
        if (local && mute && !mute.self_unmute) {
          e.stopImmediatePropagation();
          toast(`${mute.by_name} 已将您静音，请举手申请发言 · Muted by ${mute.by_name}: raise your hand to speak`, "warn");
        }
      }, { capture: true });
    }
  }

  togglePanel(force) {
    this.panel.hidden = force === undefined ? !this.panel.hidden : !force;
    this.panelBtn.setAttribute("aria-expanded", String(!this.panel.hidden));
    if (!this.panel.hidden) { this.paintPanel(); this.loadHistory(); }
  }

  paint() {
    if (this.wall) return;
    const up = this.state.hands.some((h) => h.identity === this.me);
    this.handBtn.hidden = !(this.myRole === "participant" || this.myRole === "moderator");
    this.handBtn.dataset.raised = String(up);
    setBilingual(this.handBtn, up ? "放下手" : "举手", up ? "Lower hand" : "Raise hand");
    this.panelBtn.hidden = !this.moderating;
    const n = this.state.hands.length;
    setBilingual(this.panelBtn, n ? `主持控制 · ${n} 人举手` : "主持控制", "Chair controls");
    if (!this.moderating) this.panel.hidden = true;

    const audio = this.muteOf(this.me, "audio");
    const video = this.muteOf(this.me, "video");
    const mute = audio || video;
    this.banner.hidden = !mute;
    if (mute) {
      const what = audio && video ? "麦克风和摄像头" : audio ? "麦克风" : "摄像头";
      const may = mute.self_unmute ? "您可自行开启 · You may turn it back on" : "请举手申请发言 · Raise your hand to ask for the floor";
      this.banner.textContent = `${mute.by_name} 关闭了您的${what} · Muted by ${mute.by_name} — ${may}`;
    }
    if (!this.panel.hidden) { this.paintPanel(); this.loadHistory(); }
  }

  paintPanel() {
    const s = this.state;
    const p = this.panel;
    p.replaceChildren();
    const head = el("header", "control-head");
    head.append(el("h2", "", "主持控制", "Chair controls"), button("关闭", "Close", "close", () => this.togglePanel(false), "btn-ghost"));
    p.append(head);
    const who = el("p", "muted");
    who.textContent = `主持人 Chair: ${this.name(s.chair)}`;
    p.append(who);

    const room = el("section", "control-section");
    room.append(el("h3", "", "会场", "Room"));
    room.append(button(s.locked ? "解锁会商室" : "锁定会商室", s.locked ? "Unlock room" : "Lock room", "lock",
      () => this.send({ type: "lock_room", locked: !s.locked }), s.locked ? "btn-warning" : ""));
    room.append(button("全体静音", "Mute all but chair", "mute-all", () => this.send({ type: "mute_all" })));
    const muted = [...new Set(s.mutes.filter((m) => m.kind === "audio").map((m) => m.identity))];
    if (muted.length) {
      room.append(button(`全体解除静音 (${muted.length})`, "Unmute all", "unmute-all", () => {
        for (const identity of muted) this.send({ type: "mute_participant", identity, kind: "audio", muted: false });
      }));
    }
    if (s.spotlight) room.append(button("取消主画面", "Clear spotlight", "clear-spotlight", () => this.send({ type: "spotlight", identity: null })));
    room.append(button("结束会商", "End for all", "end", () => {
      if (window.confirm("结束会商，所有人将离开? End the consultation for everyone?")) this.send({ type: "end_room" });
    }, "btn-danger"));
    p.append(room);

    const layout = el("section", "control-section");
    layout.append(el("h3", "", "大屏布局", "Wall layout"));
    const picker = el("div", "layout-picker");
    for (const [value, zh, en] of LAYOUTS) {
      const b = button(zh, en, `layout-${value}`, () => this.send({ type: "set_layout", layout: value }));
      b.setAttribute("aria-pressed", String(s.layout === value));
      picker.append(b);
    }
    layout.append(picker);
    const follow = button(s.follow_speaker ? "跟随发言人: 开" : "跟随发言人: 关", s.follow_speaker ? "Follow speaker: on" : "Follow speaker: off",
      "follow-speaker", () => this.send({ type: "set_layout", layout: s.layout, follow_speaker: !s.follow_speaker }));
    follow.setAttribute("aria-pressed", String(s.follow_speaker));
    layout.append(follow);
    if (CELLS[s.layout]) layout.append(this.cellEditor(s));
    p.append(layout);

    const hands = el("section", "control-section");
    hands.append(el("h3", "", `发言申请 (${s.hands.length})`, "Floor requests"));
    if (!s.hands.length) hands.append(el("p", "muted", "暂无举手", "No hands raised"));
    const list = el("ol", "hand-queue");
    for (const h of s.hands) {
      const li = el("li");
      const t = new Date(h.raised_at * 1000).toLocaleTimeString("zh-CN", { hour12: false });
      const label = el("span", "hand-name");
      label.textContent = `${this.name(h.identity)} · ${t}`;
      li.append(label, button("准许发言", "Grant floor", "grant", () => this.send({ type: "grant_floor", identity: h.identity }), "btn-primary"));
      list.append(li);
    }
    hands.append(list);
    p.append(hands);

    this.historyBox = el("section", "control-section");
    this.historyBox.append(el("h3", "", "会商记录", "History"));
    this.historyList = el("ol", "history-list");
    this.historyBox.append(this.historyList);
    p.append(this.historyBox);
  }

  /** The wall's cells: drag a site from the roster onto one (or pick it), and how often the free cells turn. */
  cellEditor(s) {
    const n = CELLS[s.layout];
    const cells = Array.from({ length: n }, (_, i) => s.cells[i] || "");
    const sites = this.view.sites || {};
    const expected = (pageData().room || {}).sites || Object.keys(sites);
    const place = (i, site) => {
      const next = cells.slice();
      const before = next.indexOf(site);
      if (site && before >= 0) next[before] = "";  // a site is in one cell at a time
      next[i] = site;
      this.send({ type: "set_layout", layout: s.layout, cells: next });
    };
    const box = el("div", "cell-editor");
    box.append(el("p", "muted", "从名册拖入单位，或在格中选择", "Drag a site from the roster onto a cell, or pick one"));
    const grid = el("div", "cell-grid");
    grid.style.setProperty("--n", String(Math.sqrt(n)));
    cells.forEach((site, i) => {
      const cell = el("div", "cell-slot");
      cell.dataset.cell = String(i);
      cell.dataset.site = site;
      const pick = document.createElement("select");
      pick.setAttribute("aria-label", `第 ${i + 1} 格 Cell ${i + 1}`);
      pick.append(new Option("自动 Auto", ""));
      for (const id of expected) pick.append(new Option(sites[id] ? sites[id].name_zh : id, id, false, id === site));
      pick.addEventListener("change", () => place(i, pick.value));
      cell.append(el("span", "cell-no", String(i + 1)), pick);
      cell.addEventListener("dragover", (e) => { e.preventDefault(); cell.classList.add("drop"); });
      cell.addEventListener("dragleave", () => cell.classList.remove("drop"));
      cell.addEventListener("drop", (e) => {
        e.preventDefault();
        const dropped = e.dataTransfer.getData("text/site");
        if (dropped) place(i, dropped);
      });
      grid.append(cell);
    });
    box.append(grid);
    const rotate = el("label", "cell-rotate", "轮巡", "Rotate free cells every");
    const every = document.createElement("select");
    every.id = "rotate-every";
    for (const sec of [0, 10, 20, 30, 60, 120]) every.append(new Option(sec ? `${sec} 秒 s` : "不轮巡 Off", String(sec), false, sec === s.rotate_every));
    every.addEventListener("change", () => this.send({ type: "set_layout", layout: s.layout, rotate_every: Number(every.value) }));
    rotate.append(every);
    const through = document.createElement("select");
    through.id = "rotate-group";
    through.setAttribute("aria-label", "轮巡范围 Rotate through");
    through.append(new Option("全部单位 Every site", "", false, !s.rotate_group));
    for (const g of pageData().groups || []) through.append(new Option(`${g.name_zh} ${g.name_en}`, g.id, false, g.id === s.rotate_group));
    through.addEventListener("change", () => this.send({ type: "set_layout", layout: s.layout, rotate_group: through.value }));
    rotate.append(through);
    box.append(rotate);
    return box;
  }

  async loadHistory() {
    const reply = await this.send({ type: "room_history", limit: 200 });
    if (!reply || !this.historyList) return;
    this.historyList.replaceChildren();
    for (const e of reply.events.slice(-40).reverse()) {
      const li = el("li");
      const t = new Date(e.at * 1000).toLocaleTimeString("zh-CN", { hour12: false });
      const [zh, en] = historyText(e, this.view.sites || {});
      const target = e.data && e.data.target ? ` → ${this.name(e.data.target)}` : "";
      const what = e.action === "refused" ? ` (${(ACTIONS[e.data.action] || [e.data.action])[0]})` : "";
      li.textContent = `${t} ${this.name(e.actor)} ${zh}${what}${target} · ${en}`;
      this.historyList.append(li);
    }
  }
}

/** Start the room control on a page; returns the controller. */
export function initControl(client, view, opts = {}) {
  return new RoomControlUI(client, view, opts);
}
