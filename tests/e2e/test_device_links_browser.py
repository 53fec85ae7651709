"""A lost field phone: the administrator revokes its link on the device links page, and the phone is out at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.browser


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
    admin.fill("#revoke-reason", "手机丢失 phone lost")  # type: ignore[attr-defined]
    admin.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    row.locator("button.revoke-link").click()
    admin.wait_for_function(  # type: ignore[attr-defined]
        "() => document.querySelector(\"#device-links tr[data-identity='lost-phone'] .link-state\").textContent.includes('Revoked')",
        timeout=10_000,
    )
    assert not [m for m in admin.console_messages_seen if m.startswith(("error", "pageerror"))]  # type: ignore[attr-defined]

    # The phone is told why (a toast), and its retries are refused: it does not get back in.
    phone.wait_for_function("() => document.getElementById('toasts').textContent.includes('token_revoked')", timeout=10_000)  # type: ignore[attr-defined]
    phone.wait_for_function(  # type: ignore[attr-defined]
        "() => window.__room.state !== 'connected' && ['token_revoked', 'unauthenticated'].includes((window.__room.lastError || {}).code)",
        timeout=10_000,
    )
    admin.reload()  # type: ignore[attr-defined]
    assert "已吊销 Revoked" in admin.locator("#device-links tr[data-identity='lost-phone']").inner_text()  # type: ignore[attr-defined]
