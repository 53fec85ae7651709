"""A closed incident is opened again by its site or a level above, with a reason; anyone else is refused."""

from __future__ import annotations

import pytest

from signaling.command import Casualties, IncidentClose, IncidentReopen, ReportFile

from .conftest import CommandPlatform, Refused


async def test_a_closed_incident_is_reopened_with_a_reason_and_takes_follow_ups_again(command_platform: CommandPlatform) -> None:
    clock = command_platform.clock
    county = await command_platform.client("duty-linjiang", "linjiang")
    city = await command_platform.console("mayor", "office")
    other = await command_platform.client("duty-qingshan", "qingshan")
    ok = await county.request(ReportFile(occurred_at=clock.now() - 60, place="临江大堤", incident_type="flood",
                                         casualties=Casualties(), summary="堤防渗水"))
    incident = ok.incident_id
    assert incident
    await city.request(IncidentClose(incident_id=incident))
    with pytest.raises(Refused) as no_reason:
        await city.request(IncidentReopen(incident_id=incident, reason="  "))
    assert no_reason.value.code == "empty_reason"
    with pytest.raises(Refused) as stranger:
        await other.request(IncidentReopen(incident_id=incident, reason="不是我的"))
    assert stranger.value.code == "not_your_incident"
    await city.request(IncidentReopen(incident_id=incident, reason="险情反复 The seepage is back"))
    board = command_platform.command.service.board
    assert board.incidents[incident].status == "open"
    await county.request(ReportFile(incident_id=incident, summary="续报：再次渗水"))
    assert len(board.incidents[incident].reports) == 2
    with pytest.raises(Refused) as open_already:
        await city.request(IncidentReopen(incident_id=incident, reason="again"))
    assert open_already.value.code == "not_closed"
    await county.wait_for(lambda c: any(m.event.kind == "incident_reopened" for m in c.of_kind("incident_reopened")))
