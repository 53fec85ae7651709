// The live roll-call board: polls the roll-call's JSON once a second and redraws the grid.
import { el, setBilingual } from "./ui.js";

const board = document.getElementById("rc-board");
const id = board.dataset.id;
const token = board.dataset.token;
const suffix = token ? `?token=${encodeURIComponent(token)}` : "";
const grid = document.getElementById("rc-grid");
const totals = document.getElementById("rc-totals");
const stateEl = document.getElementById("rc-state");
const meta = document.getElementById("rc-meta");
const dialog = document.getElementById("rc-excuse");
const excuseForm = document.getElementById("rc-excuse-form");
const TOTALS = [["answered", "已到", "Answered"], ["late", "迟到", "Late"], ["no_video", "无视频", "No video"],
  ["absent", "缺席", "Absent"], ["excused", "请假", "Excused"], ["calling", "点名中", "Calling"], ["waiting", "待点名", "Waiting"]];
let data = null;
let offset = 0;

/** An element with a class and, optionally, plain text. */
function textEl(tag, cls, text) {
  const node = el(tag, cls);
  if (text != null) node.textContent = text;
  return node;
}

function card(row) {
  const root = textEl("article", `rc-card rc-card-${row.outcome}`);
  root.dataset.site = row.site;
  root.dataset.outcome = row.outcome;
  const shot = textEl("div", "rc-shot");
  if (row.snapshot_url) {
    const img = textEl("img");
    img.src = row.snapshot_url + suffix;
    img.alt = `${row.name_zh} 抓拍 snapshot`;
    shot.append(img);
  } else {
    const none = textEl("div", "rc-noshot");
    setBilingual(none, row.outcome === "calling" ? "等待应答…" : "无画面", row.outcome === "calling" ? "Waiting for the answer…" : "No picture");
    shot.append(none);
  }
  const body = textEl("div", "rc-card-body");
  const name = textEl("div", "rc-card-name");
  setBilingual(name, `${row.n}. ${row.name_zh}`, row.name_en);
  const outcome = textEl("div", `rc-outcome rc-o-${row.outcome}`);
  setBilingual(outcome, row.label_zh, row.label_en);
  body.append(name, outcome);
  if (row.window_open && row.deadline) {
    const cd = textEl("div", "rc-countdown");
    cd.dataset.deadline = row.deadline;
    body.append(cd);
  }
  const small = textEl("div", "rc-small");
  if (row.response_time != null) small.append(`响应 response ${row.response_time.toFixed(1)} s · ${row.answered_local}`);
  if (row.reason) small.append(` 原因 reason: ${row.reason}`);
  if (row.escalated_to) small.append(` 已上报 escalated → ${row.escalated_name}`);
  body.append(small);
  if (!["answered", "late", "excused"].includes(row.outcome)) {
    const btn = textEl("button", "btn btn-ghost rc-excuse-btn");
    btn.type = "button";
    setBilingual(btn, "请假", "Excuse");
    btn.addEventListener("click", () => {
      excuseForm.action = `/rollcalls/${id}/excuse`;
      excuseForm.elements.site.value = row.site;
      document.getElementById("rc-excuse-site").textContent = row.name_zh;
      dialog.showModal();
    });
    body.append(btn);
  }
  root.append(shot, body);
  return root;
}

function render() {
  if (!data) return;
  grid.replaceChildren(...data.sites.map(card));
  totals.replaceChildren(...TOTALS.filter(([k]) => data.open || !["calling", "waiting"].includes(k)).map(([k, zh, en]) => {
    const t = textEl("div", `rc-total rc-o-${k}`);
    t.append(textEl("b", null, String(data.totals[k] || 0)));
    t.append(`${zh} `);
    t.append(textEl("span", "en", en));
    return t;
  }));
  stateEl.dataset.open = String(data.open);
  if (data.open) setBilingual(stateEl, "点名进行中", "In progress");
  else setBilingual(stateEl, "点名已结束", "Finished");
  document.getElementById("rc-close-form").hidden = !data.open;
  meta.textContent = `${data.started_local} · ${data.mode === "sequence" ? "逐个点名 one after another" : "同时点名 all at once"} · `
    + `${Math.round(data.window)} s · ${data.sites.length} 个站点 sites`
    + (data.resumed.length ? ` · 服务重启后继续 resumed after restart ×${data.resumed.length}` : "");
  countdown();
}

function countdown() {
  const now = Date.now() / 1000 + offset;
  for (const node of grid.querySelectorAll(".rc-countdown")) {
    node.textContent = `${Math.max(0, Math.ceil(Number(node.dataset.deadline) - now))} s`;
  }
}

async function poll() {
  try {
    const resp = await fetch(`/rollcalls/${id}.json${suffix}`, { cache: "no-store" });
    if (resp.ok) {
      const fresh = await resp.json();
      offset = fresh.now - Date.now() / 1000;
      const changed = JSON.stringify({ ...fresh, now: 0 }) !== JSON.stringify({ ...(data || {}), now: 0 });
      data = fresh;
      if (changed) render();
    }
  } catch { /* server restarting: keep polling */ }
  if (!data || data.open || data.sites.some((s) => ["answered", "late"].includes(s.outcome) && !s.snapshot)) {
    setTimeout(poll, 1000);
  }
}

document.getElementById("rc-excuse-cancel").addEventListener("click", () => dialog.close());
setInterval(countdown, 250);
window.__board = () => data;
poll();
