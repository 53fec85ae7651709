"""催办: the issuer reminds, with one click, the recipients that still owe an acknowledgement or feedback."""

from __future__ import annotations

import pytest

from server.command.service import STREAM
from signaling.command import DirectiveAcknowledge, DirectiveCancel, DirectiveFeedback, DirectiveIssue, DirectiveRemind

from .conftest import CommandPlatform, Refused


async def test_one_click_reminds_only_the_recipients_that_have_not_acknowledged_and_each_hears_it(
    command_platform: CommandPlatform,
) -> None:
    issuer = await command_platform.console("mayor", "office")
    qingshan = await command_platform.client("duty-qingshan", "qingshan")
    baishui = await command_platform.client("duty-baishui", "baishui")
    ok = await issuer.request(DirectiveIssue(cls="guidance", title="检查堤防", sites=["qingshan", "baishui", "yunxi"]))
    await baishui.wait_for(lambda c: bool(c.of_kind("issued")))
    await baishui.request(DirectiveAcknowledge(directive_id=ok.directive_id))
    reminded = await issuer.request(DirectiveRemind(directive_id=ok.directive_id, note="请立即签收"))
    stored = [e for e in await command_platform.services.store.read_events(STREAM) if e.kind == "reminded"]
    assert [e.id for e in stored] == [reminded.event_id]  # type: ignore[attr-defined]
    assert stored[0].data["sites"] == ["qingshan", "yunxi"] and stored[0].actor == "mayor"
    await qingshan.wait_for(lambda c: bool(c.of_kind("reminded")))
    pushed = qingshan.of_kind("reminded")[0]
    assert list(pushed.recipients) == ["qingshan"] and len(pushed.recipients["qingshan"].reminders) == 1
    await issuer.wait_for(lambda c: bool(c.of_kind("reminded")))
    assert set(issuer.of_kind("reminded")[0].recipients) == {"qingshan", "yunxi"}
    d = command_platform.command.service.ledger.directives[ok.directive_id]
    assert [len(d.recipients[s].reminders) for s in ("qingshan", "baishui", "yunxi")] == [1, 0, 1]
    assert not baishui.of_kind("reminded")  # it acknowledged: not reminded, not told


async def test_a_mandatory_directive_reminds_who_still_owes_feedback(command_platform: CommandPlatform) -> None:
    issuer = await command_platform.console("mayor", "office")
    county = await command_platform.client("duty-linjiang", "linjiang")
    ok = await issuer.request(DirectiveIssue(cls="mandatory", title="转移群众", sites=["linjiang", "jiangbei"]))
    await county.wait_for(lambda c: bool(c.of_kind("issued")))
    await county.request(DirectiveAcknowledge(directive_id=ok.directive_id))
    await issuer.request(DirectiveRemind(directive_id=ok.directive_id))
    d = command_platform.command.service.ledger.directives[ok.directive_id]
    assert len(d.recipients["linjiang"].reminders) == 1  # acknowledged, feedback still owed
    await county.request(DirectiveFeedback(directive_id=ok.directive_id, text="已转移", final=True))
    await issuer.request(DirectiveRemind(directive_id=ok.directive_id))
    d = command_platform.command.service.ledger.directives[ok.directive_id]
    assert [len(d.recipients[s].reminders) for s in ("linjiang", "jiangbei")] == [1, 2]


async def test_a_reminder_that_cannot_be_is_refused_with_a_clear_error_and_stores_nothing(
    command_platform: CommandPlatform,
) -> None:
    issuer = await command_platform.console("mayor", "office")
    other = await command_platform.console("chief", "command_centre")
    county = await command_platform.client("duty-linjiang", "linjiang")
    ok = await issuer.request(DirectiveIssue(cls="guidance", title="检查", sites=["linjiang"]))
    await county.wait_for(lambda c: bool(c.of_kind("issued")))
    before = len(await command_platform.services.store.read_events(STREAM))
    cases = [
        (other, DirectiveRemind(directive_id=ok.directive_id), "not_issuer"),
        (county, DirectiveRemind(directive_id=ok.directive_id), "forbidden"),
        (issuer, DirectiveRemind(directive_id="nope"), "unknown_directive"),
        (issuer, DirectiveRemind(directive_id=ok.directive_id, sites=["atlantis"]), "not_recipient"),
        (issuer, DirectiveRemind(directive_id=ok.directive_id, note="长" * 300), "too_long"),
    ]
    for client, message, code in cases:
        with pytest.raises(Refused) as refused:
            await client.request(message)
        assert refused.value.code == code, message
    await county.request(DirectiveAcknowledge(directive_id=ok.directive_id))
    with pytest.raises(Refused) as refused:
        await issuer.request(DirectiveRemind(directive_id=ok.directive_id))
    assert refused.value.code == "nothing_to_remind"
    with pytest.raises(Refused) as refused:
        await issuer.request(DirectiveRemind(directive_id=ok.directive_id, sites=["linjiang"]))
    assert refused.value.code == "nothing_owed"
    await issuer.request(DirectiveCancel(directive_id=ok.directive_id, reason="撤销"))
    with pytest.raises(Refused) as refused:
        await issuer.request(DirectiveRemind(directive_id=ok.directive_id, sites=["linjiang"]))
    assert refused.value.code == "cancelled"
    kinds = [e.kind for e in await command_platform.services.store.read_events(STREAM)][before:]
    assert "reminded" not in kinds


async def test_fifteen_minutes_before_the_acknowledge_deadline_the_server_reminds_who_has_not_acknowledged_once(
    command_platform: CommandPlatform,
) -> None:
    clock = command_platform.clock
    issuer = await command_platform.console("mayor", "office")
    county = await command_platform.client("duty-linjiang", "linjiang")
    ok = await issuer.request(DirectiveIssue(cls="guidance", title="核查险情", sites=["linjiang", "jiangbei"],
                                             ack_by=clock.now() + 3600))
    await county.wait_for(lambda c: bool(c.of_kind("issued")))
    clock.advance(3600 - 15 * 60 - 1)
    await command_platform.services.scheduler.run_due()
    assert not [e for e in await command_platform.services.store.read_events(STREAM) if e.kind == "reminded"]
    clock.advance(1)  # 15 minutes to the deadline (guidance: [command.remind_before] guidance = 15)
    await command_platform.services.scheduler.run_due()
    await county.wait_for(lambda c: bool(c.of_kind("reminded")))
    (event,) = [e for e in await command_platform.services.store.read_events(STREAM) if e.kind == "reminded"]
    assert event.actor == "system" and event.data["sites"] == ["linjiang", "jiangbei"] and event.data["auto"] == "ack_by"
    assert "15" in str(event.data["note"])
    await command_platform.services.scheduler.run_due()
    assert len([e for e in await command_platform.services.store.read_events(STREAM) if e.kind == "reminded"]) == 1


async def test_no_automatic_reminder_once_everyone_acknowledged_or_the_directive_was_cancelled(
    command_platform: CommandPlatform,
) -> None:
    clock = command_platform.clock
    issuer = await command_platform.console("mayor", "office")
    county = await command_platform.client("duty-linjiang", "linjiang")
    done = await issuer.request(DirectiveIssue(cls="mandatory", title="甲", sites=["linjiang"], ack_by=clock.now() + 3600))
    gone = await issuer.request(DirectiveIssue(cls="mandatory", title="乙", sites=["linjiang"], ack_by=clock.now() + 3600))
    await county.wait_for(lambda c: len(c.of_kind("issued")) == 2)
    await county.request(DirectiveAcknowledge(directive_id=done.directive_id))
    await issuer.request(DirectiveCancel(directive_id=gone.directive_id, reason="撤销"))
    clock.advance(3600 - 30 * 60)  # mandatory: 30 minutes before
    await command_platform.services.scheduler.run_due()
    assert not [e for e in await command_platform.services.store.read_events(STREAM) if e.kind == "reminded"]
