"""The command channel's wire messages: directives down, incident reports up, resume after an event id.

Who issued, read or acknowledged is never a field here: the server takes it from the verified
identity of the session. A message carrying such a field is refused (unknown fields are errors).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from signaling.base import Message

DirectiveClass = Literal["mandatory", "guidance", "reference"]


class _Shape(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of the nested shapes."""


# --- shapes the server sends ---------------------------------------------------------------------


class FeedbackInfo(_Shape, frozen=True):
    """One feedback of a recipient."""

    event_id: str
    at: float
    actor: str
    text: str
    photo: str | None = None
    final: bool = False


class RecipientInfo(_Shape, frozen=True):
    """One recipient site's progress on a directive."""

    site: str
    stage: str
    delivered_at: float | None = None
    read_at: float | None = None
    acknowledged_at: float | None = None
    done_at: float | None = None
    overdue: list[str] = []
    feedback: list[FeedbackInfo] = []
    reminders: list[float] = []  # when the issuer reminded the site (催办)


class DirectiveInfo(_Shape, frozen=True):
    """A directive's header (its recipients travel separately, only those the viewer may see)."""

    id: str
    cls: DirectiveClass
    title: str
    body: str
    issuer: str
    issuer_site: str
    issued_at: float
    ack_by: float | None = None
    feedback_by: float | None = None
    status: Literal["active", "cancelled"] = "active"
    version: int = 1
    reason: str = ""
    recipient_count: int = 0


class Casualties(_Shape, frozen=True):
    """Casualty counts of an incident report."""

    dead: int = 0
    injured: int = 0
    missing: int = 0


class ReportInfo(_Shape, frozen=True):
    """One filed report on an incident."""

    event_id: str
    kind: Literal["initial", "followup"]
    at: float
    actor: str
    summary: str
    casualties: Casualties = Casualties()
    photo: str | None = None
    late: bool = False
    state: Literal["draft", "returned", "sent"] = "sent"  # 审核签发: a draft is seen only by its own site
    urgent: bool = False  # 即报: went up at once, reviewed after
    reviewed: bool = True  # signed off by the site's duty leader
    versions: int = 1


class IncidentInfo(_Shape, frozen=True):
    """An incident with its reports, as the filing site and the levels above it see it."""

    id: str
    site: str
    chain: list[str]
    occurred_at: float
    place: str
    type: str
    reached: list[str] = []  # the levels above that have it (the parent once it went up, more when forwarded)
    status: Literal["open", "closed"] = "open"
    late: bool = False
    reports: list[ReportInfo] = []


class EventInfo(_Shape, frozen=True):
    """One stored event of the command log (who and when from the server, never the client)."""

    id: str
    kind: str
    at: float
    actor: str
    site: str = ""
    directive_id: str | None = None
    incident_id: str | None = None
    data: dict[str, Any] = {}


# --- client to server ----------------------------------------------------------------------------


class CommandSubscribe(Message, tag="command_subscribe", kw_only=True, frozen=True):
    """Start live command updates; `after` is the last event id this client saw (None: everything)."""

    after: str | None = None


class DirectiveIssue(Message, tag="directive_issue", kw_only=True, frozen=True):
    """Issue a directive to sites and/or whole subtrees of the site tree."""

    cls: DirectiveClass
    title: str
    body: str = ""
    sites: list[str] = []
    subtrees: list[str] = []
    ack_by: float | None = None
    feedback_by: float | None = None


class DirectiveUpdate(Message, tag="directive_update", kw_only=True, frozen=True):
    """Change a directive's text or deadlines; a reason is required. Omitted fields stay."""

    directive_id: str
    reason: str
    title: str | None = None
    body: str | None = None
    ack_by: float | None = None
    feedback_by: float | None = None


class DirectiveCancel(Message, tag="directive_cancel", kw_only=True, frozen=True):
    """Cancel a directive, with a reason."""

    directive_id: str
    reason: str


class DirectiveRead(Message, tag="directive_read", kw_only=True, frozen=True):
    """The caller's site has read the directive."""

    directive_id: str
    site: str | None = None


class DirectiveAcknowledge(Message, tag="directive_acknowledge", kw_only=True, frozen=True):
    """The caller's site acknowledges the directive."""

    directive_id: str
    site: str | None = None


class DirectiveFeedback(Message, tag="directive_feedback", kw_only=True, frozen=True):
    """The caller's site reports back: text, an uploaded photo's name, and whether it is done."""

    directive_id: str
    text: str = ""
    photo: str | None = None
    final: bool = False
    site: str | None = None


class DirectiveRemind(Message, tag="directive_remind", kw_only=True, frozen=True):
    """催办: the issuer reminds recipients that still owe an acknowledgement or feedback (none listed: all of them)."""

    directive_id: str
    sites: list[str] = []
    note: str = ""


class ReportFile(Message, tag="report_file", kw_only=True, frozen=True):
    """File an initial report (no incident_id) or a follow-up on an incident."""

    incident_id: str | None = None
    occurred_at: float | None = None
    place: str = ""
    incident_type: str = "other"
    casualties: Casualties = Casualties()
    summary: str
    photo: str | None = None
    urgent: bool = False  # 即报: goes up at once, reviewed by the duty leader after


class IncidentClose(Message, tag="incident_close", kw_only=True, frozen=True):
    """Close an incident (its site or a level above)."""

    incident_id: str


class IncidentReopen(Message, tag="incident_reopen", kw_only=True, frozen=True):
    """Open a closed incident again (its site or a level above), with a reason."""

    incident_id: str
    reason: str


# --- server to client ----------------------------------------------------------------------------


class CommandOk(Message, tag="command_ok", kw_only=True, frozen=True):
    """Reply to a command request: the store holds its event now."""

    event_id: str | None = None
    directive_id: str | None = None
    incident_id: str | None = None


class CommandEvent(Message, tag="command_event", kw_only=True, frozen=True):
    """One event and the state it changed, as this client may see it; apply once per event id."""

    event: EventInfo
    directive: DirectiveInfo | None = None
    recipients: dict[str, RecipientInfo] = {}
    incident: IncidentInfo | None = None
    late_by_site: dict[str, int] = {}


class CommandSynced(Message, tag="command_synced", kw_only=True, frozen=True):
    """Reply to command_subscribe: everything after `after` was sent; live updates follow."""

    last_event_id: str | None = None
    replayed: int = 0


COMMAND_CLIENT_MESSAGES = (
    CommandSubscribe,
    DirectiveIssue,
    DirectiveUpdate,
    DirectiveCancel,
    DirectiveRead,
    DirectiveAcknowledge,
    DirectiveFeedback,
    DirectiveRemind,
    ReportFile,
    IncidentClose,
    IncidentReopen,
)
