"""Who is who in a room: chair, moderator, participant, observer; derived from grants and the room's host site."""

from __future__ import annotations

from collections.abc import Collection
from typing import Final, Literal

Role = Literal["chair", "moderator", "participant", "observer"]
ROLES: Final[tuple[Role, ...]] = ("chair", "moderator", "participant", "observer")


def base_role(grants: Collection[str]) -> Role:
    """The role grants give by themselves: "moderate" makes a moderator, no "publish" an observer."""
    if "moderate" in grants:
        return "moderator"
    if "publish" in grants:
        return "participant"
    return "observer"


def claims_chair(grants: Collection[str], site: str, *, host_site: str | None, chair_present: bool,
                 chair_is_host: bool) -> bool:
    """Whether a newcomer takes the chair on joining.

    The room's host site is the first site of its configuration (the mayor's office for the
    consultation room): a moderator from there takes the chair unless another host-site chair is
    present. Any moderator takes an empty chair, so a room is never left without one.
    """
    if "moderate" not in grants:
        return False
    if not chair_present:
        return True
    return host_site is not None and site == host_site and not chair_is_host


def can_hold_chair(role: Role) -> bool:
    """Only a moderator or a participant can be handed the chair; an observer (a wall) cannot."""
    return role in ("moderator", "participant", "chair")
