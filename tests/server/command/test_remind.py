"""催办: the issuer presses the recipients that still owe a step; they, and only they, are told."""

from __future__ import annotations

import pytest

from signaling.command import DirectiveAcknowledge, DirectiveIssue, DirectiveRemind

from .conftest import CommandPlatform, Refused


async def test_a_reminder_reaches_only_the_recipients_that_still_owe_acknowledgement(command_platform: CommandPlatform) -> None:
    issuer = await command_platform.console("mayor", "office")
    done = await command_platform.client("duty-jiangbei", "jiangbei")
    owing = await command_platform.client("duty-jiangnan", "jiangnan")
    ok = await issuer.request(DirectiveIssue(cls="guidance", title="核查", sites=["jiangbei", "jiangnan"]))
    await done.wait_for(lambda c: bool(c.of_kind("issued")))
    await done.request(DirectiveAcknowledge(directive_id=ok.directive_id))
    await issuer.request(DirectiveRemind(directive_id=ok.directive_id))
    await owing.wait_for(lambda c: bool(c.of_kind("reminded")))
    await issuer.wait_for(lambda c: bool(c.of_kind("reminded")))
    reminded = issuer.of_kind("reminded")[0]
    assert reminded.event.data["sites"] == ["jiangnan"]
    assert not done.of_kind("reminded")
    await owing.request(DirectiveAcknowledge(directive_id=ok.directive_id))
    with pytest.raises(Refused) as nobody:
        await issuer.request(DirectiveRemind(directive_id=ok.directive_id))
    assert nobody.value.code == "nothing_to_remind"


async def test_only_the_issuer_reminds(command_platform: CommandPlatform) -> None:
    issuer = await command_platform.console("mayor", "office")
    other = await command_platform.console("chief", "command_centre")
    ok = await issuer.request(DirectiveIssue(cls="mandatory", title="转移", sites=["linjiang"]))
    with pytest.raises(Refused) as refused:
        await other.request(DirectiveRemind(directive_id=ok.directive_id))
    assert refused.value.code == "not_issuer"
    with pytest.raises(Refused) as unknown:
        await issuer.request(DirectiveRemind(directive_id="d-nothing"))
    assert unknown.value.code == "unknown_directive"
