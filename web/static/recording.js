// "录制中 REC" on every screen of the room (room page, field unit, wall), told by the server
// (`recording_state`, on join and on every change), and the chair's button to start and stop it.
import { setBilingual } from "./ui.js";

/**
 * Keep `indicator` (an element with a `.rec-text` child, or itself) saying whether the room is
 * recorded; with `button`, start or stop recording on a click (the server checks the role).
 */
export function initRecording(client, { indicator, button } = {}) {
  const state = { recording: false, reasons: [] };
  window.__recording = state;
  const paint = () => {
    if (indicator) {
      indicator.dataset.recording = String(state.recording);
      const text = indicator.querySelector(".rec-text") || indicator;
      setBilingual(text, state.recording ? "录制中" : "未录制", state.recording ? "REC" : "Not recording");
    }
    if (button) {
      button.dataset.recording = String(state.recording);
      const label = button.querySelector(".rec-label") || button;
      setBilingual(label, state.recording ? "停止录制" : "开始录制", state.recording ? "Stop recording" : "Record");
    }
  };
  client.on("recording_state", (msg) => {
    state.recording = !!msg.recording;
    state.reasons = msg.reasons || [];
    state.session = msg.session || null;
    paint();
  });
  // a new session (reconnected): the server tells the state again; until then, say nothing is known
  client.addEventListener("state", (e) => { if (e.detail.state !== "connected") { state.recording = false; paint(); } });
  if (button) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await client.request({ type: state.recording ? "recording_stop" : "recording_start" });
      } catch (err) {
        console.warn("recording request refused", err);  // the client has shown the server's reason
      } finally {
        button.disabled = false;
      }
    });
  }
  paint();
  return state;
}
