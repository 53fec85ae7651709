"""A lost field phone: the administrator revokes its link on the device links page, and the phone is out at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "screenshots"


def test_an_administrator_revokes_a_lost_phones_link_and_the_phone_is_out_at_once(
    server: Server, open_page: Callable[..., object]
) -> None:
    phone = open_page(server.room_url(server.device_token("lost-phone", "mobile01", name="临江县移动平台"), page="field"))
    phone.wait_for_function("() => window.__room && window.__room.state === 'connected'", timeout=20_000)  # type: ignore[attr-defined]

    admin = open_page(f"{server.base_url}/login")
    admin.fill("input[name=username]", "chief")  # type: ignore[attr-defined]
    admin.fill("input[name=password]", "demochief")  # type: ignore[attr-defined]
    admin.click("button[type=submit]")  # type: ignore[attr-defined]
    admin.wait_for_url(f"{server.base_url}/", timeout=10_000)  # type: ignore[attr-defined]
    admin.click("#devices-link")  # type: ignore[attr-defined]
    admin.wait_for_url(f"{server.base_url}/admin/devices", timeout=10_000)  # type: ignore[attr-defined]
    row = admin.locator("#device-links tr[data-identity='lost-phone']")  # type: ignore[attr-defined]
    assert "在线 Connected (1)" in row.inner_text()
    SHOTS.mkdir(exist_ok=True)
    admin.screenshot(path=str(SHOTS / "device-links.png"), full_page=True)  # type: ignore[attr-defined]
    admin.fill("#revoke-reason", "手机丢失 phone lost")  # type: ignore[attr-defined]
    admin.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    row.locator("button.revoke-link").click()
    admin.wait_for_function(  # type: ignore[attr-defined]
        "() => document.querySelector(\"#device-links tr[data-identity='lost-phone'] .link-state\").textContent.includes('Revoked')",
        timeout=10_000,
    )
    assert not [m for m in admin.console_messages_seen if m.startswith(("error", "pageerror"))]  # type: ignore[attr-defined]

    # The phone stops for good and says why: no "reconnecting" that can never succeed, the camera off.
    phone.wait_for_function("() => document.getElementById('toasts').textContent.includes('token_revoked')", timeout=10_000)  # type: ignore[attr-defined]
    phone.wait_for_function("() => window.__room.state === 'ended'", timeout=10_000)  # type: ignore[attr-defined]
    dialog = phone.locator("#session-ended")  # type: ignore[attr-defined]
    assert dialog.get_attribute("data-code") == "token_revoked"
    assert "此登录或链接已被吊销" in dialog.inner_text() and "will not reconnect" in dialog.inner_text()
    assert phone.evaluate("() => window.__room.localStream === null")  # type: ignore[attr-defined]
    phone.wait_for_timeout(3_000)  # type: ignore[attr-defined]
    assert phone.evaluate("() => window.__room.state") == "ended"  # type: ignore[attr-defined]
    phone.screenshot(path=str(SHOTS / "device-link-revoked-phone.png"))  # type: ignore[attr-defined]
    admin.reload()  # type: ignore[attr-defined]
    assert "已吊销 Revoked" in admin.locator("#device-links tr[data-identity='lost-phone']").inner_text()  # type: ignore[attr-defined]
