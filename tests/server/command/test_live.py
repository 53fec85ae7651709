"""Directives live over `/ws`: three sites receive, read, acknowledge and report back; the issuer sees it."""

from __future__ import annotations

from signaling.command import (
    CommandOk,
    DirectiveAcknowledge,
    DirectiveCancel,
    DirectiveFeedback,
    DirectiveIssue,
    DirectiveRead,
    DirectiveUpdate,
)

from .conftest import CommandPlatform

SITES = ("jiangbei", "jiangnan", "qingshan")


def _stage(client, directive_id: str, site: str) -> str | None:  # type: ignore[no-untyped-def]
    stage = None
    for message in client.events.values():
        if message.event.directive_id == directive_id and site in message.recipients:
            stage = message.recipients[site].stage
    return stage


async def test_three_sites_receive_read_acknowledge_and_report_back_while_the_issuer_watches(
    command_platform: CommandPlatform,
) -> None:
    issuer = await command_platform.console("mayor", "office", ("issue",))
    sites = [await command_platform.client(f"duty-{s}", s) for s in SITES]
    ok = await issuer.request(DirectiveIssue(cls="mandatory", title="转移低洼村庄 Evacuate the low villages",
                                             body="15:00 前反馈", sites=list(SITES)))
    assert isinstance(ok, CommandOk) and ok.event_id and ok.directive_id
    did = ok.directive_id
    for client, site in zip(sites, SITES):
        await client.wait_for(lambda c: any(m.event.kind == "issued" for m in c.events.values()))
        issued = client.of_kind("issued")[0]
        assert issued.directive is not None and issued.directive.issuer == "mayor"
        assert list(issued.recipients) == [site]  # a site sees only its own row
    await issuer.wait_for(lambda c: all(_stage(c, did, s) == "delivered" for s in SITES))

    for client in sites:
        await client.request(DirectiveRead(directive_id=did))
        await client.request(DirectiveAcknowledge(directive_id=did))
    await issuer.wait_for(lambda c: all(_stage(c, did, s) == "acknowledged" for s in SITES))
    for client in sites:
        await client.request(DirectiveFeedback(directive_id=did, text="已转移 320 人 320 moved", final=True))
    await issuer.wait_for(lambda c: all(_stage(c, did, s) == "done" for s in SITES))

    state = command_platform.command.service.ledger.directives[did]
    assert {r.stage for r in state.recipients.values()} == {"done"}
    assert {r.feedback[0].actor for r in state.recipients.values()} == {f"duty-{s}" for s in SITES}
    assert issuer.duplicates == 0


async def test_recipients_see_an_update_and_a_cancellation_with_its_reason(command_platform: CommandPlatform) -> None:
    issuer = await command_platform.console("mayor", "office")
    site = await command_platform.client("duty-jiangbei", "jiangbei")
    ok = await issuer.request(DirectiveIssue(cls="guidance", title="加强巡查", sites=["jiangbei"]))
    await issuer.request(DirectiveUpdate(directive_id=ok.directive_id, reason="范围扩大 wider area", title="加强全县巡查"))
    await site.wait_for(lambda c: bool(c.of_kind("updated")))
    updated = site.of_kind("updated")[0]
    assert updated.directive.title == "加强全县巡查" and updated.directive.reason == "范围扩大 wider area"
    await issuer.request(DirectiveCancel(directive_id=ok.directive_id, reason="雨停 rain stopped"))
    await site.wait_for(lambda c: bool(c.of_kind("cancelled")))
    assert site.of_kind("cancelled")[0].directive.status == "cancelled"
