"""A device named like a user is not that user: a device token named `mayor` can neither read nor act
on the mayor's directives, whatever the issuer checks compare."""

from __future__ import annotations

import pytest

from signaling.command import CommandSubscribe, DirectiveCancel, DirectiveIssue, DirectiveRead, DirectiveUpdate

from .conftest import CommandClient, CommandPlatform, Refused


async def _device_console(platform: CommandPlatform, identity: str, site: str) -> CommandClient:
    """A console socket opened with a device token (the conftest's `console` logs configured users in)."""
    ws = await platform.session.ws_connect(f"{platform.url}/command/ws?token={platform.token(identity, site, ('issue',))}")
    client = CommandClient(ws)
    platform.clients.append(client)
    await client.start(None)
    return client


async def test_a_device_token_named_mayor_cannot_read_or_act_on_the_mayors_directives(command_platform: CommandPlatform) -> None:
    mayor = await command_platform.console("mayor", "office")  # the mayor's own login
    issued = await mayor.request(DirectiveIssue(cls="mandatory", title="转移低洼村庄 Evacuate the low villages", sites=["linjiang"]))
    directive_id = issued.directive_id  # type: ignore[attr-defined]
    ledger = command_platform.command.service.ledger
    assert ledger.directives[directive_id].issuer == "mayor"

    namesake = await _device_console(command_platform, "mayor", "jiangnan")
    synced = await namesake.request(CommandSubscribe())
    assert synced.replayed == 0 and namesake.events == {}  # type: ignore[attr-defined]
    for request in (DirectiveCancel(directive_id=directive_id, reason="forged"),
                    DirectiveUpdate(directive_id=directive_id, reason="forged", title="撤销 Stand down")):
        with pytest.raises(Refused) as refused:
            await namesake.request(request)
        assert refused.value.code == "not_issuer"
    with pytest.raises(Refused):
        await namesake.request(DirectiveRead(directive_id=directive_id))
    directive = ledger.directives[directive_id]
    assert directive.status == "active" and directive.title == "转移低洼村庄 Evacuate the low villages"

    own = await namesake.request(DirectiveIssue(cls="reference", title="设备自发 From the device", sites=["linjiang"]))
    assert ledger.directives[own.directive_id].issuer == "device:mayor"  # type: ignore[attr-defined]
    with pytest.raises(Refused) as refused:
        await mayor.request(DirectiveCancel(directive_id=own.directive_id, reason="not mine"))  # type: ignore[attr-defined]
    assert refused.value.code == "not_issuer"
