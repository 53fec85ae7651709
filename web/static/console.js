// The command console and the incident board: a lean /command/ws socket that resumes from the last
// event id it saw (session.js), applies each event once (by id) and redraws. Chinese first, English beside it.
import { markOnline, watchPresence } from "./presence.js";
import { CommandSocket } from "./session.js";
import { esc, fmtTime, pageData, toast as uiToast } from "./ui.js";

const STAGES = ["sent", "delivered", "read", "acknowledged", "feedback", "done"];


function liveState(state) {
  const el = document.getElementById("live");
  if (!el) return;
  el.dataset.state = state;
  el.querySelector(".pill-text").textContent = state === "live" ? "实时 Live" : "断线重连 Reconnecting";
}

const toast = (text) => uiToast(text, "error");

// --- console ------------------------------------------------------------------------------------

export function startConsole() {
  const data = pageData();
  const names = Object.fromEntries(data.tree.map((s) => [s.id, `${s.name_zh} ${s.name_en}`]));
  const directives = new Map(); // id -> {info, recipients: {site: info}}
  let selected = null;
  const qs = data.token ? `?token=${encodeURIComponent(data.token)}` : "";
  buildTree(data.tree);
  const socket = new CommandSocket(data.token, (msg) => {
    if (!msg.directive) return;
    const d = directives.get(msg.directive.id) || { info: msg.directive, recipients: {} };
    d.info = msg.directive;
    Object.assign(d.recipients, msg.recipients);
    directives.set(d.info.id, d);
    if (!selected) selected = d.info.id;
    scheduleRender();
  }, liveState);
  window.__command = { socket, directives };

  let queued = false;
  function scheduleRender() { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; render(); }); } }

  function counts(d) {
    const rs = Object.values(d.recipients);
    const past = (stage) => rs.filter((r) => STAGES.indexOf(r.stage) >= STAGES.indexOf(stage)).length;
    return { total: d.info.recipient_count, done: rs.filter((r) => r.stage === "done").length,
      read: past("read"), ack: past("acknowledged"), feedback: rs.filter((r) => r.feedback.length).length,
      overdue: rs.filter((r) => r.overdue.length).length };
  }

  function render() {
    const q = document.getElementById("search").value.trim().toLowerCase();
    const f = document.getElementById("filter").value;
    const list = document.getElementById("list");
    const items = [...directives.values()].sort((a, b) => b.info.issued_at - a.info.issued_at).filter((d) => {
      const c = counts(d);
      if (f === "open" && (d.info.status === "cancelled" || c.done === c.total)) return false;
      if (f === "overdue" && !c.overdue) return false;
      if (f === "cancelled" && d.info.status !== "cancelled") return false;
      return !q || d.info.title.toLowerCase().includes(q) || Object.keys(d.recipients).some((s) => (names[s] || s).toLowerCase().includes(q));
    });
    list.innerHTML = items.map((d) => {
      const c = counts(d); const cls = data.classes[d.info.cls];
      return `<div class="cmd-item" data-id="${esc(d.info.id)}" aria-selected="${d.info.id === selected}">
        <div><span class="cmd-tag" data-cls="${d.info.cls}">${esc(cls[0])} ${esc(cls[1])}</span> ${esc(d.info.title)}
        ${d.info.status === "cancelled" ? '<span class="cmd-cancelled">已撤销 Cancelled</span>' : ""}</div>
        <div class="cmd-counts" title="已读 read · 签收 acknowledged · 反馈 feedback · 完成 done">
          已读 ${c.read} · 签收 ${c.ack}${d.info.cls === "mandatory" ? ` · 反馈 ${c.feedback} · 完成 ${c.done}` : ""} / ${c.total}
          ${c.overdue ? ` · <b class="bad">逾期 ${c.overdue} overdue</b>` : ""}</div></div>`;
    }).join("") || '<p class="muted">暂无指令 No directives yet</p>';
    renderDetail();
  }

  function renderDetail() {
    const d = directives.get(selected);
    const box = document.getElementById("detail");
    box.hidden = !d;
    if (!d) return;
    const cls = data.classes[d.info.cls];
    document.getElementById("d-title").textContent = d.info.title;
    document.getElementById("d-meta").textContent = `${cls[0]} ${cls[1]} · 下达 Issued ${fmtTime(d.info.issued_at)}` +
      (d.info.ack_by ? ` · 签收时限 Ack by ${fmtTime(d.info.ack_by)}` : "") + (d.info.feedback_by ? ` · 反馈时限 Feedback by ${fmtTime(d.info.feedback_by)}` : "") +
      (d.info.status === "cancelled" ? ` · 已撤销 Cancelled: ${d.info.reason}` : d.info.reason ? ` · 更新 Updated: ${d.info.reason}` : "");
    const base = `/command/directives/${encodeURIComponent(d.info.id)}`;
    document.getElementById("d-open").href = base + qs;
    document.getElementById("d-print").href = `${base}/print${qs}`;
    document.getElementById("d-csv").href = `${base}/export.csv${qs}`;
    document.getElementById("d-json").href = `${base}/export.json${qs}`;
    const q = document.getElementById("m-search").value.trim().toLowerCase();
    const f = document.getElementById("m-filter").value;
    const rows = Object.values(d.recipients).filter((r) => {
      if (f === "pending" && r.stage === "done") return false;
      if (f === "overdue" && !r.overdue.length) return false;
      if (f === "done" && r.stage !== "done") return false;
      return !q || (names[r.site] || r.site).toLowerCase().includes(q) || r.site.includes(q);
    }).sort((a, b) => (b.overdue.length - a.overdue.length) || STAGES.indexOf(a.stage) - STAGES.indexOf(b.stage));
    const shown = rows.slice(0, 500);
    document.querySelector("#matrix tbody").innerHTML = shown.map((r) => {
      const st = data.stages[r.stage];
      const fb = r.feedback.length ? esc(r.feedback[r.feedback.length - 1].text) : "—";
      const od = (r.overdue.length ? ` <span class="cmd-overdue">逾期 Overdue</span>` : "")
        + (r.reminders.length ? ` <span class="cmd-overdue" data-reminded="${r.reminders.length}">催办 Reminded ×${r.reminders.length}</span>` : "");
      return `<tr data-site="${esc(r.site)}" data-overdue="${r.overdue.length > 0}"><td>${esc(names[r.site] || r.site)}</td>
        <td class="st" data-stage="${r.stage}">${st[0]} ${st[1]}${od}</td><td>${fmtTime(r.delivered_at)}</td>
        <td>${fmtTime(r.read_at)}</td><td>${fmtTime(r.acknowledged_at)}</td><td>${fb}</td></tr>`;
    }).join("");
    const more = document.getElementById("m-more");
    more.hidden = rows.length <= shown.length;
    more.textContent = `另有 ${rows.length - shown.length} 个单位未显示，请筛选 ${rows.length - shown.length} more sites: use the filter`;
  }

  document.getElementById("list").addEventListener("click", (e) => {
    const item = e.target.closest(".cmd-item");
    if (item) { selected = item.dataset.id; render(); }
  });
  for (const id of ["search", "filter", "m-search", "m-filter"]) document.getElementById(id).addEventListener("input", render);
  const clsInputs = [...document.querySelectorAll("input[name=cls]")];
  const syncClass = () => { document.getElementById("feedback-field").hidden = document.querySelector("input[name=cls]:checked").value !== "mandatory"; };
  clsInputs.forEach((i) => i.addEventListener("change", syncClass)); syncClass();

  document.getElementById("compose").addEventListener("submit", async (e) => {
    e.preventDefault();
    const err = document.getElementById("compose-error"); err.hidden = true;
    const cls = document.querySelector("input[name=cls]:checked").value;
    const when = (id) => { const v = document.getElementById(id).value; return v ? new Date(v).getTime() / 1000 : null; };
    const sites = [...document.querySelectorAll("#tree input:checked")].map((i) => i.value);
    try {
      const ok = await socket.request({ type: "directive_issue", cls, title: document.getElementById("title").value,
        body: document.getElementById("body").value, sites, ack_by: when("ack_by"),
        feedback_by: cls === "mandatory" ? when("feedback_by") : null });
      selected = ok.directive_id;
      document.getElementById("compose").reset(); syncClass(); updatePicked();
      render();
    } catch (ex) { err.textContent = `下达失败 Not issued: ${ex.message}`; err.hidden = false; }
  });
  // update and cancel ask for the reason (and the new text) in a dialog of the page, not a prompt() box
  const dialog = document.getElementById("d-dialog");
  let pending = null;
  for (const [btn, type] of [["d-update", "directive_update"], ["d-cancel", "directive_cancel"]]) {
    document.getElementById(btn).addEventListener("click", () => {
      const d = directives.get(selected); if (!d) return;
      pending = { type, id: d.info.id };
      const update = type === "directive_update";
      document.getElementById("d-dialog-title").textContent = update ? `更新指令 Update: ${d.info.title}` : `撤销指令 Cancel: ${d.info.title}`;
      document.getElementById("d-dialog-body-field").hidden = !update;
      document.getElementById("d-dialog-body").value = d.info.body || "";
      document.getElementById("d-dialog-reason").value = "";
      dialog.showModal();
      document.getElementById("d-dialog-reason").focus();
    });
  }
  document.getElementById("d-dialog-cancel").addEventListener("click", () => dialog.close());
  // 催办: press every recipient that still owes a step; they are told again on every page of their site
  document.getElementById("d-remind").addEventListener("click", async () => {
    const d = directives.get(selected); if (!d) return;
    try {
      await socket.request({ type: "directive_remind", directive_id: d.info.id });
      uiToast("已催办 Reminder sent", "info");
    } catch (ex) { toast(`催办失败 Not sent: ${ex.message}`); }
  });
  document.getElementById("d-dialog-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const reason = document.getElementById("d-dialog-reason").value.trim();
    if (!reason || !pending) return;
    const msg = { type: pending.type, directive_id: pending.id, reason };
    if (pending.type === "directive_update") msg.body = document.getElementById("d-dialog-body").value;
    try { await socket.request(msg); dialog.close(); } catch (ex) { toast(`失败 Failed: ${ex.message}`); }
  });
  const exportLink = (kind) => () => {
    const from = document.getElementById("ex-from").value; const to = document.getElementById("ex-to").value || from;
    if (!from) { toast("请选择日期 Pick a date"); return; }
    location.href = `/command/export.${kind}?from=${from}&to=${to}${data.token ? `&token=${encodeURIComponent(data.token)}` : ""}`;
  };
  document.getElementById("ex-csv").addEventListener("click", exportLink("csv"));
  document.getElementById("ex-json").addEventListener("click", exportLink("json"));

  function buildTree(tree) {
    const kids = {};
    for (const s of tree) (kids[s.parent || ""] ||= []).push(s);
    const ul = (parent) => (kids[parent] || []).map((s) => `<li><label><input type="checkbox" value="${esc(s.id)}" data-site="${esc(s.id)}">
      <span class="zh">${esc(s.name_zh)}</span><span class="en">${esc(s.name_en)}</span></label>${kids[s.id] ? `<ul>${ul(s.id)}</ul>` : ""}</li>`).join("");
    const box = document.getElementById("tree");
    box.innerHTML = `<ul>${ul("")}</ul>`;
    watchPresence((online) => { markOnline(box, online); window.__presence = online; });
    box.addEventListener("change", (e) => {
      if (document.getElementById("with-children").checked) {
        e.target.closest("li").querySelectorAll("input").forEach((i) => { i.checked = e.target.checked; });
      }
      updatePicked();
    });
  }
  function updatePicked() {
    const picked = [...document.querySelectorAll("#tree input:checked")].map((i) => i.value);
    document.getElementById("picked").textContent = `已选 ${picked.length} selected`;
    // who it goes to, before it is sent: the count and every name
    const shortName = (id) => (names[id] || id).split(" ")[0];
    document.getElementById("recipients-preview").textContent = picked.length
      ? `将下达至 ${picked.length} 个单位 Goes to ${picked.length} site${picked.length > 1 ? "s" : ""}：${picked.map(shortName).join("、")}`
      : "";
    document.getElementById("issue-btn").querySelector(".en").textContent = picked.length ? `Issue to ${picked.length}` : "Issue";
  }
  const groupPick = document.getElementById("group-pick");
  for (const g of data.groups || []) groupPick.append(new Option(`${g.name_zh} ${g.name_en} (${g.sites.length})`, g.id));
  groupPick.addEventListener("change", () => {
    const g = (data.groups || []).find((x) => x.id === groupPick.value);
    if (!g) return;
    document.querySelectorAll("#tree input").forEach((i) => { i.checked = g.sites.includes(i.value); });
    updatePicked();
  });
  updatePicked();
}
