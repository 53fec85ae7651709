// The room's roster (名册) beside the wall: every site expected in the room, as a tree, and what it
// is doing now (offline, online, sending video, muted, hand up, on the floor); one click puts a site
// on the main screen (for everyone when this screen moderates), another calls it (video roll-call).
import { el, setBilingual, toast } from "./ui.js";

const STATE = {
  offline: ["离线", "Offline"], online: ["在线", "Online"], live: ["视频中", "Live"],
  muted: ["静音", "Muted"], noaudio: ["无声音", "No audio"], hand: ["举手", "Hand up"], floor: ["发言中", "On the floor"],
};
const CALL_WINDOW_S = 30;
// A site's cameras pulled over RTSP (participants of role "camera"): their state, from `status`.
const CAMERA = {
  connecting: ["摄像机连接中", "Camera connecting"], live: ["摄像机直播", "Camera live"],
  failed: ["摄像机故障", "Camera failed"], unsupported: ["摄像机编码不支持", "Camera codec unsupported"],
};

/** What each expected site is doing now: [{site, identities, video, state, chips}] in tree order. */
export function rosterRows(expected, sites, participants, publications, control) {
  const bySite = new Map();
  const camerasBySite = new Map();
  for (const p of participants) {
    if (!bySite.has(p.site)) bySite.set(p.site, []);
    bySite.get(p.site).push(p.identity);
    if (p.role === "camera") {
      if (!camerasBySite.has(p.site)) camerasBySite.set(p.site, []);
      const [state, ...reason] = (p.status || "connecting").split(": ");
      camerasBySite.get(p.site).push({ identity: p.identity, name: p.name || p.identity, state, reason: reason.join(": ") });
    }
  }
  const ids = [...expected, ...[...bySite.keys()].filter((s) => !expected.includes(s))];
  const depth = (s) => { let d = 0; let p = sites[s] && sites[s].parent; while (p && ids.includes(p) && d < 8) { d += 1; p = sites[p].parent; } return d; };
  // children right after their parent, in configuration order
  const ordered = [];
  const place = (s) => { if (ordered.includes(s)) return; ordered.push(s); ids.filter((c) => sites[c] && sites[c].parent === s).forEach(place); };
  ids.filter((s) => !(sites[s] && sites[s].parent && ids.includes(sites[s].parent))).forEach(place);
  return ordered.map((site) => {
    const identities = bySite.get(site) || [];
    const pubs = publications.filter((p) => identities.includes(p.identity));
    const video = pubs.find((p) => p.kind === "video" && !p.muted);
    const audio = pubs.filter((p) => p.kind === "audio");
    const chips = [];
    if (!identities.length) chips.push("offline");
    else chips.push(video ? "live" : "online");
    if (identities.length && !audio.length) chips.push("noaudio");
    else if (identities.length && audio.every((p) => p.muted)) chips.push("muted");
    if (identities.some((i) => control.hands.includes(i))) chips.push("hand");
    if (identities.some((i) => i === control.speaker)) chips.push("floor");
    const cameras = camerasBySite.get(site) || [];
    return { site, identities, video: video ? video.identity : null, state: chips[0], chips, cameras, depth: depth(site), guest: !expected.includes(site) };
  });
}

/** Build the roster panel and its button, and keep them current. Returns {render, panel}. */
export function initRoster(client, view, control, data) {
  const room = data.room || {};
  const sites = data.sites || {};
  const expected = room.sites || [];
  const canCall = !!(data.me && data.me.grants && (data.me.grants.includes("moderate") || data.me.grants.includes("issue")));
  const name = (s) => (sites[s] ? [sites[s].name_zh, sites[s].name_en] : [s, ""]);

  const panel = el("aside", "roster-panel");
  panel.id = "roster-panel";
  panel.setAttribute("aria-label", "名册 Roster");
  const head = el("div", "roster-head");
  const title = el("strong", "roster-title", "名册", "Roster");
  const summary = el("div", "roster-summary");
  summary.id = "roster-summary";
  const missing = el("button", "btn btn-ghost roster-filter", "只看未到", "Missing only");
  missing.type = "button"; missing.id = "roster-missing"; missing.setAttribute("aria-pressed", "false");
  const close = el("button", "btn btn-ghost roster-close", "关闭", "Close");
  close.type = "button";
  head.append(title, summary, missing, close);
  const list = el("ul", "roster-list");
  list.id = "roster-list";
  panel.append(head, list);
  document.body.append(panel);

  const toggle = el("button", "btn btn-control", "名册", "Roster");
  toggle.type = "button"; toggle.id = "btn-roster"; toggle.setAttribute("aria-controls", "roster-panel");
  const badge = el("span", "roster-badge");
  badge.id = "roster-badge";
  toggle.append(badge);
  const nav = document.querySelector("nav.controls");
  if (nav) nav.prepend(toggle);
  const show = (open) => {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    view.layout();
  };
  toggle.addEventListener("click", () => show(panel.hidden));
  close.addEventListener("click", () => show(false));
  missing.addEventListener("click", () => {
    const on = missing.getAttribute("aria-pressed") !== "true";
    missing.setAttribute("aria-pressed", String(on));
    panel.dataset.missingOnly = String(on);
  });
  // beside the wall on a screen wide enough for both; a sheet to open on a phone
  show(window.matchMedia("(min-width: 1280px)").matches);

  function rows() {
    const me = client.me ? [{ identity: client.me.identity, site: client.me.site }] : [];
    const people = [...client.participants.values()].map((p) => ({
      identity: p.info.identity, site: p.info.site, role: p.info.role, status: p.info.status, name: p.info.name,
    }));
    const pubs = [...client.publications.values()];
    if (client.me && client.localStream) {
      const video = client.localStream.getVideoTracks().length > 0;
      if (video) pubs.push({ identity: client.me.identity, kind: "video", muted: client.cameraMuted });
      pubs.push({ identity: client.me.identity, kind: "audio", muted: client.micMuted });
    }
    const hands = (control && control.state.hands || []).map((h) => h.identity);
    const speaker = view.roomView.speaker || (control && control.speaker) || null;
    return rosterRows(expected, sites, [...me, ...people], pubs, { hands, speaker });
  }

  function render() {
    const all = rows();
    const present = all.filter((r) => r.state !== "offline" && !r.guest).length;
    setBilingual(summary, `在线 ${present} / ${expected.length} · 未到 ${expected.length - present}`, "");
    summary.dataset.missing = String(expected.length - present);
    badge.textContent = `${present}/${expected.length}`;
    list.replaceChildren(...all.map(row));
  }

  function row(r) {
    const li = el("li", "roster-row");
    li.dataset.site = r.site;
    li.dataset.state = r.state;
    li.style.setProperty("--depth", String(r.depth));
    // the chair drags a site onto a cell of the wall's layout (chair controls)
    li.draggable = true;
    li.addEventListener("dragstart", (e) => { e.dataTransfer.setData("text/site", r.site); e.dataTransfer.effectAllowed = "copy"; });
    const [zh, en] = name(r.site);
    const main = el("button", "roster-name");
    main.type = "button";
    main.dataset.act = "spotlight";
    main.disabled = r.state === "offline";
    main.title = r.state === "offline" ? "不在线 Offline" : "设为主画面 Put on the main screen";
    const label = el("span", "roster-label", zh, en);
    const chips = el("span", "roster-chips");
    for (const c of r.chips) {
      const chip = el("span", `roster-chip chip-${c}`, STATE[c][0], STATE[c][1]);
      chips.append(chip);
    }
    for (const camera of r.cameras || []) {
      const [zh, en] = CAMERA[camera.state] || CAMERA.connecting;
      const chip = el("span", `roster-chip chip-camera chip-camera-${camera.state}`, `${zh} ${camera.name}`, en);
      chip.dataset.camera = camera.identity;
      chip.title = camera.reason ? `${zh} ${en}: ${camera.reason}` : `${zh} ${en}`;
      chips.append(chip);
    }
    main.append(el("span", "roster-dot"), label, chips);
    li.append(main);
    if (canCall) {
      const call = el("button", "btn btn-ghost roster-call", "点名", "Call");
      call.type = "button";
      call.dataset.act = "call";
      li.append(call);
    }
    return li;
  }

  list.addEventListener("click", async (e) => {
    const btn = e.target.closest("button[data-act]");
    if (!btn) return;
    const site = btn.closest("[data-site]").dataset.site;
    const r = rows().find((x) => x.site === site);
    if (!r) return;
    if (btn.dataset.act === "spotlight") spotlight(r);
    else await call(r, btn);
  });

  function spotlight(r) {
    const identity = r.video || r.identities[0];
    if (!identity) return;
    if (control && control.moderating) control.send({ type: "spotlight", identity });
    if (view.spotlit !== identity) view.toggleSpotlight(identity);
  }

  async function call(r, btn) {
    btn.disabled = true;
    const [zh] = name(r.site);
    try {
      const resp = await fetch("/api/rollcalls", {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sites: [r.site], mode: "sequence", window: CALL_WINDOW_S, grace: 0, room: room.id, title: `点名 ${zh}` }),
      });
      if (!resp.ok) throw new Error((await resp.text()).trim());
      toast(`已点名 ${zh} · Calling ${zh}`, "info");
    } catch (err) {
      toast(`点名失败 Call failed: ${err.message || err}`);
    } finally {
      btn.disabled = false;
    }
  }

  client.addEventListener("participants", render);
  client.addEventListener("local-mute", render);
  client.addEventListener("local-stream", render);
  client.on("control_*", () => queueMicrotask(render));
  client.on("active_speaker", () => queueMicrotask(render));
  render();
  window.__roster = { render, rows, panel };
  return { render, panel };
}
