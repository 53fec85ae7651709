"""The console and a field unit's inbox in a real Chromium: issue, see it arrive, acknowledge, watch the matrix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Server, wait_until

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "screenshots"


def test_a_directive_issued_on_the_console_is_acknowledged_from_the_field_inbox_and_the_matrix_updates_live(
    server: Server, open_page: Callable[..., object],
) -> None:
    SHOTS.mkdir(exist_ok=True)
    mayor = server.device_token("mayor-console", "office", grants=("issue", "subscribe"), name="市长 Mayor")
    console = open_page(f"{server.base_url}/command?token={mayor}", viewport={"width": 1400, "height": 900})
    console.wait_for_selector("#live[data-state=live]")  # type: ignore[attr-defined]

    field_token = server.device_token("linjiang-phone", "linjiang", grants=("publish",), name="临江县 值班")
    phone = open_page(server.room_url(field_token, page="field"), viewport={"width": 420, "height": 860})
    # polled from here: the page polling a string predicate itself needs eval, which its CSP forbids (a flake
    # whenever the room is not connected at the first look)
    wait_until(phone, "window.__room && window.__room.state === 'connected'", timeout_ms=30_000)

    console.fill("#title", "立即转移低洼村庄群众 Evacuate the low-lying villages")  # type: ignore[attr-defined]
    console.fill("#body", "15:00 前反馈转移人数 Report numbers by 15:00")  # type: ignore[attr-defined]
    console.check("#tree input[value=linjiang]")  # type: ignore[attr-defined]
    console.click("#issue-btn")  # type: ignore[attr-defined]
    console.wait_for_selector("#matrix tr[data-site=linjiang] td.st[data-stage=delivered]")  # type: ignore[attr-defined]

    # a mandatory directive takes the screen until it is read; the inbox then acknowledges it
    phone.wait_for_selector("#directive-modal:not([hidden])")  # type: ignore[attr-defined]
    phone.click("#da-read")  # type: ignore[attr-defined]
    phone.wait_for_selector("#directive-modal", state="hidden")  # type: ignore[attr-defined]
    phone.click("#inbox-btn")  # type: ignore[attr-defined]
    phone.click(".inbox-card button[data-act=ack]")  # type: ignore[attr-defined]
    phone.wait_for_selector(".inbox-card .st[data-stage=acknowledged]")  # type: ignore[attr-defined]
    phone.screenshot(path=str(SHOTS / "command-inbox.png"))  # type: ignore[attr-defined]
    console.wait_for_selector("#matrix tr[data-site=linjiang] td.st[data-stage=acknowledged]")  # type: ignore[attr-defined]
    console.evaluate("document.querySelectorAll('*').forEach((e) => { e.scrollTop = 0; }); window.scrollTo(0, 0)")  # type: ignore[attr-defined]
    console.screenshot(path=str(SHOTS / "command-console.png"))  # type: ignore[attr-defined]

    directive_id = console.evaluate("[...window.__command.directives.keys()][0]")  # type: ignore[attr-defined]
    detail = open_page(f"{server.base_url}/command/directives/{directive_id}?token={mayor}", viewport={"width": 1200, "height": 800})
    assert "签收" in detail.inner_text("ol.cmd-timeline")  # type: ignore[attr-defined]
    detail.screenshot(path=str(SHOTS / "command-directive.png"), full_page=True)  # type: ignore[attr-defined]
    detail.goto(f"{server.base_url}/command/directives/{directive_id}/print?token={mayor}")  # type: ignore[attr-defined]
    detail.screenshot(path=str(SHOTS / "command-print.png"), full_page=True)  # type: ignore[attr-defined]

    board = open_page(f"{server.base_url}/command/incidents?token={field_token}", viewport={"width": 1300, "height": 800})
    board.wait_for_selector("#live[data-state=live]")  # type: ignore[attr-defined]
    board.fill("#r-time", "2026-01-01T08:00")  # type: ignore[attr-defined]
    board.fill("#r-place", "临江大堤 Linjiang levee")  # type: ignore[attr-defined]
    board.fill("#r-summary", "堤防渗水，已转移 120 人 Seepage; 120 evacuated")  # type: ignore[attr-defined]
    board.click("#report button[type=submit]")  # type: ignore[attr-defined]
    board.wait_for_selector("#board tbody tr[data-overdue=true]")  # type: ignore[attr-defined]
    board.evaluate("document.querySelectorAll('*').forEach((e) => { e.scrollTop = 0; }); window.scrollTo(0, 0)")  # type: ignore[attr-defined]
    board.screenshot(path=str(SHOTS / "command-incidents.png"), full_page=True)  # type: ignore[attr-defined]
    errors = [m for p in (console, board) for m in p.console_messages_seen if m.startswith("pageerror")]  # type: ignore[attr-defined]
    # field.js (not ours) throws a TDZ error at start-up in its own paintStatus; our pages must not throw.
    assert errors == []
    # Every page ran under its Content-Security-Policy (no inline script or style) without a violation.
    violations = [m for p in (console, phone, detail, board) for m in p.console_messages_seen  # type: ignore[attr-defined]
                  if "Content Security Policy" in m]
    assert violations == []
