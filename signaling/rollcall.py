"""Wire messages of the video roll-call (视频点名): start, answer, excuse, close, and what the server pushes."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from signaling.base import Message

Window = Annotated[float, msgspec.Meta(gt=0, le=3600)]
Grace = Annotated[float, msgspec.Meta(ge=0, le=3600)]
Text = Annotated[str, msgspec.Meta(max_length=200)]
SiteList = Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=1000)]

# --- client to server ----------------------------------------------------------------------------


class RollCallStart(Message, tag="rollcall_start", kw_only=True, frozen=True):
    """Start a roll-call over a list of sites, a saved group or a subtree; replied to by `rollcall_started`."""

    sites: SiteList = []
    group: str | None = None
    subtree: str | None = None
    mode: Literal["sequence", "all"] = "sequence"
    window: Window = 30.0
    grace: Grace = 15.0
    title: Text = ""
    room: str | None = None


class RollCallAnswer(Message, tag="rollcall_answer", kw_only=True, frozen=True):
    """The called site presses "到 Present"; replied to by `rollcall_answer_result`."""

    rollcall_id: str


class RollCallExcuse(Message, tag="rollcall_excuse", kw_only=True, frozen=True):
    """The caller excuses a site, with a reason."""

    rollcall_id: str
    site: str
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class RollCallClose(Message, tag="rollcall_close", kw_only=True, frozen=True):
    """The caller ends a roll-call now; unanswered sites become absent."""

    rollcall_id: str


class RollCallSync(Message, tag="rollcall_sync", kw_only=True, frozen=True):
    """After (re)connecting: send me every call to my site that is still open."""


# --- server to client ----------------------------------------------------------------------------


class RollCallStarted(Message, tag="rollcall_started", kw_only=True, frozen=True):
    """Reply to `rollcall_start` (and to excuse/close): the roll-call's id and its sites."""

    rollcall_id: str
    sites: list[str] = []


class RollCallCall(Message, tag="rollcall_call", kw_only=True, frozen=True):
    """Your site is being called: answer before `deadline` (epoch seconds; `now` is the server's clock)."""

    rollcall_id: str
    title: str
    site: str
    deadline: float
    window: float
    now: float
    state: Literal["calling", "overdue"] = "calling"


class RollCallCallEnded(Message, tag="rollcall_call_ended", kw_only=True, frozen=True):
    """The call to your site is over for now: `outcome` says how (overdue still accepts a late answer)."""

    rollcall_id: str
    site: str
    outcome: str
    final: bool = False


class RollCallAnswerResult(Message, tag="rollcall_answer_result", kw_only=True, frozen=True):
    """Reply to `rollcall_answer`: answered, late or no_video, and the response time in seconds."""

    rollcall_id: str
    site: str
    outcome: str
    response_time: float | None = None


class RollCallSpotlight(Message, tag="rollcall_spotlight", kw_only=True, frozen=True):
    """To the caller's room: show this site large (`site` None: back to the grid)."""

    rollcall_id: str
    site: str | None = None
    identity: str | None = None


class RollCallUpdate(Message, tag="rollcall_update", kw_only=True, frozen=True):
    """To the caller's room: a site's result changed."""

    rollcall_id: str
    site: str
    outcome: str
    response_time: float | None = None


class RollCallEscalation(Message, tag="rollcall_escalation", kw_only=True, frozen=True):
    """To a parent site: a site under it was absent from a roll-call."""

    rollcall_id: str
    title: str
    sites: list[str]


ROLLCALL_CLIENT = (RollCallStart, RollCallAnswer, RollCallExcuse, RollCallClose, RollCallSync)
