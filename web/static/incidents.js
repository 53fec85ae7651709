// The incident board: every incident of this level, newest report first; a click opens the incident
// (all its reports, initial and follow-ups, with photos, who filed them, late marks; close it). Sites
// that report file initial and follow-up reports from the form, which says when a report is in.
import { CommandSocket } from "./session.js";
import { esc, fmtTime, pageData } from "./ui.js";

const CASUALTIES = [["dead", "死亡", "Dead"], ["injured", "受伤", "Injured"], ["missing", "失踪", "Missing"]];

/** Casualties as people read them: every count named, in both languages. */
export function casualtiesText(c) {
  return CASUALTIES.map(([key, zh, en]) => `<span class="cas" data-kind="${key}"><b>${Number(c[key] || 0)}</b> ${zh} <span class="en">${en}</span></span>`).join(" ");
}

function liveState(state) {
  const el = document.getElementById("live");
  if (!el) return;
  el.dataset.state = state;
  el.querySelector(".pill-text").textContent = state === "live" ? "实时 Live" : "断线重连 Reconnecting";
}

/** Start the board page. */
export function startBoard() {
  const data = pageData();
  const incidents = new Map();
  let late = {};
  let open = decodeURIComponent(location.hash.replace(/^#incident=/, "")) || null;
  const siteName = (id) => (data.sites[id] ? data.sites[id].name_zh : id);
  // a configured person by name; a device link by its site (its id is nobody's name)
  const who = (actor, site) => (data.people && data.people[actor]) || `${siteName(site)} 设备终端 Device`;
  const qs = data.token ? `?token=${encodeURIComponent(data.token)}` : "";
  const mySite = (data.me || {}).site;
  const socket = new CommandSocket(data.token, (msg) => {
    if (!msg.incident) return;
    incidents.set(msg.incident.id, msg.incident);
    late = msg.late_by_site || late;
    render();
  }, liveState);
  window.__board = { socket, incidents };

  function render() {
    const rows = [...incidents.values()].sort((a, b) => b.reports[b.reports.length - 1].at - a.reports[a.reports.length - 1].at);
    document.getElementById("board-empty").hidden = rows.length > 0;
    document.querySelector("#board tbody").innerHTML = rows.map((i) => {
      const r = i.reports[i.reports.length - 1]; const t = data.types[i.type] || [i.type, ""];
      return `<tr data-overdue="${i.late}" data-id="${esc(i.id)}" tabindex="0" role="button" aria-selected="${i.id === open}">
        <td><b>${esc(t[0])}</b> <span class="en">${esc(t[1])}</span> · ${esc(i.place)}<br>
        <span class="muted">发生 Occurred ${fmtTime(i.occurred_at)}</span></td><td>${esc(siteName(i.site))}</td>
        <td>${r.kind === "initial" ? "初报 Initial" : "续报 Follow-up"} ${fmtTime(r.at)} · ${i.reports.length} 份 reports<br>${esc(r.summary)}</td>
        <td class="cas-cell">${casualtiesText(r.casualties)}</td>
        <td>${i.status === "open" ? "处置中 Open" : "已结案 Closed"}${i.late ? ' <span class="cmd-overdue">迟报 Late</span>' : ""}</td></tr>`;
    }).join("");
    const lateText = Object.entries(late).map(([s, n]) => `${siteName(s)} ${n}`).join("，");
    document.getElementById("late").textContent = lateText ? `迟报统计 Late initial reports: ${lateText}` : "";
    const sel = document.getElementById("r-incident"); const current = sel.value;
    sel.innerHTML = '<option value="">新事件（初报）New incident (initial report)</option>' + rows
      .filter((i) => i.site === mySite && i.status === "open")
      .map((i) => `<option value="${esc(i.id)}">续报 Follow-up: ${esc(i.place)} ${fmtTime(i.occurred_at)}</option>`).join("");
    sel.value = current;
    renderDetail();
  }

  function reviewBadge(r) {
    if (r.state === "draft") return ' <span class="cmd-overdue">待审核 Awaiting review</span>';
    if (r.state === "returned") return ' <span class="cmd-overdue">已退回 Returned</span>';
    if (r.urgent && !r.reviewed) return ' <span class="cmd-overdue">即报·待补审 Urgent, review after</span>';
    return (r.versions || 1) > 1 ? ` <span class="muted">v${r.versions}</span>` : "";
  }

  function renderDetail() {
    const box = document.getElementById("incident-detail");
    const i = open && incidents.get(open);
    box.hidden = !i;
    document.body.dataset.incident = i ? "open" : "";
    if (!i) return;
    const t = data.types[i.type] || [i.type, ""];
    const mine = i.site === mySite || (i.chain || []).includes(mySite);
    const canClose = i.status === "open" && mine;
    const canReopen = i.status === "closed" && mine;
    box.dataset.id = i.id;
    box.innerHTML = `<header class="inc-head">
        <button type="button" class="btn btn-ghost" id="inc-back"><span class="zh">返回看板</span> <span class="en">Back to board</span></button>
        <h2><b>${esc(t[0])}</b> <span class="en">${esc(t[1])}</span> · ${esc(i.place)}</h2>
        <span class="inc-status" data-status="${i.status}">${i.status === "open" ? "处置中 Open" : "已结案 Closed"}</span>
        ${i.late ? '<span class="cmd-overdue">初报迟报 Initial report late</span>' : ""}
        ${canClose ? '<button type="button" class="btn btn-warning" id="inc-close"><span class="zh">结案</span> <span class="en">Close incident</span></button>' : ""}
      </header>
      ${canReopen ? `<form class="inc-reopen" id="inc-reopen">
        <input type="text" id="inc-reopen-reason" maxlength="200" required placeholder="重新打开的原因 Why it is opened again" aria-label="原因 Reason">
        <button type="submit" class="btn btn-secondary"><span class="zh">重新打开</span> <span class="en">Reopen</span></button></form>` : ""}
      <p class="muted">报送单位 Site: ${esc(siteName(i.site))} · 发生 Occurred ${fmtTime(i.occurred_at)}
        · 已报至 Reached: ${esc((i.reached || []).map(siteName).join(" → ") || "—")}
        · <a href="/command/incidents/${encodeURIComponent(i.id)}" id="inc-review-link"><span class="zh">审核签发与版本</span> <span class="en">Review, sign-off and versions</span></a></p>
      <ol class="inc-timeline">${i.reports.map((r, n) => `<li data-kind="${r.kind}" data-late="${r.late}">
        <div class="inc-when"><b>${r.kind === "initial" ? "初报 Initial report" : `续报 ${n} Follow-up ${n}`}</b> · ${fmtTime(r.at)}
          · ${esc(who(r.actor, i.site))}${r.late ? ' <span class="cmd-overdue">迟报 Late</span>' : ""}${reviewBadge(r)}</div>
        <p class="inc-summary">${esc(r.summary)}</p>
        <div class="cas-cell">${casualtiesText(r.casualties)}</div>
        ${r.photo ? `<a href="/command/photos/${esc(r.photo)}${qs}" target="_blank" rel="noopener"><img class="inc-photo" alt="现场照片 Photo" src="/command/photos/${esc(r.photo)}${qs}"></a>` : ""}
      </li>`).join("")}</ol>`;
    box.querySelector("#inc-back").addEventListener("click", () => show(null));
    const reopen = box.querySelector("#inc-reopen");
    if (reopen) reopen.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        await socket.request({ type: "incident_reopen", incident_id: i.id, reason: box.querySelector("#inc-reopen-reason").value });
      } catch (ex) { document.getElementById("report-error").textContent = `未能重新打开 Not reopened: ${ex.message}`; }
    });
    const close = box.querySelector("#inc-close");
    if (close) close.addEventListener("click", async () => {
      close.disabled = true;
      try { await socket.request({ type: "incident_close", incident_id: i.id }); } catch (ex) {
        close.disabled = false;
        document.getElementById("report-error").textContent = `结案失败 Not closed: ${ex.message}`;
      }
    });
  }

  function show(id) {
    open = id;
    history.replaceState(null, "", id ? `#incident=${encodeURIComponent(id)}` : location.pathname + location.search);
    render();
    if (id) document.getElementById("incident-detail").scrollIntoView({ block: "start" });
  }
  const board = document.querySelector("#board tbody");
  board.addEventListener("click", (e) => { const tr = e.target.closest("tr[data-id]"); if (tr) show(tr.dataset.id); });
  board.addEventListener("keydown", (e) => {
    const tr = e.target.closest("tr[data-id]");
    if (tr && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); show(tr.dataset.id); }
  });
  window.addEventListener("hashchange", () => { open = decodeURIComponent(location.hash.replace(/^#incident=/, "")) || null; render(); });

  // back where the person came from (the room or field page that opened this), else home
  document.getElementById("back-home").addEventListener("click", (e) => {
    // (the pages send no referrer: a page of this tab before this one is where it came from)
    if (history.length > 1) {
      e.preventDefault();
      history.back();
    }
  });

  const formBox = document.getElementById("report");
  const toggle = document.getElementById("btn-file-report");
  const showForm = (on) => { formBox.hidden = !on; toggle.setAttribute("aria-expanded", String(on)); document.body.dataset.form = on ? "open" : ""; };
  toggle.addEventListener("click", () => showForm(formBox.hidden));
  // the city's own screen is the board; a site that reports starts with the form open
  showForm(!(data.me.grants || []).includes("issue"));

  const sel = document.getElementById("r-incident");
  sel.addEventListener("change", () => {
    document.getElementById("initial-fields").hidden = !!sel.value;
    document.getElementById("r-time").required = !sel.value;
  });
  formBox.addEventListener("submit", async (e) => {
    e.preventDefault();
    const err = document.getElementById("report-error"); err.hidden = true;
    const done = document.getElementById("report-done"); done.hidden = true;
    const submit = formBox.querySelector("button[type=submit]");
    const num = (id) => Number(document.getElementById(id).value || 0);
    submit.disabled = true;
    try {
      let photo = null;
      const file = document.getElementById("r-photo").files[0];
      if (file) {
        const headers = data.token ? { Authorization: `Bearer ${data.token}` } : {};
        const resp = await fetch("/command/photos", { method: "POST", body: file, headers, credentials: "same-origin" });
        if (!resp.ok) throw new Error((await resp.text()).trim());
        photo = (await resp.json()).photo;
      }
      const msg = { type: "report_file", summary: document.getElementById("r-summary").value, photo,
        casualties: { dead: num("r-dead"), injured: num("r-injured"), missing: num("r-missing") },
        urgent: document.getElementById("r-urgent").checked };
      const followup = !!sel.value;
      if (followup) msg.incident_id = sel.value;
      else {
        const t = document.getElementById("r-time").value;
        Object.assign(msg, { occurred_at: t ? new Date(t).getTime() / 1000 : null, place: document.getElementById("r-place").value,
          incident_type: document.getElementById("r-type").value });
      }
      await socket.request(msg);
      formBox.reset();
      document.getElementById("initial-fields").hidden = false;
      // the store has it: say so, large, with the time (the reply comes only once it is recorded)
      const type = followup ? (incidents.get(msg.incident_id) || {}).type : msg.incident_type;
      const draft = data.sign_off && !((data.me || {}).grants || []).includes("sign") && !msg.urgent
        && !(data.urgent_types || []).includes(type);
      done.innerHTML = draft
        ? `<b>✔ 已存为草稿</b> ${followup ? "续报" : "初报"} · ${fmtTime(Date.now() / 1000)} <span class="en">Draft stored: it goes up once the duty leader signs it off</span>`
        : `<b>✔ 已报送</b> ${followup ? "续报" : "初报"} · ${fmtTime(Date.now() / 1000)} <span class="en">Report filed and recorded</span>`;
      done.hidden = false;
      done.focus();
    } catch (ex) { err.textContent = `报送失败 Not filed: ${ex.message}`; err.hidden = false; } finally { submit.disabled = false; }
  });
  document.getElementById("r-time").required = true;
}
