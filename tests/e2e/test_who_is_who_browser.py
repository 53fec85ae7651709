"""Who is who: two devices of one site are told apart, devices never show raw ids, records name people."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.screens import DESKTOP, layout_problems, shoot
from tests.e2e.synthetic_sites import SyntheticSites

pytestmark = pytest.mark.browser


def test_two_devices_of_one_site_have_different_tiles_and_no_raw_ids(server: Server, open_page: Callable[..., Any]) -> None:
    viewer = open_page(server.room_url(server.device_token("who-viewer", "command_centre", grants=("subscribe",))), **DESKTOP)
    named = open_page(server.room_url(server.device_token("levee-phone", "yunxi", name="云溪县 堤防单兵")), **DESKTOP)
    named.wait_for_function("() => window.__room && window.__room.state === 'connected'", timeout=20_000)
    with SyntheticSites(server, [("linjiang-cam-a", "linjiang"), ("linjiang-cam-b", "linjiang")]):
        viewer.wait_for_function("() => document.querySelectorAll('.wall > .tile').length === 3", timeout=30_000)
        labels = viewer.eval_on_selector_all(".wall > .tile .tile-label", "(ls) => ls.map((l) => l.textContent)")
        linjiang = sorted(t for t in labels if "临江县" in t)
        assert len(linjiang) == 2 and linjiang[0] != linjiang[1], labels
        assert any("终端 1" in t for t in linjiang) and any("终端 2" in t for t in linjiang)
        assert any("云溪县 堤防单兵" in t for t in labels), labels
        assert not any(raw in t for t in labels for raw in ("linjiang-cam", "levee-phone")), labels
        assert layout_problems(viewer, [".wall > .tile .tile-label .tile-who"], min_font_px=12) == []
        shoot(viewer, "who-two-devices-1920")


def test_the_timeline_and_the_csv_name_people_not_ids(server: Server, open_page: Callable[..., Any]) -> None:
    console = open_page(f"{server.base_url}/login", **DESKTOP)
    console.fill("input[name=username]", "mayor")
    console.fill("input[name=password]", "demomayor")
    console.click("button[type=submit]")
    console.wait_for_url(f"{server.base_url}/", timeout=10_000)
    console.goto(f"{server.base_url}/command")
    console.wait_for_selector("#live[data-state=live]")
    reply = console.evaluate("(m) => window.__command.socket.request(m)",
                             {"type": "directive_issue", "cls": "guidance", "title": "核查堤防 Check the levees", "sites": ["songhe"]})
    directive = reply["directive_id"]
    console.goto(f"{server.base_url}/command/directives/{directive}")
    assert "by mayor" not in console.inner_text("main")  # the issuer by name, not by user id
    timeline = console.inner_text("ol.cmd-timeline")
    assert "市长" in timeline and "mayor ·" not in timeline
    assert not re.search(r"#\d{6,}-\d+", timeline), timeline
    shoot(console, "who-timeline-1920")
    csv = console.evaluate("async (u) => (await fetch(u)).text()", f"/command/directives/{directive}/export.csv")
    header, row = csv.lstrip("\ufeff").splitlines()[:2]
    assert "issuer_name" in header.split(",")
    assert "市长" in row
