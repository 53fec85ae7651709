// How a directive to this site announces itself, by class: a 指令性 (mandatory) one takes the screen
// with a repeating sound and vibration until someone reads it; a 指导性 (guidance) one rings once and
// stays as a banner until read; a 参考性 (reference) one only counts in the inbox. Overdue marks of
// other sites (escalations to the issuer and to parents up the tree) are grouped per directive, each
// group acknowledged once ("知道了") until more sites of it fall overdue. An incident report filed
// below reaches every level above as a banner with a chime, until noted.
import { el, esc, fmtTime, toast } from "./ui.js";

const BEEP_EVERY_MS = 2_000;
const DISMISSED_KEY = "directive-alert:escalations";
const REPORT_NEWS_S = 3600;     // a report is news for an hour; older ones are on the board

function ensureStyle() {
  if (document.querySelector("link[data-directive-alert]")) return;
  const link = document.createElement("link");
  link.rel = "stylesheet"; link.href = "/static/alerts.css"; link.dataset.directiveAlert = "";
  document.head.append(link);
}

/** The alarm: a two-tone beep (when the page may play sound) and a vibration (on phones). */
class Alarm {
  constructor() { this.ctx = null; this.timer = null; this.beeps = 0; this.vibrations = 0; }

  once(tones = [[0, 988], [0.3, 740]]) {
    try {
      this.ctx = this.ctx || new AudioContext();
      if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
      for (const [at, freq] of tones) {
        const osc = this.ctx.createOscillator(); const gain = this.ctx.createGain();
        const t = this.ctx.currentTime + at;
        osc.frequency.value = freq; osc.type = "square";
        gain.gain.setValueAtTime(0.25, t); gain.gain.exponentialRampToValueAtTime(0.001, t + 0.25);
        osc.connect(gain).connect(this.ctx.destination); osc.start(t); osc.stop(t + 0.26);
      }
      if (this.ctx.state === "running") this.beeps += 1;
    } catch { /* no audio output: the screen and the vibration still say it */ }
    if (navigator.vibrate && navigator.vibrate([500, 200, 500])) this.vibrations += 1;
  }

  start() {
    if (this.timer) return;
    this.once();
    this.timer = setInterval(() => this.once(), BEEP_EVERY_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    if (navigator.vibrate) navigator.vibrate(0);
  }
}

/**
 * Announce directives to `site` as their events arrive. `request(msg)` sends a command request;
 * `names` maps site ids to {name_zh, name_en}; `openInbox()` (optional) shows the page's inbox.
 * Call `apply(msg)` once per `command_event`.
 */
export class DirectiveAlerts {
  constructor({ site, names = {}, request, openInbox = null, token = null }) {
    ensureStyle();
    this.site = site; this.names = names; this.request = request; this.openInbox = openInbox;
    this.qs = token ? `?token=${encodeURIComponent(token)}` : "";
    this.reports = new Map();       // report event id -> {incident, report}: news from sites below
    this.reminders = new Set();     // directives the issuer pressed (催办) that this site has not acknowledged
    this.mine = new Map();          // directive id -> {info, me}
    this.escalations = new Map();   // directive id -> {title, sites: Set}
    this.rung = new Set();          // guidance directives already rung for
    this.alarm = new Alarm();
    this.dismissed = this._loadDismissed();
    this._build();
  }

  _build() {
    this.modal = el("div", "da-modal");
    this.modal.id = "directive-modal";
    this.modal.hidden = true;
    this.modal.setAttribute("role", "alertdialog");
    this.modal.setAttribute("aria-modal", "true");
    this.modal.setAttribute("aria-labelledby", "da-title");
    this.modal.innerHTML = `<div class="da-card">
      <div class="da-kicker"><span class="zh">指令性指令</span> <span class="en">Mandatory directive</span> <span class="da-count" id="da-count"></span></div>
      <h2 class="da-title" id="da-title"></h2>
      <p class="da-body" id="da-body"></p>
      <p class="da-meta" id="da-meta"></p>
      <div class="da-actions">
        <button type="button" class="btn btn-primary da-ack" id="da-ack"><span class="zh">签收</span> <span class="en">Acknowledge</span></button>
        <button type="button" class="btn btn-secondary da-read" id="da-read"><span class="zh">已阅</span> <span class="en">Read (acknowledge later)</span></button>
      </div></div>`;
    this.banner = el("div", "da-banner");
    this.banner.id = "directive-banner";
    this.banner.hidden = true;
    this.banner.setAttribute("role", "alert");
    this.reportBox = el("div", "da-banner da-reports");
    this.reportBox.id = "report-alerts";
    this.reportBox.hidden = true;
    this.reportBox.setAttribute("role", "alert");
    this.reportBox.addEventListener("click", (e) => {
      const btn = e.target.closest("[data-act]");
      if (!btn) return;
      const id = btn.closest("[data-report]").dataset.report;
      this.dismissed[`report:${id}`] = 1;
      this._saveDismissed();
      if (btn.dataset.act === "noted") this._renderReports();
    });
    this.tray = el("div", "da-tray");
    this.tray.id = "escalations";
    this.tray.hidden = true;
    this.tray.setAttribute("role", "region");
    this.tray.setAttribute("aria-label", "逾期上报 Overdue escalations");
    // banner and escalations go in the page's flow under the top bar: they push the page down
    // instead of covering a picture, a form or a button
    const stack = el("div", "da-stack");
    stack.append(this.banner, this.reportBox, this.tray);
    const bar = document.querySelector("header.topbar");
    if (bar) bar.after(stack); else document.body.prepend(stack);
    document.body.append(this.modal);
    this.modal.querySelector("#da-ack").addEventListener("click", () => this._answer(this.current, true));
    this.modal.querySelector("#da-read").addEventListener("click", () => this._answer(this.current, false));
    this.banner.addEventListener("click", (e) => {
      const btn = e.target.closest("button[data-act]");
      if (!btn) return;
      const id = btn.closest("[data-id]").dataset.id;
      if (btn.dataset.act === "open" && this.openInbox) this.openInbox(id);
      else this._answer(id, btn.dataset.act === "ack");
    });
    this.tray.addEventListener("click", (e) => {
      const btn = e.target.closest("button[data-act=noted]");
      if (!btn) return;
      const id = btn.closest("[data-id]").dataset.id;
      this.dismissed[id] = this.escalations.get(id).sites.size;
      this._saveDismissed();
      this._renderTray();
    });
  }

  /** One command_event message (each event once). */
  apply(msg) {
    if (msg.incident) { this._report(msg); return; }
    if (!msg.directive) return;
    const info = msg.directive;
    const me = msg.recipients && msg.recipients[this.site];
    if (me) this.mine.set(info.id, { info, me });
    else if (this.mine.has(info.id)) this.mine.get(info.id).info = info;
    if (msg.event.kind === "reminded" && me && !me.acknowledged_at && Date.now() / 1000 - msg.event.at < REPORT_NEWS_S) {
      if (!this.reminders.has(info.id)) this.alarm.once([[0, 988], [0.25, 988]]);
      this.reminders.add(info.id);
    }
    if (msg.event.kind === "overdue" && msg.event.site && msg.event.site !== this.site) {
      const group = this.escalations.get(info.id) || { title: info.title, sites: new Set() };
      group.title = info.title;
      group.sites.add(msg.event.site);
      this.escalations.set(info.id, group);
    }
    this.render();
  }

  // A report filed by a site below reaches every level above it: a banner and one chime, until
  // noted (remembered here), and only while it is news (the replay on a reload is not).
  _report(msg) {
    const i = msg.incident;
    if (msg.event.kind !== "report_filed" || i.site === this.site) return;
    const r = i.reports.find((x) => x.event_id === msg.event.id);
    if (!r || Date.now() / 1000 - r.at > REPORT_NEWS_S || this.dismissed[`report:${r.event_id}`]) return;
    this.reports.set(r.event_id, { incident: i, report: r });
    this.alarm.once([[0, 660], [0.2, 880]]);
    this._renderReports();
  }

  _renderReports() {
    const name = (s) => (this.names[s] ? this.names[s].name_zh : s);
    const rows = [...this.reports.entries()].filter(([id]) => !this.dismissed[`report:${id}`]);
    this.reportBox.hidden = rows.length === 0;
    this.reportBox.innerHTML = rows.map(([id, { incident: i, report: r }]) => `<div class="da-banner-row da-report" data-report="${esc(id)}">
      <span class="da-pill da-pill-report">${r.kind === "initial" ? "初报 Initial report" : "续报 Follow-up"}</span>
      <b class="da-banner-title">${esc(name(i.site))} · ${esc(i.place)} · ${esc(r.summary.slice(0, 60))}</b>
      <span class="da-banner-actions">
        <a class="btn btn-secondary" data-act="view" href="/command/incidents${this.qs}#incident=${encodeURIComponent(i.id)}">查看 View</a>
        <button type="button" class="btn btn-primary" data-act="noted">知道了 Noted</button>
      </span></div>`).join("");
  }

  _pending(cls) {
    return [...this.mine.values()]
      .filter((d) => d.info.cls === cls && d.info.status === "active" && !d.me.read_at)
      .sort((a, b) => a.info.issued_at - b.info.issued_at);
  }

  render() {
    this._renderModal();
    this._renderBanner();
    this._renderTray();
  }

  _renderModal() {
    const waiting = this._pending("mandatory");
    if (!waiting.length) {
      this.current = null;
      if (!this.modal.hidden) { this.modal.hidden = true; document.body.classList.remove("da-open"); }
      this.alarm.stop();
      return;
    }
    const d = waiting[0];
    const changed = this.current !== d.info.id;
    this.current = d.info.id;
    const i = d.info;
    this.modal.querySelector("#da-count").textContent = waiting.length > 1 ? `1 / ${waiting.length}` : "";
    this.modal.querySelector("#da-title").textContent = i.title;
    this.modal.querySelector("#da-body").textContent = i.body || "";
    const from = this.names[i.issuer_site];
    const parts = [`下达 Issued ${fmtTime(i.issued_at)}${from ? ` · ${from.name_zh} ${from.name_en}` : ""}`];
    if (i.ack_by) parts.push(`签收时限 Acknowledge by ${fmtTime(i.ack_by)}`);
    if (i.feedback_by) parts.push(`反馈时限 Report back by ${fmtTime(i.feedback_by)}`);
    this.modal.querySelector("#da-meta").textContent = parts.join(" · ");
    this.modal.dataset.id = i.id;
    if (this.modal.hidden) { this.modal.hidden = false; document.body.classList.add("da-open"); }
    this.alarm.start();
    if (changed) this.modal.querySelector("#da-ack").focus();
  }

  _renderBanner() {
    // a guidance directive not yet read, and any directive the issuer pressed (催办) not yet acknowledged
    const pressed = [...this.reminders].map((id) => this.mine.get(id))
      .filter((d) => d && d.info.status === "active" && !d.me.acknowledged_at && d.info.cls !== "reference");
    const waiting = this._pending("guidance").filter((d) => !pressed.includes(d)).concat(pressed);
    for (const d of waiting) {
      if (!this.rung.has(d.info.id)) { this.rung.add(d.info.id); this.alarm.once([[0, 880]]); }
    }
    this.banner.hidden = waiting.length === 0;
    this.banner.innerHTML = waiting.map((d) => `<div class="da-banner-row" data-id="${esc(d.info.id)}" data-reminded="${this.reminders.has(d.info.id)}">
      ${this.reminders.has(d.info.id) ? '<span class="da-pill">催办 Reminder</span>' : ""}
      <span class="cmd-tag" data-cls="${d.info.cls}">${d.info.cls === "mandatory" ? "指令性 Mandatory" : "指导性 Guidance"}</span>
      <b class="da-banner-title">${esc(d.info.title)}</b>
      <span class="da-banner-actions">
        ${this.openInbox ? '<button type="button" class="btn btn-secondary" data-act="open">查看 View</button>' : ""}
        <button type="button" class="btn btn-primary" data-act="ack">签收 Acknowledge</button>
      </span></div>`).join("");
  }

  _renderTray() {
    const groups = [...this.escalations.entries()].filter(([id, g]) => (this.dismissed[id] || 0) < g.sites.size);
    this.tray.hidden = groups.length === 0;
    const name = (s) => (this.names[s] ? this.names[s].name_zh : s);
    this.tray.innerHTML = groups.map(([id, g]) => `<div class="da-group" data-id="${esc(id)}">
      <div class="da-group-head"><span class="da-pill">逾期 Overdue</span> <b>${esc(g.title)}</b></div>
      <div class="da-group-sites">${g.sites.size} 个单位 site${g.sites.size > 1 ? "s" : ""}：${esc([...g.sites].map(name).join("、"))}</div>
      <button type="button" class="btn btn-secondary" data-act="noted">知道了 Noted</button></div>`).join("");
  }

  async _answer(id, acknowledge) {
    const d = id && this.mine.get(id);
    if (!d) return;
    try {
      if (!d.me.read_at) await this.request({ type: "directive_read", directive_id: id });
      if (acknowledge && !d.me.acknowledged_at) await this.request({ type: "directive_acknowledge", directive_id: id });
    } catch (ex) {
      if (!ex.code) toast(`操作失败 Failed: ${ex.message}`);
    }
  }

  _loadDismissed() {
    try { return JSON.parse(localStorage.getItem(DISMISSED_KEY) || "{}"); } catch { return {}; }
  }

  _saveDismissed() {
    try { localStorage.setItem(DISMISSED_KEY, JSON.stringify(this.dismissed)); } catch { /* private mode */ }
  }
}
