// Which sites are present in a room now (GET /api/presence), shown beside every site checkbox of a
// picker: the console's recipient tree and the roll-call picker say who is online, as the roster does.
import { setBilingual } from "./ui.js";

const POLL_MS = 10_000;

/** Mark each checkbox (value = site id) in `root` online or offline, with a chip beside its name. */
export function markOnline(root, online) {
  let count = 0; let total = 0;
  for (const input of root.querySelectorAll("input[type=checkbox][value]")) {
    const label = input.closest("label");
    if (!label) continue;
    const on = Object.prototype.hasOwnProperty.call(online, input.value);
    total += 1; if (on) count += 1;
    label.dataset.online = String(on);
    let chip = label.querySelector(".presence-chip");
    if (!chip) { chip = document.createElement("span"); chip.className = "presence-chip"; label.append(chip); }
    setBilingual(chip, on ? "在线" : "离线", on ? "online" : "offline");
  }
  const summary = root.querySelector("[data-presence-summary]") || document.querySelector(`[data-presence-summary="${root.id}"]`);
  if (summary) summary.textContent = `在线 ${count} / ${total} online`;
}

/** Ask the server now and every few seconds; `apply(sites)` gets {site: [room, ...]} each time. */
export function watchPresence(apply) {
  const poll = async () => {
    try {
      const resp = await fetch("/api/presence", { credentials: "same-origin", cache: "no-store" });
      if (resp.ok) apply((await resp.json()).sites || {});
    } catch { /* offline: the next poll tries again */ }
  };
  poll();
  return setInterval(poll, POLL_MS);
}
