// UI helpers every page shares: the page's embedded data, escaping, bilingual text, times, toasts.

/** The JSON the server embedded in the page as `page-data` ({} when there is none). */
export function pageData() {
  const node = document.getElementById("page-data");
  return node ? JSON.parse(node.textContent) : {};
}

/** Text made safe to put inside HTML. */
export function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** Put Chinese, then English beside it, into `node` (as text, never HTML). */
export function setBilingual(node, zh, en) {
  node.replaceChildren();
  const a = document.createElement("span"); a.className = "zh"; a.textContent = zh;
  node.append(a);
  if (en) {
    const b = document.createElement("span"); b.className = "en"; b.textContent = en;
    node.append(" ", b);
  }
}

/** An element with a class and, optionally, bilingual text. */
export function el(tag, className, zh, en) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (zh !== undefined) setBilingual(node, zh, en);
  return node;
}

let clock = null;

/** How this page writes times: in the city's time zone (page data `tz`), as the server's pages do. */
function formatter() {
  if (clock) return clock;
  const alerts = document.getElementById("alert-data");
  const tz = pageData().tz || (alerts ? JSON.parse(alerts.textContent).tz : null);
  const options = { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
  try {
    clock = new Intl.DateTimeFormat("en-CA", tz ? { ...options, timeZone: tz } : options);
  } catch {
    clock = new Intl.DateTimeFormat("en-CA", options);  // an unknown zone: the browser's own
  }
  return clock;
}

/** A Unix time as MM-DD HH:MM:SS in the city's time zone ("—" for none). */
export function fmtTime(t) {
  if (t == null) return "—";
  const parts = Object.fromEntries(formatter().formatToParts(new Date(t * 1000)).map((x) => [x.type, x.value]));
  return `${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
}

/** Show a short, non-blocking message at the bottom of the screen. */
export function toast(text, level = "error", ms = 6_000) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const t = el("div", `toast toast-${level}`);
  t.textContent = text;
  box.append(t);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => t.remove(), ms);
}
