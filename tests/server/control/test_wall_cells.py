"""The chair places sites in the wall's cells and sets its rotation; bad values are refused, the room goes on."""

from __future__ import annotations

import pytest

from signaling.control import ControlState, SetLayout
from synthetic.client import ClientError
from tests.server.control.conftest import CHAIR_GRANTS, Join, Member

TIMEOUT = 10


async def _state(member: Member, predicate: object) -> ControlState:
    await member.wait_for(lambda c: isinstance(c.last(ControlState), ControlState) and predicate(c.last(ControlState)), TIMEOUT)  # type: ignore[attr-defined,operator]
    latest = member.last(ControlState)
    assert isinstance(latest, ControlState)
    return latest


async def test_cells_and_rotation_reach_every_wall_and_stay_when_only_the_layout_changes(join: Join) -> None:
    mayor = await join("mayor-cells", site="office", grants=CHAIR_GRANTS)
    wall = await join("wall-cells", site="command_centre", grants=("subscribe",))
    await mayor.request(SetLayout(layout="3x3", cells=["linjiang", "", "jiangkou"], rotate_every=20, rotate_group="counties"))
    s = await _state(wall, lambda s: s.layout == "3x3")
    assert s.cells == ["linjiang", "", "jiangkou"] and s.rotate_every == 20 and s.rotate_group == "counties"
    await mayor.request(SetLayout(layout="2x2"))
    s = await _state(wall, lambda s: s.layout == "2x2")
    assert s.cells == ["linjiang", "", "jiangkou"] and s.rotate_every == 20 and s.rotate_group == "counties"


@pytest.mark.parametrize(("fields", "code"), [
    ({"cells": ["s"] * 17}, "invalid_cells"),
    ({"cells": ["x" * 65]}, "invalid_cells"),
    ({"rotate_every": -1}, "invalid_rotation"),
    ({"rotate_every": 3601}, "invalid_rotation"),
    ({"rotate_group": "g" * 65}, "invalid_rotation"),
])
async def test_bad_cells_or_rotation_are_refused_with_a_code_and_change_nothing(join: Join, fields: dict[str, object], code: str) -> None:
    mayor = await join("mayor-bad-cells", site="office", grants=CHAIR_GRANTS)
    with pytest.raises(ClientError) as refused:
        await mayor.request(SetLayout(layout="3x3", **fields))  # type: ignore[arg-type]
    assert refused.value.code == code
    await mayor.request(SetLayout(layout="2x2", cells=["linjiang"]))
    s = await _state(mayor, lambda s: s.layout == "2x2")
    assert s.cells == ["linjiang"]


async def test_a_site_that_does_not_moderate_cannot_place_cells(join: Join) -> None:
    county = await join("county-cells", site="linjiang")
    with pytest.raises(ClientError) as refused:
        await county.request(SetLayout(layout="3x3", cells=["linjiang"]))
    assert refused.value.code == "forbidden"
