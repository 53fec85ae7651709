// Video roll-call on the room and field pages: the called site's alert (banner, beep, vibration,
// countdown, a huge "到 Present" button) and, on the caller's screens, the spotlight on the site called.
// It listens to the RoomClient's `rollcall_*` messages (client.on) and asks through client.request.
import { setBilingual, toast } from "./ui.js";

const HINT = {
  calling: ["请在摄像头前点击「到」", "Press Present in front of your camera"],
  camera_off: ["摄像头已关闭：先点「打开摄像头」，再点「到」", "Your camera is off: turn it on, then press Present"],
  overdue: ["已超时，仍可应答（记为迟到）", "Time is up — you can still answer (recorded as late)"],
};
const RESULT = {
  answered: ["已到 — 应答成功", "Answered", "ok"],
  late: ["已到（迟到）", "Answered late", "warn"],
  no_video: ["无视频！请点「打开摄像头」，再按「到」", "No video! Turn your camera on, then press Present again", "bad"],
  absent: ["点名已结束：缺席", "Roll-call over: absent", "bad"],
  excused: ["已请假", "Excused", "ok"],
  overdue: HINT.overdue.concat(["warn"]),
};

/** Wire roll-call handling into a started page's client and view. */
export function initRollCall(client, view) {
  const root = document.getElementById("rollcall-alert");
  if (!root) return null;
  const els = {
    title: document.getElementById("rc-alert-title"),
    hint: document.getElementById("rc-alert-hint"),
    count: document.getElementById("rc-alert-count"),
    button: document.getElementById("rc-present"),
    camera: document.getElementById("rc-camera"),
    result: document.getElementById("rc-alert-result"),
    strip: document.getElementById("rollcall-strip"),
  };
  // the "calling now" strip sits in the page's flow (like the muted banner): stacked, never over it
  const main = document.querySelector("main");
  if (main && els.strip) main.prepend(els.strip);
  const state = { call: null, offset: 0, timer: null, beeper: null, audio: null, spot: null, hideTimer: null };
  const sites = view && view.sites ? view.sites : {};
  const siteName = (id) => (sites[id] ? `${sites[id].name_zh} ${sites[id].name_en}` : id);
  const serverNow = () => Date.now() / 1000 + state.offset;

  function beep() {
    try {
      state.audio = state.audio || new AudioContext();
      if (state.audio.state === "suspended") state.audio.resume().catch(() => {});
      const ctx = state.audio;
      for (const [at, freq] of [[0, 880], [0.25, 660]]) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = freq;
        osc.type = "square";
        gain.gain.setValueAtTime(0.25, ctx.currentTime + at);
        gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + at + 0.22);
        osc.connect(gain).connect(ctx.destination);
        osc.start(ctx.currentTime + at);
        osc.stop(ctx.currentTime + at + 0.23);
      }
    } catch { /* no audio device: the banner and vibration still say it */ }
    if (navigator.vibrate) navigator.vibrate([400, 150, 400]);
  }

  function stopAlarm() {
    clearInterval(state.beeper);
    state.beeper = null;
    if (navigator.vibrate) navigator.vibrate(0);
  }

  function tick() {
    if (!state.call) return;
    const left = Math.max(0, Math.ceil(state.call.deadline - serverNow()));
    els.count.textContent = root.dataset.state === "calling" ? String(left) : "—";
    if (root.dataset.state === "calling" && left <= 0) setPhase("overdue");
  }

  const cameraOff = () => !!client.cameraMuted;

  // The alert covers the page's own camera button: while this site's camera is off it offers its
  // own, above "到", so a site can always answer on camera instead of ending "no video" or absent.
  function paintCamera() {
    const open = root.dataset.state === "calling" || root.dataset.state === "overdue";
    const off = open && cameraOff();
    if (els.camera) els.camera.hidden = !off;
    root.dataset.camera = off ? "off" : "on";
    if (open) {
      const [zh, en] = off ? HINT.camera_off : (HINT[root.dataset.state] || HINT.calling);
      setBilingual(els.hint, zh, en);
    }
  }

  function setPhase(phase) {
    root.dataset.state = phase;
    const [zh, en] = HINT[phase] || HINT.calling;
    setBilingual(els.hint, zh, en);
    if (phase !== "calling") stopAlarm();
    paintCamera();
  }

  function show(msg) {
    clearTimeout(state.hideTimer);
    state.call = msg;
    state.offset = msg.now - Date.now() / 1000;
    root.hidden = false;
    document.body.classList.add("rc-called");
    els.title.textContent = msg.title;
    els.result.textContent = "";
    els.result.dataset.level = "";
    els.button.disabled = false;
    // The site answers on camera: show it its own picture inside the alert that covers the page.
    const preview = document.getElementById("rc-preview");
    if (preview) {
      preview.srcObject = client.localStream || null;
      preview.hidden = !client.localStream;
    }
    setPhase(msg.state || "calling");
    clearInterval(state.timer);
    state.timer = setInterval(tick, 250);
    tick();
    if ((msg.state || "calling") === "calling") {
      stopAlarm();
      beep();
      state.beeper = setInterval(beep, 1500);
    }
    (cameraOff() && els.camera ? els.camera : els.button).focus();
  }

  function result(outcome, responseTime, final) {
    const [zh, en, level] = RESULT[outcome] || [outcome, outcome, "warn"];
    const secs = responseTime != null ? ` · ${responseTime.toFixed(1)} s` : "";
    setBilingual(els.result, zh + secs, en);
    els.result.dataset.level = level;
    if (outcome === "overdue") { setPhase("overdue"); return; }
    if (outcome === "no_video") { paintCamera(); if (els.camera && !els.camera.hidden) els.camera.focus(); }
    if (final) {
      stopAlarm();
      root.dataset.state = outcome;
      els.button.disabled = true;
      clearInterval(state.timer);
      state.hideTimer = setTimeout(hide, 6000);
    }
  }

  function hide() {
    root.hidden = true;
    root.dataset.state = "idle";
    document.body.classList.remove("rc-called");
    state.call = null;
    clearInterval(state.timer);
    stopAlarm();
  }

  if (els.camera) {
    els.camera.addEventListener("click", () => {
      client.setMuted("video", false);
      els.result.textContent = "";
      els.result.dataset.level = "";
      els.button.focus();
    });
  }
  client.addEventListener("local-mute", paintCamera);

  els.button.addEventListener("click", async () => {
    if (!state.call) return;
    els.button.disabled = true;
    try {
      const reply = await client.request({ type: "rollcall_answer", rollcall_id: state.call.rollcall_id });
      result(reply.outcome, reply.response_time, reply.outcome !== "no_video");
    } catch (err) {
      setBilingual(els.result, `未能应答：${err.message || err}`, "Answer failed");
      els.result.dataset.level = "bad";
    } finally {
      if (root.dataset.state === "calling" || root.dataset.state === "overdue") els.button.disabled = false;
    }
  });

  function spotlight(msg) {
    const me = client.me && client.me.identity;
    if (msg.identity && msg.identity !== me) {
      if (view.spotlit !== msg.identity) view.toggleSpotlight(msg.identity);
      state.spot = msg.identity;
      els.strip.hidden = false;
      setBilingual(els.strip, `正在点名：${siteName(msg.site)}`, "Calling now");
    } else if (msg.identity && msg.identity === me) {
      els.strip.hidden = true;  // we are the site called: the alert says it
    } else if (msg.site) {
      els.strip.hidden = false;
      setBilingual(els.strip, `正在点名：${siteName(msg.site)}（未在本会商室）`, "Calling a site not in this room");
    } else {
      if (state.spot && view.spotlit === state.spot) view.toggleSpotlight(state.spot);
      state.spot = null;
      els.strip.hidden = true;
    }
  }

  function handle(msg) {
    const mySite = client.me && client.me.site;
    switch (msg.type) {
      case "rollcall_call":
        if (msg.site === mySite) show(msg);
        break;
      case "rollcall_call_ended":
        if (state.call && msg.rollcall_id === state.call.rollcall_id) {
          if (msg.final) result(msg.outcome, null, true);
          else setPhase("overdue");
        }
        break;
      case "rollcall_spotlight":
        if (view) spotlight(msg);
        break;
      case "rollcall_escalation":
        toast(`点名缺席上报：${msg.sites.map(siteName).join("、")} — ${msg.title}`, "error", 20000);
        break;
      default:
        break;
    }
  }

  // a reply (rollcall_answer_result) resolves its request and falls through handle() untouched
  client.on("rollcall_*", handle);
  client.addEventListener("state", (e) => { if (e.detail.state === "connected") client.send({ type: "rollcall_sync" }); });
  window.__rollcall = { state, show, hide };
  return window.__rollcall;
}
