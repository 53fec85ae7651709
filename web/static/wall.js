// The wall display: joins at once (no one is there to click), never publishes, shows only video
// and names in the room's layout (or the one in ?layout=), follows the chair's spotlight and,
// when the chair asks, the active speaker. It recovers by itself: the client reconnects (at once,
// then every second, then with backoff), and a wall that stays disconnected for long reloads the
// whole page. A wall replaced by another session of its identity stays stopped until told here.

import { initControl } from "./control.js";
import { pageData } from "./ui.js";
import { RoomClient } from "./room-client.js";
import { RoomView } from "./room-view.js";
import { paintStatus, startStatusBar } from "./wall-status.js";
import { initRecording } from "./recording.js";

const RELOAD_AFTER_MS = 90_000;
const FIXED = new Set(["grid", "spotlight", "2x2", "3x3", "4x4"]);

const data = pageData();
const params = new URLSearchParams(location.search);
const forced = FIXED.has(params.get("layout")) ? params.get("layout") : null;

const client = new RoomClient({
  room: (data.room || {}).id,
  token: data.token || null,
  iceServers: data.ice_servers || [],
  me: data.me || null,
  publish: false,
});
const wall = document.getElementById("wall");
const view = new RoomView(client, { wall, sites: data.sites || {}, spotlight: false, followRoomLayout: true, onlyVideo: true,
  followRollcall: true, groups: data.groups || [] });
window.__room = client;
window.__view = view;
const control = initControl(client, view, { wall: true });
if (forced) {
  // this screen's own layout (one wall of several): keep it whatever the chair picks
  const set = view.setRoomView.bind(view);
  view.setRoomView = (patch) => set({ ...patch, layout: forced });
  view.setRoomView({ layout: forced });
}

const connText = document.getElementById("wall-conn-text");
let lostAt = null;
client.addEventListener("state", (e) => {
  const state = e.detail.state;
  document.body.dataset.conn = state;
  const text = {
    connected: ["已连接", "Connected"],
    reconnecting: ["网络中断，正在自动重连…", "Reconnecting…"],
    replaced: ["已在其他页面或设备继续", "Continued elsewhere"],
    ended: ["已停止：此链接已无法使用", "Stopped: this link no longer works"],
  }[state] || ["正在连接…", "Connecting…"];
  connText.innerHTML = "";
  const zh = document.createElement("span"); zh.className = "zh"; zh.textContent = text[0];
  const en = document.createElement("span"); en.className = "en"; en.textContent = text[1];
  connText.append(zh, " ", en);
  // a replaced wall must not reload: it would take the identity back from the other screen; an
  // ended one (its link revoked or expired) would only be refused again
  lostAt = ["connected", "replaced", "ended"].includes(state) ? null : (lostAt ?? Date.now());
});
setInterval(() => {
  if (lostAt !== null && Date.now() - lostAt > RELOAD_AFTER_MS) location.reload();
}, 5_000);

// follow a roll-call: the site being called is on the wall, large, until the call moves on
client.on("rollcall_spotlight", (msg) => { view.setRollcall(msg.identity || null); paintStatus(msg); });
client.addEventListener("state", (e) => { if (e.detail.state === "connected") client.send({ type: "rollcall_sync" }); });
startStatusBar(client, view, data);
initRecording(client, { indicator: document.getElementById("ws-rec") });

client.start();
window.__control = control;
