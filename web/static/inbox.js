// The site inbox: directives to this site arrive over the page's own /ws session (window.__room),
// applied once per event id; read, acknowledge and feedback (with a photo from the camera) go back.
import { fmtTime } from "./console.js";

const CLASSES = { mandatory: ["指令性", "Mandatory"], guidance: ["指导性", "Guidance"], reference: ["参考性", "Reference"] };
const STAGES = { sent: ["已发送", "Sent"], delivered: ["已送达", "Delivered"], read: ["已读", "Read"],
  acknowledged: ["已签收", "Acknowledged"], feedback: ["已反馈", "Feedback given"], done: ["已完成", "Done"] };
const COMMAND_REPLIES = new Set(["command_ok", "command_synced"]);

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** Attach the inbox to a RoomClient: intercepts command messages, resumes after the last event id. */
export function startInbox(client, data) {
  const mySite = (data.me || {}).site;
  const names = data.sites || {};
  const directives = new Map();
  const alerts = [];
  const seen = new Set();
  let lastId = null;
  let n = 0;
  const pending = new Map();
  const panel = document.getElementById("inbox-panel");

  const original = client._dispatch.bind(client);
  client._dispatch = async (msg, gen) => {
    if (msg.type === "command_event") return onEvent(msg);
    const p = msg.id != null ? pending.get(msg.id) : null;
    if (p && (COMMAND_REPLIES.has(msg.type) || msg.type === "error")) {
      pending.delete(msg.id);
      if (msg.type === "error") p.reject(new Error(`${msg.message} (${msg.code})`)); else p.resolve(msg);
      return undefined;
    }
    return original(msg, gen);
  };
  function request(msg) {
    const id = `inbox-${++n}`;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      if (!client._send({ ...msg, id })) { pending.delete(id); reject(new Error("未连接 not connected")); }
    });
  }
  client.addEventListener("state", (e) => {
    if (e.detail.state === "connected") request({ type: "command_subscribe", after: lastId }).catch(() => {});
  });

  function onEvent(msg) {
    if (seen.has(msg.event.id)) return;
    seen.add(msg.event.id);
    lastId = msg.event.id;
    if (!msg.directive) return;
    if (msg.event.kind === "overdue" && msg.event.site !== mySite) {
      alerts.push(`下级逾期 Subordinate overdue: ${names[msg.event.site]?.name_zh || msg.event.site} — ${msg.directive.title}`);
    }
    const d = directives.get(msg.directive.id) || { info: msg.directive, me: null };
    d.info = msg.directive;
    if (msg.recipients[mySite]) d.me = msg.recipients[mySite];
    if (d.me) directives.set(d.info.id, d);
    render();
  }

  function render() {
    const items = [...directives.values()].sort((a, b) => b.info.issued_at - a.info.issued_at);
    const unread = items.filter((d) => !d.me.read_at && d.info.status === "active").length;
    const badge = document.getElementById("inbox-badge");
    badge.hidden = unread === 0; badge.textContent = String(unread);
    document.getElementById("inbox-alerts").innerHTML = alerts.map((a) => `<p class="alert alert-error">${esc(a)}</p>`).join("");
    document.getElementById("inbox-list").innerHTML = items.map(card).join("") || '<p class="muted">暂无指令 No directives</p>';
  }

  function card(d) {
    const i = d.info; const r = d.me; const cls = CLASSES[i.cls]; const st = STAGES[r.stage];
    const active = i.status === "active";
    const needsAck = i.cls !== "reference" && !r.acknowledged_at;
    const canFeedback = i.cls === "mandatory" && r.acknowledged_at && r.stage !== "done";
    return `<article class="inbox-card" data-id="${esc(i.id)}" data-unread="${!r.read_at}" data-overdue="${r.overdue.length > 0}">
      <span class="cmd-tag" data-cls="${i.cls}">${cls[0]} ${cls[1]}</span>
      <span class="st" data-stage="${r.stage}">${st[0]} <span class="en">${st[1]}</span></span>
      ${r.overdue.length ? '<span class="cmd-overdue">逾期 Overdue</span>' : ""}
      <h3>${esc(i.title)}</h3>
      ${i.body ? `<p>${esc(i.body)}</p>` : ""}
      <p class="muted">下达 Issued ${fmtTime(i.issued_at)}${i.ack_by ? ` · 签收时限 Ack by ${fmtTime(i.ack_by)}` : ""}${i.feedback_by ? ` · 反馈时限 Feedback by ${fmtTime(i.feedback_by)}` : ""}</p>
      ${i.status === "cancelled" ? `<p class="cmd-cancelled">已撤销 Cancelled: ${esc(i.reason)}</p>` : i.reason ? `<p class="muted">已更新 Updated: ${esc(i.reason)}</p>` : ""}
      ${r.feedback.map((f) => `<p class="muted">反馈 Feedback ${fmtTime(f.at)}: ${esc(f.text)}${f.final ? " ✔" : ""}</p>`).join("")}
      <div class="inbox-row">
        ${!r.read_at ? `<button type="button" class="btn btn-secondary" data-act="read">已读 Mark read</button>` : ""}
        ${active && needsAck ? `<button type="button" class="btn btn-primary" data-act="ack">签收 Acknowledge</button>` : ""}
      </div>
      ${active && canFeedback ? `<div class="inbox-row"><textarea rows="2" placeholder="反馈情况 What was done"></textarea>
        <label class="btn btn-ghost">📷 照片 Photo<input type="file" accept="image/jpeg,image/png" capture="environment" hidden></label>
        <label><input type="checkbox" data-final> 已完成 Done</label>
        <button type="button" class="btn btn-primary" data-act="feedback">提交反馈 Send feedback</button></div>` : ""}
    </article>`;
  }

  async function uploadPhoto(file) {
    const headers = data.token ? { Authorization: `Bearer ${data.token}` } : {};
    const resp = await fetch("/command/photos", { method: "POST", body: file, headers, credentials: "same-origin" });
    if (!resp.ok) throw new Error((await resp.text()).trim());
    return (await resp.json()).photo;
  }

  document.getElementById("inbox-list").addEventListener("click", async (e) => {
    const btn = e.target.closest("button[data-act]");
    if (!btn) return;
    const box = btn.closest(".inbox-card"); const id = box.dataset.id;
    btn.disabled = true;
    try {
      if (btn.dataset.act === "read") await request({ type: "directive_read", directive_id: id });
      if (btn.dataset.act === "ack") await request({ type: "directive_acknowledge", directive_id: id });
      if (btn.dataset.act === "feedback") {
        const file = box.querySelector("input[type=file]").files[0];
        const photo = file ? await uploadPhoto(file) : null;
        await request({ type: "directive_feedback", directive_id: id, text: box.querySelector("textarea").value,
          photo, final: box.querySelector("input[data-final]").checked });
      }
    } catch (ex) {
      client._toast(`操作失败 Failed: ${ex.message}`);
      btn.disabled = false;
    }
  });
  document.getElementById("inbox-btn").addEventListener("click", () => {
    panel.hidden = !panel.hidden;
  });
  document.getElementById("inbox-close").addEventListener("click", () => { panel.hidden = true; });
  if (data.token) document.getElementById("inbox-reports").href = `/command/incidents?token=${encodeURIComponent(data.token)}`;
  window.__inbox = { directives, request };
  return { directives };
}
