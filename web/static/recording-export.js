// The composite export on the player page: a button starts it (a worker process on the server makes
// one video of every track in a grid), a bar shows the percent of the session encoded so far (polled
// from a small JSON endpoint), then a download link; a failure or a refusal says why, in both languages.
import { setBilingual } from "./ui.js";

const POLL_MS = 500;

/** Wire the export section for session `id`; `withToken` adds the page's device token to a URL. */
export function setupExport(id, withToken) {
  const box = document.getElementById("rec-export");
  const button = document.getElementById("rec-export-start");
  const bar = document.getElementById("rec-export-bar");
  const fill = document.getElementById("rec-export-fill");
  const text = document.getElementById("rec-export-text");
  const link = document.getElementById("rec-export-download");
  const error = document.getElementById("rec-export-error");
  let timer = null;

  function show(status) {
    box.dataset.state = status.state;
    const percent = Math.max(0, Math.min(100, Number(status.percent) || 0));
    fill.style.width = `${percent}%`;
    bar.setAttribute("aria-valuenow", String(Math.round(percent)));
    bar.hidden = status.state === "none";
    button.disabled = status.state === "running";
    if (status.state === "running") setBilingual(text, `正在导出 ${percent.toFixed(0)}%`, `exporting, ${percent.toFixed(0)} % done`);
    else if (status.state === "done") setBilingual(text, "导出完成", `done · ${(status.bytes / 1048576).toFixed(1)} MB · sha256 ${String(status.sha256).slice(0, 16)}…`);
    else text.textContent = "";
    link.hidden = status.state !== "done";
    if (status.download) link.href = withToken(status.download);
    error.hidden = status.state !== "failed";
    if (status.state === "failed") setBilingual(error, `导出失败：${status.error_zh}`, status.error_en);
  }

  async function poll() {
    const response = await fetch(withToken(`/recordings/${id}/export.json`), { cache: "no-store" });
    if (!response.ok) return;
    const status = await response.json();
    show(status);
    clearTimeout(timer);
    if (status.state === "running") timer = setTimeout(poll, POLL_MS);
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    error.hidden = true;
    const response = await fetch(withToken(`/recordings/${id}/export`), { method: "POST" });
    if (response.ok) {
      show(await response.json());
      timer = setTimeout(poll, POLL_MS);
      return;
    }
    const reason = (await response.text()).replace(/^[a-z_]+: /, "").trim();
    error.hidden = false;
    setBilingual(error, "无法导出", reason);
    button.disabled = false;
  });
  poll().catch(() => {});
}
