// The wall's status bar: room, clock, sites online of those expected, recording, the link, and what
// the wall is doing (roll-call, rotation), in sizes read from across a command hall.
import { setBilingual } from "./ui.js";

const LINK = {
  connected: ["已连接", "Connected"], reconnecting: ["重连中", "Reconnecting"], connecting: ["连接中", "Connecting"],
  replaced: ["已在别处继续", "Continued elsewhere"], ended: ["已停止", "Stopped"],
};
let state = { client: null, view: null, expected: [], sites: {}, calling: null };

function two(n) { return String(n).padStart(2, "0"); }

function tick() {
  const d = new Date();
  document.getElementById("ws-clock").textContent = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

function paintOnline() {
  const { client, expected } = state;
  // the same count as the chair's roster: every site connected to the room, this wall's own included
  const here = new Set([...client.participants.values()].map((p) => p.info.site));
  if (client.me && client.me.site) here.add(client.me.site);
  const counted = expected.length ? [...here].filter((s) => expected.includes(s)).length : here.size;
  document.getElementById("ws-online-count").textContent = String(counted);
  document.getElementById("ws-online-total").textContent = expected.length ? ` / ${expected.length}` : "";
}

/** Say what the wall is doing now: calling a site, turning its cells, or nothing special. */
export function paintStatus(rollcall) {
  if (rollcall !== undefined) state.calling = rollcall && rollcall.site ? rollcall.site : null;
  const mode = document.getElementById("ws-mode");
  if (!mode || !state.view) return;
  const site = state.calling && state.sites[state.calling];
  if (state.calling) {
    setBilingual(mode, `正在点名：${site ? site.name_zh : state.calling}`, "Roll-call");
    mode.dataset.kind = "rollcall";
  } else if (state.view.roomView.rotateEvery > 0) {
    const group = (state.groups || []).find((g) => g.id === state.view.roomView.rotateGroup);
    setBilingual(mode, `轮巡${group ? `：${group.name_zh}` : ""} 每 ${state.view.roomView.rotateEvery} 秒`, "Rotating");
    mode.dataset.kind = "rotate";
  }
  mode.hidden = !state.calling && !(state.view.roomView.rotateEvery > 0);
}

/** Keep the status bar current. */
export function startStatusBar(client, view, data) {
  state = { client, view, expected: ((data.room || {}).sites) || [], sites: data.sites || {}, groups: data.groups || [], calling: null };
  tick();
  setInterval(tick, 1000);
  client.addEventListener("participants", paintOnline);
  client.on("control_state", () => queueMicrotask(() => paintStatus()));
  client.addEventListener("state", (e) => {
    const link = document.getElementById("ws-link");
    link.dataset.state = e.detail.state;
    const [zh, en] = LINK[e.detail.state] || LINK.connecting;
    setBilingual(document.getElementById("ws-link-text"), zh, en);
  });
  paintOnline();
}
