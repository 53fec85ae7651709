// The field unit on a phone: rear camera, own preview large, connection state unmistakable.
import { startPage } from "./page.js";
import { initControl } from "./control.js";
import { initRollCall } from "./rollcall.js";
import { startInbox } from "./inbox.js";
import { pageData } from "./ui.js";
import { setBilingual } from "./ui.js";
import { initRecording } from "./recording.js";

const localVideo = document.getElementById("local-video");
const status = document.getElementById("field-status");
const statusText = document.getElementById("field-status-text");
const liveBadge = document.getElementById("live-badge");
const noCam = document.getElementById("field-nocam");
const uplink = document.getElementById("field-uplink");
const uplinkText = document.getElementById("uplink-text");
const switchBtn = document.getElementById("btn-switch");

const STATUS = {
  connecting: ["正在连接", "Connecting"],
  connected: ["已连接", "Connected"],
  live: ["直播中", "Live"],
  reconnecting: ["断线重连中", "Reconnecting"],
  replaced: ["已在别处继续", "Continued elsewhere"],
  ended: ["已停止", "Stopped"],
};

const { client, view } = startPage({ facingMode: "environment", localVideo, onState: paintStatus });
initRecording(client, { indicator: document.getElementById("rec-badge") });
initRollCall(client, view);
initControl(client, view);
startInbox(client, pageData());

function paintStatus() {
  let state = client.state;
  if (state === "connected" && client.publisher && client.publisher.connectionState === "connected") state = "live";
  status.dataset.state = state;
  const [zh, en] = STATUS[state] || STATUS.connecting;
  setBilingual(statusText, zh, en);
  liveBadge.hidden = state !== "live" || client.cameraMuted;
}

client.addEventListener("publisher-state", paintStatus);
client.addEventListener("local-mute", () => {
  noCam.hidden = !client.cameraMuted;
  paintStatus();
});
client.addEventListener("local-stream", async (e) => {
  localVideo.srcObject = e.detail.stream;
  localVideo.play().catch(() => {});
  const track = e.detail.stream.getVideoTracks()[0];
  const facing = track && track.getSettings ? track.getSettings().facingMode : undefined;
  localVideo.classList.toggle("mirror", facing === "user");
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    switchBtn.hidden = devices.filter((d) => d.kind === "videoinput").length < 2;
  } catch { /* keep hidden */ }
});
client.addEventListener("uplink", (e) => {
  uplink.dataset.level = e.detail.level;
  uplinkText.textContent = e.detail.text;
});
switchBtn.addEventListener("click", () => {
  client.switchCamera().catch((err) => console.warn("switch camera failed", err));
});
paintStatus();
