"""What each role may do to the room and to whom: pure checks raising one clear error."""

from __future__ import annotations

from typing import Final, Literal

from server.control.roles import Role
from server.errors import RequestError

Action = Literal[
    "spotlight", "mute", "unmute", "allow_self_unmute", "mute_all", "remove", "lock", "end",
    "grant_floor", "hand_over", "layout", "raise_hand", "history", "record",
]

MODERATION: Final[frozenset[str]] = frozenset(
    {"spotlight", "mute", "unmute", "allow_self_unmute", "mute_all", "remove", "lock", "end", "grant_floor", "layout",
     "record"}
)
EVERYONE: Final[frozenset[str]] = frozenset({"history"})
SPEAKERS: Final[frozenset[str]] = frozenset({"raise_hand"})
# Acting on the chair (muting, removing) is the chair's own business.
ON_OTHERS: Final[frozenset[str]] = frozenset({"mute", "unmute", "allow_self_unmute", "remove", "grant_floor"})


class ControlForbidden(RequestError):
    """The caller's role does not allow this control action."""

    status = 403

    def __init__(self, message: str) -> None:
        super().__init__("forbidden", message)


def allowed(role: Role, action: str, *, chair_present: bool = True) -> bool:
    """Whether `role` may carry out `action` at all (targets are checked by `check_target`)."""
    if action in EVERYONE:
        return True
    if action in SPEAKERS:
        return role in ("participant", "moderator", "chair")
    if action in MODERATION:
        return role in ("chair", "moderator")
    if action == "hand_over":
        # A moderator takes over when the chair is gone (a dropped laptop must not orphan the room).
        return role == "chair" or (role == "moderator" and not chair_present)
    return False


def require(role: Role, action: str, *, who: str, chair_present: bool = True) -> None:
    """Raise ControlForbidden unless `role` may carry out `action`."""
    if not allowed(role, action, chair_present=chair_present):
        raise ControlForbidden(f"{who!r} is {role} and may not {action.replace('_', ' ')} (需要主持人权限 needs the chair or a moderator)")


def check_target(actor_role: Role, action: str, *, actor: str, target: str, target_role: Role | None) -> None:
    """Raise unless `actor` may do `action` to `target`: moderators leave the chair alone; nobody removes themselves."""
    if target_role is None:
        raise RequestError("unknown_participant", f"{target!r} is not in this room")
    if action == "remove" and target == actor:
        raise RequestError("invalid_target", "use leave to leave the room; you cannot remove yourself")
    if action in ON_OTHERS and target_role == "chair" and actor_role != "chair":
        raise ControlForbidden(f"{actor!r} may not {action.replace('_', ' ')} the chair")
