// Live duty report state: a long poll on /duty/state.json that answers as soon as the duty log moves
// past what the page holds; the board's rows and a site's banner and reminders are redrawn from it.

const root = document.getElementById("duty-board") || document.getElementById("duty-site");
const offline = document.getElementById("duty-offline");

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text != null) node.textContent = text;
  return node;
}

function bilingual(zh, en) {
  const span = el("span");
  span.append(el("span", "zh", zh), " ", el("span", "en", en));
  return span;
}

function summary(report) {
  const cell = document.createDocumentFragment();
  if (!report) return cell;
  if (report.all_well) {
    const well = el("span", "duty-well", "平安 ");
    well.append(el("span", "en", "All well"));
    cell.append(well);
  } else if (report.incidents.length) {
    const events = el("span", "duty-events", `${report.incidents.length} `);
    events.append(bilingual("起事件", "incident(s)"));
    cell.append(events);
  } else {
    const events = el("span", "duty-events");
    events.append(bilingual("有情况", "Something to report"));
    cell.append(events);
  }
  if (report.text) cell.append(" ", el("span", "duty-text", report.text.length > 60 ? report.text.slice(0, 57) + "..." : report.text));
  return cell;
}

function remindCell(row, day) {
  const cell = document.createDocumentFragment();
  if (!row.report && root.dataset.canRemind) {
    const form = el("form", "inline-form");
    form.method = "post";
    form.action = "/duty/remind";
    for (const [name, value] of [["site", row.site], ["day", day]]) {
      const input = el("input");
      input.type = "hidden"; input.name = name; input.value = value;
      form.append(input);
    }
    const button = el("button", "btn btn-warning duty-remind");
    button.type = "submit";
    button.append(bilingual("催办", "Remind"));
    form.append(button);
    cell.append(form);
  }
  if (row.reminders.length) {
    const last = row.reminders[row.reminders.length - 1];
    const small = el("div", "duty-small", `${row.reminders.length} `);
    small.append(bilingual("次催办", "reminder(s)"), `, ${last.at_local}`);
    cell.append(small);
  }
  return cell;
}

function drawRow(tr, row, day) {
  tr.className = `duty-row duty-s-${row.status}`;
  tr.dataset.status = row.status;
  const chip = el("span", `duty-chip duty-s-${row.status}`);
  chip.dataset.role = "status";
  chip.append(`${row.label_zh} `, el("span", "en", row.label_en));
  const state = tr.children[1];
  state.replaceChildren(chip);
  if (row.escalated_to) {
    const up = el("div", "duty-small", "↑ ");
    up.append(bilingual("已上报", "escalated to"), ` ${row.escalated_name}`);
    state.append(up);
  }
  const report = row.report;
  tr.children[2].textContent = report ? report.filed_local + (report.versions > 1 ? ` (v${report.versions})` : "") : "";
  tr.children[3].textContent = report ? `${report.officer} / ${report.leader}` : (row.officer ? `${row.officer} / ${row.leader}` : "");
  tr.children[4].replaceChildren(summary(report));
  tr.children[5].replaceChildren(remindCell(row, day));
}

function drawBoard(state) {
  for (const row of state.rows) {
    const tr = root.querySelector(`tr[data-site="${CSS.escape(row.site)}"]`);
    if (tr) drawRow(tr, row, state.day);
  }
  for (const [status, n] of Object.entries(state.totals)) {
    const box = root.querySelector(`.duty-total[data-status="${status}"] .duty-total-n`);
    if (box) box.textContent = String(n);
  }
  const deadline = document.getElementById("duty-deadline-state");
  if (deadline && state.deadline_passed) deadline.replaceChildren(bilingual("已截止", "deadline passed"));
}

const NAMES = { filed: ["已报", "Filed"], late: ["迟报", "Late"], missing: ["未报", "Missing"],
  draft: ["待签发", "Awaiting sign-off"], pending: ["待报", "Not yet filed"] };

function drawSite(state) {
  const row = state.rows[0];
  if (!row) return;
  const banner = document.getElementById("duty-banner");
  banner.className = `duty-banner duty-s-${row.status}`;
  banner.dataset.status = row.status;
  const label = banner.querySelector('[data-role="status"]');
  label.replaceChildren(`${NAMES[row.status][0]} `, el("span", "en", NAMES[row.status][1]));
  const reminded = document.getElementById("duty-reminded");
  const list = reminded.querySelector('[data-role="reminders"]');
  list.replaceChildren(...row.reminders.map((r) => el("div", null, `${r.at_local} · ${r.by}${r.note ? " — " + r.note : ""}`)));
  reminded.hidden = row.reminders.length === 0 || Boolean(row.report);
}

async function follow() {
  let after = null; // the first request answers at once: whatever changed since the page was drawn
  let wait = 1000;
  for (;;) {
    const query = new URLSearchParams({ day: root.dataset.day });
    if (after !== null) query.set("after", after);
    if (root.dataset.site) query.set("site", root.dataset.site);
    try {
      const response = await fetch(`/duty/state.json?${query}`, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const state = await response.json();
      offline.hidden = true;
      wait = 1000;
      after = state.after || "";
      root.dataset.after = after;
      if (root.dataset.mode === "board") drawBoard(state); else drawSite(state);
      root.dataset.live = "1";
    } catch (error) {
      offline.hidden = false;
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, 10000);
    }
  }
}

if (root) follow();
