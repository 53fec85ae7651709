"""A called site whose camera is off turns it on from the roll-call alert itself and answers on camera."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.screens import DESKTOP, PHONE, layout_problems, shoot, unreachable

pytestmark = pytest.mark.browser

ALERT_PARTS = ["#rc-alert-title", "#rc-alert-hint", "#rc-alert-count", "#rc-camera", "#rc-present", "#rc-alert-result"]


def _start_rollcall(server: Server, site: str) -> str:
    chief = server.device_token("chief-desk", "command_centre", grants=("subscribe", "moderate"))
    body = json.dumps({"sites": [site], "mode": "all", "window": 60, "grace": 0, "title": "防汛点名 Flood roll-call"})
    request = urllib.request.Request(f"{server.base_url}/api/rollcalls?token={chief}", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(json.loads(resp.read())["id"])


def _outcome(server: Server, rollcall_id: str) -> str:
    chief = server.device_token("chief-desk", "command_centre", grants=("subscribe", "moderate"))
    with urllib.request.urlopen(f"{server.base_url}/rollcalls/{rollcall_id}.json?token={chief}", timeout=10) as resp:
        return str(json.loads(resp.read())["sites"][0]["outcome"])


def _answer_with_camera_turned_on_in_the_alert(server: Server, page: Any, site: str, shot: str) -> None:
    page.wait_for_function("() => window.__room && window.__room.publisher && "
                           "window.__room.publisher.connectionState === 'connected'", timeout=30_000)
    page.click("#btn-camera")
    page.wait_for_function("() => window.__room.cameraMuted === true", timeout=5_000)
    rollcall = _start_rollcall(server, site)
    page.wait_for_selector("#rollcall-alert[data-state='calling'][data-camera='off']", timeout=10_000)
    assert page.is_visible("#rc-camera"), "the alert does not offer to turn the camera on"
    assert "打开摄像头" in page.inner_text("#rc-alert-hint")
    assert unreachable(page, "#rc-camera, #rc-present") == []
    assert layout_problems(page, ALERT_PARTS, min_font_px=16) == []
    shoot(page, f"{shot}-camera-off")
    # pressing first is still "no video", and the alert still offers the way out
    page.click("#rc-present")
    page.wait_for_selector("#rc-alert-result[data-level='bad']", timeout=10_000)
    assert page.is_visible("#rc-camera")
    page.click("#rc-camera")
    page.wait_for_function("() => window.__room.cameraMuted === false", timeout=5_000)
    page.wait_for_selector("#rollcall-alert[data-camera='on']", timeout=5_000)
    assert not page.is_visible("#rc-camera")
    assert page.get_attribute("#btn-camera", "data-on") == "true"
    page.click("#rc-present")
    page.wait_for_selector("#rollcall-alert[data-state='answered']", timeout=10_000)
    assert layout_problems(page, ALERT_PARTS, min_font_px=16) == []
    shoot(page, f"{shot}-answered")
    assert _outcome(server, rollcall) == "answered"


def test_a_room_site_with_its_camera_off_turns_it_on_from_the_alert_and_answers(
    server: Server, open_page: Callable[..., Any]
) -> None:
    page = open_page(server.room_url(server.device_token("desk-county06", "yunxi")), **DESKTOP)
    _answer_with_camera_turned_on_in_the_alert(server, page, "yunxi", "rollcall-room-1920")


def test_a_phone_with_its_camera_off_turns_it_on_from_the_alert_and_answers(
    server: Server, open_page: Callable[..., Any]
) -> None:
    page = open_page(server.room_url(server.device_token("phone-mobile02", "mobile02"), page="field"), **PHONE)
    _answer_with_camera_turned_on_in_the_alert(server, page, "mobile02", "rollcall-phone-390")
