"""A directive is delivered when a person's page of the site has it, not when only its camera is connected."""

from __future__ import annotations

from signaling.command import DirectiveIssue

from .conftest import CommandPlatform


async def test_a_send_only_camera_of_a_site_does_not_make_a_directive_delivered(command_platform: CommandPlatform) -> None:
    issuer = await command_platform.console("mayor", "office")
    camera = await command_platform.client("levee-camera", "qingshan", subscribe=False)  # in the room, never reads
    ok = await issuer.request(DirectiveIssue(cls="mandatory", title="转移群众", sites=["qingshan"]))
    await camera.wait_for(lambda c: bool(c.of_kind("issued")))  # it was pushed to the camera's session...
    d = command_platform.command.service.ledger.directives[ok.directive_id]
    assert d.recipients["qingshan"].delivered_at is None  # ...which is no one reading
    page = await command_platform.client("duty-qingshan", "qingshan")  # a person's page subscribes
    await issuer.wait_for(lambda c: any("qingshan" in m.event.data.get("sites", []) for m in c.of_kind("delivered")))
    assert command_platform.command.service.ledger.directives[ok.directive_id].recipients["qingshan"].delivered_at is not None
    await page.close()


async def test_a_page_already_reading_makes_it_delivered_at_once(command_platform: CommandPlatform) -> None:
    issuer = await command_platform.console("mayor", "office")
    await command_platform.client("duty-jiangnan", "jiangnan")
    ok = await issuer.request(DirectiveIssue(cls="guidance", title="巡查", sites=["jiangnan"]))
    await issuer.wait_for(lambda c: any(m.directive and m.directive.id == ok.directive_id for m in c.of_kind("delivered")))
