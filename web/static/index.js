// The rooms list: how many sites are in each room now (GET /api/presence), refreshed every few seconds.
const POLL_MS = 10_000;

async function poll() {
  try {
    const resp = await fetch("/api/presence", { credentials: "same-origin", cache: "no-store" });
    if (!resp.ok) return;
    const { rooms } = await resp.json();
    for (const el of document.querySelectorAll(".room-online[data-room]")) {
      const n = rooms[el.dataset.room] || 0;
      el.textContent = `在线 ${n} 个单位 · ${n} site${n === 1 ? "" : "s"} online`;
      el.dataset.count = String(n);
      el.hidden = false;
    }
  } catch { /* offline: the next poll tries again */ }
}
poll();
setInterval(poll, POLL_MS);
