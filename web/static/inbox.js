// The site inbox: directives to this site arrive over the page's own /ws session (window.__room),
// applied once per event id; read, acknowledge and feedback (with a photo from the camera) go back.
import { DirectiveAlerts } from "./directive-alert.js";
import { esc, fmtTime, toast } from "./ui.js";

const CLASSES = { mandatory: ["指令性", "Mandatory"], guidance: ["指导性", "Guidance"], reference: ["参考性", "Reference"] };
const STAGES = { sent: ["已发送", "Sent"], delivered: ["已送达", "Delivered"], read: ["已读", "Read"],
  acknowledged: ["已签收", "Acknowledged"], feedback: ["已反馈", "Feedback given"], done: ["已完成", "Done"] };

const CAMERA_ICON = '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" '
  + 'stroke-linecap="round" stroke-linejoin="round"><rect x="2" y="6" width="14" height="12" rx="2"/><path d="M16 10l6-3v10l-6-3z"/></svg>';

/** Attach the inbox to a RoomClient: listens for command events, resumes after the last event id. */
export function startInbox(client, data) {
  const mySite = (data.me || {}).site;
  const names = data.sites || {};
  const directives = new Map();
  const seen = new Set();
  let lastId = null;
  const panel = document.getElementById("inbox-panel");

  // replies (command_ok, command_synced, error) resolve or reject client.request() by their id
  const request = (msg) => client.request(msg);
  // the alarm of a mandatory directive, the banner of a guidance one, escalations of other sites
  const alerts = new DirectiveAlerts({ site: mySite, names, request, openInbox: () => showPanel(true), token: data.token });
  client.on("command_event", onEvent);
  client.addEventListener("state", (e) => {
    if (e.detail.state === "connected") request({ type: "command_subscribe", after: lastId }).catch(() => {});
  });

  function onEvent(msg) {
    if (seen.has(msg.event.id)) return;
    seen.add(msg.event.id);
    lastId = msg.event.id;
    alerts.apply(msg);
    if (!msg.directive) return;
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
      ${r.reminders.length && r.stage !== "done" && active ? `<p class="alert alert-error inbox-reminded" data-reminded="${r.reminders.length}">⚠ 上级催办 ×${r.reminders.length}，请立即处理 <span class="en">Reminded ×${r.reminders.length}: act now</span> · ${fmtTime(r.reminders[r.reminders.length - 1])}</p>` : ""}
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
        <label class="btn btn-ghost inbox-photo">${CAMERA_ICON}<span data-photo-label>照片 <span class="en">Photo</span></span><input type="file" accept="image/jpeg,image/png" capture="environment" hidden></label>
        <label class="inbox-check"><input type="checkbox" data-final> 已完成 <span class="en">Done</span></label>
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
      // a server error (it has a code) is already shown by the client; say the rest here
      if (!ex.code) toast(`操作失败 Failed: ${ex.message === "not connected" ? "未连接 not connected" : ex.message}`);
      btn.disabled = false;
    }
  });
  document.getElementById("inbox-list").addEventListener("change", (e) => {
    if (!e.target.matches("input[type=file]")) return;
    const label = e.target.closest("label").querySelector("[data-photo-label]");
    const file = e.target.files[0];
    label.textContent = file ? `已选 ${file.name}` : "照片 Photo";
  });
  const openBtn = document.getElementById("inbox-btn");
  function showPanel(show) {
    panel.hidden = !show;
    openBtn.setAttribute("aria-expanded", String(show));
    openBtn.dataset.open = String(show);
  }
  openBtn.addEventListener("click", () => showPanel(panel.hidden));

  document.getElementById("inbox-close").addEventListener("click", () => showPanel(false));
  if (data.token) document.getElementById("inbox-reports").href = `/command/incidents?token=${encodeURIComponent(data.token)}`;
  window.__inbox = { directives, request, alerts };
  return { directives };
}
