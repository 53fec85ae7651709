// Shared start-up of the room and field pages: read the embedded data, build client and view,
// wire the buttons, and join at once (device link) or on a click (logged-in user).

import { RoomClient } from "./room-client.js";
import { RoomView } from "./room-view.js";

import { pageData } from "./ui.js";

function bindToggle(button, client, kind) {
  if (!button) return;
  const paint = () => {
    const muted = kind === "video" ? client.cameraMuted : client.micMuted;
    button.dataset.on = String(!muted);
    button.setAttribute("aria-pressed", String(!muted));
  };
  button.addEventListener("click", () => {
    const muted = kind === "video" ? client.cameraMuted : client.micMuted;
    client.setMuted(kind, !muted);
  });
  client.addEventListener("local-mute", paint);
  client.addEventListener("local-stream", () => { button.hidden = false; paint(); });
  paint();
}

/**
 * Start a page. `opts`: {facingMode, localTile, mirrorLocal, localVideo, onState(state)}.
 * Returns {client, view}.
 */
export function startPage(opts = {}) {
  const data = pageData();
  const room = data.room || {};
  const client = new RoomClient({
    room: room.id,
    token: data.token || null,
    iceServers: data.ice_servers || [],
    me: data.me || null,
    facingMode: opts.facingMode || "user",
  });
  const gridBtn = document.getElementById("btn-grid");
  const view = new RoomView(client, {
    wall: document.getElementById("wall"),
    sites: data.sites || {},
    groups: data.groups || [],
    localTile: !!opts.localTile,
    mirrorLocal: opts.mirrorLocal,
    localVideo: opts.localVideo || null,
    onSpotlight: (id) => { if (gridBtn) gridBtn.hidden = !id; },
  });
  window.__room = client;
  window.__view = view;

  bindToggle(document.getElementById("btn-camera"), client, "video");
  bindToggle(document.getElementById("btn-mic"), client, "audio");
  if (gridBtn) gridBtn.addEventListener("click", () => view.spotlit && view.toggleSpotlight(view.spotlit));

  const leave = document.getElementById("btn-leave");
  if (leave) leave.addEventListener("click", () => client.close());
  // pagehide fires on navigation, tab close and mobile back-forward cache alike
  window.addEventListener("pagehide", () => client.close());

  if (opts.onState) client.addEventListener("state", (e) => opts.onState(e.detail.state));

  if (data.token || (data.me && data.me.kind === "device")) {
    // Device links (wall screens, unattended kits): nobody is there to click. The link's token
    // became this browser's cookie (the address bar no longer shows it), so the identity says so.
    // Start after the caller has wired its own listeners (inbox, roll-call, status), which run
    // before any event.
    queueMicrotask(() => client.start());
  } else {
    const gate = document.getElementById("join-gate");
    const btn = document.getElementById("join-btn");
    const banner = document.getElementById("conn-banner");
    if (banner) banner.dataset.state = "idle";
    const pill = document.getElementById("conn-pill");
    if (pill) {
      pill.dataset.state = "idle";
      pill.querySelector(".pill-text").textContent = "未加入 Not joined";
    }
    gate.hidden = false;
    btn.focus();
    btn.addEventListener("click", () => {
      gate.hidden = true;
      if (banner) banner.dataset.state = "connecting";
      client.start();
    }, { once: true });
  }
  return { client, view };
}
