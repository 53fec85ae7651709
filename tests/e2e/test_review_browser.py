"""审核签发 in real Chromium: a county officer drafts an incident report, the county's duty leader returns
it with a comment, the officer fixes it, the leader signs it off, it arrives at the city, and the city
forwards it to the province with its own comment; every version and step shows on the report's page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import argon2
import pytest

from tests.e2e.conftest import REPO, Server, running_server, wait_until
from tests.e2e.screens import DESKTOP, shoot

pytestmark = pytest.mark.browser


def _config(tmp: Path) -> Path:
    """The demo with a province above the city (one user there) and incident reports signed off by each county's leader."""
    text = (REPO / "config" / "demo.toml").read_text(encoding="utf-8")
    office = 'id = "office"\nname_zh = "江州市应急管理局"\nname_en = "Jiangzhou City Emergency Management Bureau"\nkind = "office"\n'
    assert office in text
    text = text.replace(office, office + 'parent = "province"\n')
    text += f'''
[[sites]]
id = "province"
name_zh = "江东省应急管理厅"
name_en = "Jiangdong Provincial Emergency Management Department"
kind = "office"

[[users]]
username = "prov01"
display_name = "省厅值班员 / Provincial Duty Officer"
site = "province"
grants = ["publish", "subscribe"]
password_hash = "{argon2.PasswordHasher().hash("demoprov01")}"

[command]
sign_off = true
'''
    path = tmp / "review.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _login(open_page: Callable[..., Any], server: Server, user: str, path: str) -> Any:
    page = open_page(**DESKTOP)
    page.goto(f"{server.base_url}/login?next={path}")  # straight to the page: the home page's live tiles cost seconds
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", f"demo{user}")
    page.click("button[type=submit]")
    page.wait_for_url(server.base_url + path, timeout=15_000)
    return page


def test_a_county_report_is_returned_fixed_signed_and_forwarded_to_the_province(
    tmp_path_factory: pytest.TempPathFactory, open_page: Callable[..., Any],
) -> None:
    data_dir = tmp_path_factory.mktemp("review")
    with running_server(data_dir, config=str(_config(data_dir))) as server:
        officer = _login(open_page, server, "county03", "/command/incidents")
        officer.wait_for_selector("#live[data-state=live]", timeout=10_000)
        officer.fill("#r-time", "2026-12-01T08:00")
        officer.fill("#r-place", "临江大堤 Linjiang levee")
        officer.fill("#r-summary", "大堤渗水")
        officer.click("#report button[type=submit]")
        officer.wait_for_selector("#report-done:not([hidden])", timeout=10_000)
        assert "草稿" in officer.inner_text("#report-done")
        officer.wait_for_selector("#board tbody tr[data-id]", timeout=10_000)
        incident = officer.get_attribute("#board tbody tr[data-id]", "data-id")
        page = f"/command/incidents/{incident}"

        city = _login(open_page, server, "mayor", page)
        assert "no such incident" in city.content()  # a draft stays with its county

        leader = _login(open_page, server, "leader03", page)
        leader.fill("[data-role=review] input[name=comment]", "请写明转移人数")
        shoot(leader, "review-leader-draft")
        leader.click("[data-action=return]")
        leader.wait_for_selector("#review-done", timeout=10_000)

        officer.goto(server.base_url + page)
        assert "请写明转移人数" in officer.inner_text("[data-state=returned]")
        officer.fill("[data-role=revise] textarea[name=summary]", "大堤渗水，已转移群众120人")
        officer.fill("[data-role=revise] input[name=comment]", "补充转移人数")
        officer.click("[data-action=revise]")
        officer.wait_for_selector("#review-done", timeout=10_000)

        leader.goto(server.base_url + page)
        leader.click("[data-action=sign]")
        leader.wait_for_selector("[data-report][data-state=sent]", timeout=10_000)

        city.goto(server.base_url + "/command/incidents")
        city.wait_for_selector(f"#board tbody tr[data-id='{incident}']", timeout=10_000)
        city.goto(server.base_url + page)
        assert "大堤渗水，已转移群众120人" in city.inner_text("[data-role=summary]")
        city.fill("#forward-form input[name=comment]", "请省厅关注临江汛情")
        city.click("#forward")
        city.wait_for_selector("#review-done", timeout=10_000)

        province = _login(open_page, server, "prov01", page)
        text = province.inner_text("#incident-page")
        assert "请省厅关注临江汛情" in text and "大堤渗水，已转移群众120人" in text
        steps = province.eval_on_selector_all("[data-role=history] li", "els => els.map(e => e.dataset.action)")
        assert steps == ["drafted", "returned", "revised", "signed"]
        wait_until(province, "document.querySelectorAll('[data-role=forward]').length === 1", timeout_ms=5_000)
        shoot(province, "review-province")
