"""A refused page speaks to the person in Chinese and English and says what to do; scripts keep plain answers."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from server.auth import TokenService
from tests.e2e.conftest import Server
from tests.e2e.screens import DESKTOP, PHONE, layout_problems, shoot

pytestmark = pytest.mark.browser

PARTS = [".error-title", ".error-why", ".error-next", ".error-actions", ".error-detail"]


def _expired_token(server: Server) -> str:
    """A device link signed two hours ago for one hour."""
    past = TokenService(server.secret.encode(), clock=lambda: time.time() - 7200)
    return past.issue_device_token(identity="levee-phone", site="linjiang", room="consultation", grants=("publish",), ttl=3600)


def _check(page: Any, response: Any, status: int, code: str, shot: str) -> None:
    assert response.status == status
    page.wait_for_selector(f".error-card[data-code={code}]")
    text = page.inner_text("main")
    assert "Error" not in text.split("技术信息")[0]  # no raw exception names above the details
    assert layout_problems(page, PARTS, min_font_px=14) == []
    shoot(page, shot)


def test_an_expired_qr_link_on_a_phone_says_to_ask_the_duty_officer_for_a_new_one(
    server: Server, open_page: Callable[..., Any]
) -> None:
    page = open_page(**PHONE)
    response = page.goto(server.room_url(_expired_token(server), page="field"))
    _check(page, response, 401, "token_expired", "error-expired-link-phone-390")
    assert "链接已过期" in page.inner_text(".error-title")
    assert "值班员" in page.inner_text(".error-next") and "duty officer" in page.inner_text(".error-next")


def test_a_broken_link_a_wrong_room_and_an_unknown_page_each_say_what_to_do(
    server: Server, open_page: Callable[..., Any]
) -> None:
    page = open_page(**DESKTOP)
    _check(page, page.goto(f"{server.base_url}/rooms/consultation?token=not-a-token"), 401, "invalid_token", "error-invalid-link-1920")
    assert "DecodeError" not in page.inner_text(".error-why")
    token = server.device_token("err-desk", "linjiang")
    _check(page, page.goto(f"{server.base_url}/rooms/command?token={token}"), 403, "wrong_room", "error-wrong-room-1920")
    assert page.is_visible("#error-home")
    mayor = server.device_token("err-mayor", "office", room="atlantis")
    _check(page, page.goto(f"{server.base_url}/rooms/atlantis?token={mayor}"), 404, "not_found", "error-unknown-room-1920")
    _check(page, page.goto(f"{server.base_url}/no/such/page"), 404, "not_found", "error-not-found-1920")
    page.click("#error-home")
    page.wait_for_url(f"{server.base_url}/**", timeout=5_000)


def test_scripts_and_encoders_still_get_the_plain_code(server: Server) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{server.base_url}/api/presence", timeout=10)
    assert refused.value.code == 401
    assert refused.value.read().decode().startswith("unauthenticated:")
    request = urllib.request.Request(f"{server.base_url}/rooms/consultation?token=broken", headers={"Accept": "*/*"})
    with pytest.raises(urllib.error.HTTPError) as plain:
        urllib.request.urlopen(request, timeout=10)
    assert plain.value.read().decode().startswith("invalid_token:")
