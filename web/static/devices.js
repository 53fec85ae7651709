// The device links page: revoke a link (a lost phone) through the same-origin JSON API.
import { toast as uiToast } from "./ui.js";

const toast = (text) => uiToast(text, "info");

async function revoke(row, button) {
  const who = row.dataset.identity;
  if (!window.confirm(`吊销 ${who} 的链接？其连接将立即断开。\nRevoke the link of ${who}? Its connections end at once.`)) return;
  button.disabled = true;
  const reason = document.getElementById("revoke-reason")?.value || "";
  try {
    const response = await fetch(`/api/device-links/${encodeURIComponent(row.dataset.tokenId)}/revoke`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ reason }),
    });
    if (!response.ok) throw new Error((await response.text()).trim() || `HTTP ${response.status}`);
    const result = await response.json();
    row.querySelector(".link-state").textContent = "已吊销 Revoked";
    button.remove();
    toast(`已吊销，断开 ${result.ended} 个连接 Revoked: ${result.ended} connection(s) ended`);
  } catch (err) {
    button.disabled = false;
    toast(`吊销失败 Revoke failed: ${err.message}`);
  }
}

for (const button of document.querySelectorAll("#device-links .revoke-link")) {
  button.addEventListener("click", () => revoke(button.closest("tr"), button));
}
