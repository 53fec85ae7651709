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

/** A Unix time as MM-DD HH:MM:SS in the browser's time zone ("—" for none). */
export function fmtTime(t) {
  if (t == null) return "—";
  const d = new Date(t * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
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
