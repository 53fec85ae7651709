"""Subtrees, deadlines that escalate, reconnecting clients and bad input over the live channel."""

from __future__ import annotations

import io

import aiohttp
import pytest
from PIL import Image

from server.command.service import REFUSALS, STREAM
from signaling.command import (
    CommandSubscribe,
    DirectiveAcknowledge,
    DirectiveFeedback,
    DirectiveIssue,
    DirectiveRead,
)

from .conftest import CommandPlatform, Refused


async def test_a_subtree_directive_reaches_the_county_and_its_townships(command_platform: CommandPlatform) -> None:
    issuer = await command_platform.console("mayor", "office")
    ok = await issuer.request(DirectiveIssue(cls="reference", title="汛情通报", subtrees=["linjiang"]))
    d = command_platform.command.service.ledger.directives[ok.directive_id]
    assert d.recipients.keys() == {s.id for s in command_platform.services.sites.subtree("linjiang")}
    assert len(d.recipients) > 1


async def test_an_unacknowledged_directive_turns_overdue_and_tells_the_issuer_and_the_parent_site(
    command_platform: CommandPlatform,
) -> None:
    clock = command_platform.clock
    issuer = await command_platform.console("mayor", "office")
    county = await command_platform.client("duty-linjiang", "linjiang")
    township_site = command_platform.services.sites.children("linjiang")[0].id
    township = await command_platform.client("duty-town", township_site)
    ok = await issuer.request(DirectiveIssue(cls="guidance", title="核查险情", subtrees=["linjiang"],
                                             ack_by=clock.now() + 600))
    await county.request(DirectiveAcknowledge(directive_id=ok.directive_id))
    clock.advance(601)
    await command_platform.services.scheduler.run_due()
    await issuer.wait_for(lambda c: any(m.event.data.get("site") == township_site for m in c.of_kind("overdue")))
    await county.wait_for(lambda c: any(m.event.data.get("site") == township_site for m in c.of_kind("overdue")))
    await township.wait_for(lambda c: bool(c.of_kind("overdue")))
    d = command_platform.command.service.ledger.directives[ok.directive_id]
    assert d.recipients[township_site].overdue == ("acknowledge",)
    assert d.recipients["linjiang"].overdue == ()


async def test_a_client_offline_while_three_directives_were_issued_gets_all_three_once_on_reconnect(
    command_platform: CommandPlatform,
) -> None:
    issuer = await command_platform.console("mayor", "office")
    first = await command_platform.client("duty-qingshan", "qingshan")
    ok = await issuer.request(DirectiveIssue(cls="reference", title="before", sites=["qingshan"]))
    await first.wait_for(lambda c: bool(c.of_kind("issued")))
    last_seen = max(first.events, key=lambda i: tuple(map(int, i.split("-"))))
    await first.close()
    missed = [await issuer.request(DirectiveIssue(cls="reference", title=f"missed {n}", sites=["qingshan"]))
              for n in range(3)]
    again = await command_platform.client("duty-qingshan", "qingshan", after=last_seen)
    issued = again.of_kind("issued")
    assert sorted(m.directive.id for m in issued) == sorted(m.directive_id for m in missed)
    assert again.duplicates == 0
    assert ok.directive_id not in {m.directive.id for m in issued}
    service = command_platform.command.service
    assert all(service.ledger.directives[m.directive_id].recipients["qingshan"].delivered_at for m in missed)


async def _refusals(command_platform: CommandPlatform) -> int:
    return len(await command_platform.services.store.read_events(REFUSALS))


@pytest.mark.parametrize("request_args, code", [
    ({"cls": "mandatory", "title": "x", "sites": ["atlantis"]}, "unknown_site"),
    ({"cls": "mandatory", "title": "x"}, "no_recipients"),
    ({"cls": "mandatory", "title": "x", "subtrees": ["nowhere"]}, "unknown_site"),
])
async def test_a_directive_to_unknown_sites_or_to_nobody_is_refused_and_not_stored(
    command_platform: CommandPlatform, request_args: dict[str, object], code: str,
) -> None:
    issuer = await command_platform.console("mayor", "office")
    with pytest.raises(Refused) as refused:
        await issuer.request(DirectiveIssue(**request_args))  # type: ignore[arg-type]
    assert refused.value.code == code
    assert await command_platform.services.store.read_events(STREAM) == []
    assert await _refusals(command_platform) == 1


async def test_a_forged_issuer_field_and_a_user_without_the_grant_are_refused(command_platform: CommandPlatform) -> None:
    county = await command_platform.client("duty-jiangbei", "jiangbei")
    await county.send_raw('{"type":"directive_issue","id":"f1","cls":"mandatory","title":"x","sites":["jiangnan"],"issuer":"mayor"}')
    await county.wait_for(lambda c: any(e.id == "f1" for e in c.errors))
    assert next(e for e in county.errors if e.id == "f1").code == "invalid_field"
    with pytest.raises(Refused) as refused:
        await county.request(DirectiveIssue(cls="mandatory", title="x", sites=["jiangnan"]))
    assert refused.value.code == "forbidden"
    assert await command_platform.services.store.read_events(STREAM) == []
    assert await _refusals(command_platform) == 1


async def test_a_site_cannot_answer_for_another_site_or_for_what_was_not_sent_to_it(command_platform: CommandPlatform) -> None:
    issuer = await command_platform.console("mayor", "office")
    other = await command_platform.client("duty-jiangnan", "jiangnan")
    ok = await issuer.request(DirectiveIssue(cls="guidance", title="x", sites=["jiangbei"]))
    stored = len(await command_platform.services.store.read_events(STREAM))
    with pytest.raises(Refused) as refused:
        await other.request(DirectiveAcknowledge(directive_id=ok.directive_id, site="jiangbei"))
    assert refused.value.code == "not_your_site"
    with pytest.raises(Refused) as refused:
        await other.request(DirectiveRead(directive_id=ok.directive_id))
    assert refused.value.code == "not_recipient"
    assert len(await command_platform.services.store.read_events(STREAM)) == stored
    assert await _refusals(command_platform) == 2


def _png(size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


async def test_photos_that_are_not_images_or_too_large_are_refused_and_a_real_one_is_stored_by_hash(
    command_platform: CommandPlatform,
) -> None:
    url = command_platform.url + "/command/photos"
    headers = {"Authorization": "Bearer " + command_platform.token("duty-jiangbei", "jiangbei")}
    session = command_platform.session
    async with session.post(url, data=b"GIF89a not really", headers=headers) as resp:
        assert resp.status == 400 and "not_an_image" in await resp.text()
    command_platform.command.photos.max_bytes = 1000
    big = _png(400)
    assert len(big) > 1000
    async with session.post(url, data=big, headers=headers) as resp:
        assert resp.status in (400, 413) and "photo_too_large" in await resp.text()
    command_platform.command.photos.max_bytes = 1 << 20
    form = aiohttp.FormData()
    form.add_field("photo", _png(), filename="a.png", content_type="image/png")
    async with session.post(url, data=form, headers=headers) as resp:
        assert resp.status == 201
        name = (await resp.json())["photo"]
    assert name.endswith(".png") and len(name) == 68
    async with session.post(url, data=_png()) as resp:
        assert resp.status == 401

    issuer = await command_platform.console("mayor", "office")
    site = await command_platform.client("duty-jiangbei", "jiangbei")
    ok = await issuer.request(DirectiveIssue(cls="mandatory", title="x", sites=["jiangbei"]))
    await site.request(DirectiveAcknowledge(directive_id=ok.directive_id))
    with pytest.raises(Refused) as refused:
        await site.request(DirectiveFeedback(directive_id=ok.directive_id, text="see photo", photo="0" * 64 + ".png"))
    assert refused.value.code == "unknown_photo"
    await site.request(DirectiveFeedback(directive_id=ok.directive_id, text="see photo", photo=name))
    async with session.get(f"{command_platform.url}/command/photos/{name}", headers=headers) as resp:
        assert resp.status == 200 and await resp.read() == _png()
    stranger = {"Authorization": "Bearer " + command_platform.token("duty-jiangnan", "jiangnan")}
    async with session.get(f"{command_platform.url}/command/photos/{name}", headers=stranger) as resp:
        assert resp.status == 404


async def test_a_malformed_resume_id_is_a_clear_error(command_platform: CommandPlatform) -> None:
    site = await command_platform.client("duty-jiangbei", "jiangbei", subscribe=False)
    with pytest.raises(Refused) as refused:
        await site.request(CommandSubscribe(after="yesterday"))
    assert refused.value.code == "bad_event_id"
