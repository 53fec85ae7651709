"""Directives as a pure state machine: events in, state out, illegal transitions refused. No I/O.

A directive goes to a set of recipient sites. Per recipient:
sent → delivered → read → acknowledged → feedback → done, with `overdue` marks beside the stage.
What "done" needs depends on the class: reference = read; guidance = acknowledged;
mandatory = acknowledged and a final feedback (carried out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final, Literal, TypeVar, get_args

DirectiveClass = Literal["mandatory", "guidance", "reference"]
Stage = Literal["sent", "delivered", "read", "acknowledged", "feedback", "done"]
Obligation = Literal["acknowledge", "feedback"]

CLASSES: Final[frozenset[str]] = frozenset(get_args(DirectiveClass))
STAGES: Final[tuple[str, ...]] = get_args(Stage)
STAGE_RANK: Final[dict[str, int]] = {s: i for i, s in enumerate(STAGES)}
CLASS_NAMES: Final[dict[str, tuple[str, str]]] = {
    "mandatory": ("指令性", "Mandatory"),
    "guidance": ("指导性", "Guidance"),
    "reference": ("参考性", "Reference"),
}
SYSTEM: Final[str] = "system"  # the actor of what the server records by itself (deliveries, overdue marks, reminders)
DIRECTIVE_KINDS: Final[frozenset[str]] = frozenset(
    {"issued", "updated", "cancelled", "delivered", "read", "acknowledged", "feedback", "overdue", "reminded"}
)


T = TypeVar("T")


def evolve(obj: T, **changes: object) -> T:
    """A copy of a frozen dataclass with `changes`: `dataclasses.replace` without its pass through
    `__init__` (which checks and copies every field), for the fold's steps taken once per recipient and
    event: a province's year of acknowledgements spent a third of the start-up in `replace`."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


class IllegalTransition(Exception):
    """An event that the current state does not allow; `code` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AlreadyDone(IllegalTransition):
    """The step was already taken (a repeat, not a contradiction)."""


@dataclass(frozen=True)
class Feedback:
    """One feedback from a recipient: text, an optional stored photo, and whether it reports completion."""

    event_id: str
    at: float
    actor: str
    text: str
    photo: str | None
    final: bool


@dataclass(frozen=True)
class Recipient:
    """One recipient site's progress on one directive."""

    site: str
    stage: str = "sent"
    delivered_at: float | None = None
    read_at: float | None = None
    acknowledged_at: float | None = None
    done_at: float | None = None
    overdue: tuple[str, ...] = ()
    feedback: tuple[Feedback, ...] = ()
    reminders: tuple[float, ...] = ()  # when the issuer reminded this site (催办)

    def reached(self, stage: str) -> bool:
        """Whether this recipient is at or past `stage`."""
        return STAGE_RANK[self.stage] >= STAGE_RANK[stage]


@dataclass(frozen=True)
class Directive:
    """A directive's current state, folded from its events."""

    id: str
    cls: str
    title: str
    body: str
    issuer: str
    issuer_site: str
    issued_at: float
    issued_event: str
    ack_by: float | None
    feedback_by: float | None
    recipients: dict[str, Recipient]
    status: Literal["active", "cancelled"] = "active"
    version: int = 1
    reason: str = ""
    last_event: str = ""

    def obligations(self) -> tuple[str, ...]:
        """The steps each recipient owes, in order."""
        return {"reference": ("read",), "guidance": ("read", "acknowledged")}.get(
            self.cls, ("read", "acknowledged", "feedback")
        )


@dataclass(frozen=True)
class Event:
    """The domain view of a stored event: id, kind, actor and its data (with `t`, the domain time)."""

    id: str
    kind: str
    actor: str
    data: dict[str, object]

    @property
    def t(self) -> float:
        """When it happened by the scheduler's clock; IllegalTransition for a record whose time is not a number."""
        value = self.data.get("t", 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise IllegalTransition("bad_event", f"event time must be a number, not {value!r}")
        return float(value)

    def text(self, key: str) -> str:
        """A string field, or ''."""
        value = self.data.get(key)
        return value if isinstance(value, str) else ""


def apply(directives: dict[str, Directive], event: Event) -> Directive:
    """The directive after `event`, or IllegalTransition; `directives` is not modified."""
    directive_id = event.text("directive_id")
    current = directives.get(directive_id)
    if event.kind == "issued":
        if current is not None:
            raise IllegalTransition("duplicate_directive", f"directive {directive_id!r} already exists")
        return _issued(event, directive_id)
    if current is None:
        raise IllegalTransition("unknown_directive", f"no directive {directive_id!r}")
    handler = _HANDLERS.get(event.kind)
    if handler is None:
        raise IllegalTransition("unknown_event", f"unknown directive event {event.kind!r}")
    return replace(handler(current, event), last_event=event.id)


def _issued(event: Event, directive_id: str) -> Directive:
    cls = event.text("cls")
    if cls not in CLASSES:
        raise IllegalTransition("bad_class", f"class must be one of {sorted(CLASSES)}, not {cls!r}")
    sites = event.data.get("recipients")
    if not isinstance(sites, list) or not sites or not all(isinstance(s, str) for s in sites):
        raise IllegalTransition("no_recipients", "a directive needs at least one recipient site")
    if len(set(sites)) != len(sites):
        raise IllegalTransition("duplicate_recipients", "each recipient site may appear only once")
    if not event.text("title").strip():
        raise IllegalTransition("empty_title", "a directive needs a title")
    ack_by, feedback_by = _deadline(event, "ack_by"), _deadline(event, "feedback_by")
    if feedback_by is not None and cls != "mandatory":
        raise IllegalTransition("bad_deadline", "only a mandatory directive has a feedback deadline")
    if ack_by is not None and ack_by <= event.t or feedback_by is not None and feedback_by <= event.t:
        raise IllegalTransition("bad_deadline", "deadlines must lie in the future")
    return Directive(
        id=directive_id,
        cls=cls,
        title=event.text("title"),
        body=event.text("body"),
        issuer=event.actor,
        issuer_site=event.text("site"),
        issued_at=event.t,
        issued_event=event.id,
        ack_by=ack_by,
        feedback_by=feedback_by,
        recipients={s: Recipient(site=s) for s in sites},
        last_event=event.id,
    )


def _deadline(event: Event, key: str) -> float | None:
    value = event.data.get(key)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise IllegalTransition("bad_deadline", f"{key} must be a time in seconds")
    return float(value)


def _active(d: Directive) -> None:
    if d.status == "cancelled":
        raise IllegalTransition("cancelled", f"directive {d.id!r} was cancelled: {d.reason}")


def _issuer_only(d: Directive, event: Event) -> None:
    if event.actor != d.issuer:
        raise IllegalTransition("not_issuer", f"only the issuer {d.issuer!r} may change directive {d.id!r}")


def _updated(d: Directive, event: Event) -> Directive:
    _active(d)
    _issuer_only(d, event)
    reason = event.text("reason").strip()
    if not reason:
        raise IllegalTransition("reason_required", "an update needs a reason")
    changes: dict[str, object] = {}
    for key in ("title", "body"):
        if key in event.data:
            changes[key] = event.text(key)
    if "title" in changes and not str(changes["title"]).strip():
        raise IllegalTransition("empty_title", "a directive needs a title")
    for key in ("ack_by", "feedback_by"):
        if key in event.data:
            changes[key] = _deadline(event, key)
            if changes[key] is not None and float(changes[key]) <= event.t:  # type: ignore[arg-type]
                raise IllegalTransition("bad_deadline", "deadlines must lie in the future")
    if changes.get("feedback_by") is not None and d.cls != "mandatory":
        raise IllegalTransition("bad_deadline", "only a mandatory directive has a feedback deadline")
    return replace(d, version=d.version + 1, reason=reason, **changes)  # type: ignore[arg-type]


def _cancelled(d: Directive, event: Event) -> Directive:
    _active(d)
    _issuer_only(d, event)
    reason = event.text("reason").strip()
    if not reason:
        raise IllegalTransition("reason_required", "a cancellation needs a reason")
    return replace(d, status="cancelled", reason=reason, version=d.version + 1)


def _recipient(d: Directive, event: Event) -> Recipient:
    site = event.text("site")
    r = d.recipients.get(site)
    if r is None:
        raise IllegalTransition("not_recipient", f"site {site!r} is not a recipient of directive {d.id!r}")
    return r


def _with(d: Directive, r: Recipient) -> Directive:
    return replace(d, recipients={**d.recipients, r.site: r})


def _advance(d: Directive, r: Recipient, stage: str, t: float) -> Recipient:
    """Move to `stage` (never backwards) and to done when the class's obligations are met."""
    new = evolve(r, stage=stage) if STAGE_RANK[stage] > STAGE_RANK[r.stage] else r
    final = d.obligations()[-1]
    finished = final == "read" and new.read_at is not None or final == "acknowledged" and new.acknowledged_at is not None
    if finished and new.stage != "done":
        new = evolve(new, stage="done", done_at=t)
    return new


def _delivered(d: Directive, event: Event) -> Directive:
    sites = event.data.get("sites")
    if not isinstance(sites, list):
        raise IllegalTransition("bad_event", "delivered needs a list of sites")
    recipients = dict(d.recipients)
    for site in sites:
        r = recipients.get(site) if isinstance(site, str) else None
        if r is not None and r.delivered_at is None:
            recipients[site] = replace(_advance(d, r, "delivered", event.t), delivered_at=event.t)
    return replace(d, recipients=recipients)


def _reminded(d: Directive, event: Event) -> Directive:
    """催办: the listed recipients, each still owing a step, are reminded (by the issuer, or the server before a deadline)."""
    _active(d)
    if event.actor != SYSTEM:
        _issuer_only(d, event)
    sites = event.data.get("sites")
    if not isinstance(sites, list) or not sites or not all(isinstance(s, str) for s in sites):
        raise IllegalTransition("nothing_to_remind", "a reminder names at least one recipient site")
    recipients = dict(d.recipients)
    for site in dict.fromkeys(sites):
        r = recipients.get(site)
        if r is None:
            raise IllegalTransition("not_recipient", f"site {site!r} is not a recipient of directive {d.id!r}")
        if not owes(d, r):
            raise IllegalTransition("nothing_owed", f"site {site!r} owes nothing on directive {d.id!r}")
        recipients[site] = replace(r, reminders=(*r.reminders, event.t))
    return replace(d, recipients=recipients)


def owes(d: Directive, r: Recipient) -> bool:
    """Whether the recipient still owes a step the issuer may remind it of (acknowledge, or feedback)."""
    return pending(d, r, "acknowledge") or pending(d, r, "feedback")


def _read(d: Directive, event: Event) -> Recipient:
    r = _recipient(d, event)
    if r.read_at is not None:
        raise AlreadyDone("already_read", f"site {r.site!r} already read directive {d.id!r}")
    r = evolve(r, read_at=event.t, delivered_at=r.delivered_at or event.t)
    return _advance(d, r, "read", event.t)


def _acknowledged(d: Directive, event: Event) -> Recipient:
    _active(d)
    r = _recipient(d, event)
    if d.cls == "reference":
        raise IllegalTransition("no_acknowledge", "a reference directive is read, not acknowledged")
    if r.acknowledged_at is not None:
        raise AlreadyDone("already_acknowledged", f"site {r.site!r} already acknowledged directive {d.id!r}")
    r = evolve(r, acknowledged_at=event.t, read_at=r.read_at or event.t, delivered_at=r.delivered_at or event.t)
    return _advance(d, r, "acknowledged", event.t)


def _feedback(d: Directive, event: Event) -> Recipient:
    _active(d)
    r = _recipient(d, event)
    if d.cls != "mandatory":
        raise IllegalTransition("no_feedback", "only a mandatory directive takes feedback")
    if r.acknowledged_at is None:
        raise IllegalTransition("not_acknowledged", "acknowledge the directive before sending feedback")
    if r.stage == "done":
        raise AlreadyDone("already_done", f"site {r.site!r} already reported directive {d.id!r} done")
    photo = event.data.get("photo")
    item = Feedback(
        event_id=event.id,
        at=event.t,
        actor=event.actor,
        text=event.text("text"),
        photo=photo if isinstance(photo, str) else None,
        final=bool(event.data.get("final")),
    )
    if not item.text.strip() and item.photo is None:
        raise IllegalTransition("empty_feedback", "feedback needs text or a photo")
    r = evolve(r, feedback=(*r.feedback, item), stage="feedback" if r.stage != "done" else r.stage)
    if item.final:
        r = evolve(r, stage="done", done_at=event.t)
    return r


def _overdue(d: Directive, event: Event) -> Recipient:
    r = _recipient(d, event)
    obligation = event.text("obligation")
    if obligation not in ("acknowledge", "feedback"):
        raise IllegalTransition("bad_event", f"unknown obligation {obligation!r}")
    if obligation in r.overdue:
        raise AlreadyDone("already_overdue", f"{obligation} of site {r.site!r} is already overdue")
    if pending(d, r, obligation) is False:
        raise IllegalTransition("not_overdue", f"site {r.site!r} has met its {obligation} obligation")
    return evolve(r, overdue=(*r.overdue, obligation))


def pending(d: Directive, r: Recipient, obligation: str) -> bool:
    """Whether `r` still owes `obligation` (acknowledge means read for a reference directive)."""
    if d.status == "cancelled" or r.stage == "done":
        return False
    if obligation == "acknowledge":
        return r.read_at is None if d.cls == "reference" else r.acknowledged_at is None
    return d.cls == "mandatory" and not r.feedback


def overdue_now(d: Directive, now: float) -> list[tuple[str, str]]:
    """(site, obligation) pairs whose deadline has passed and that are not yet marked overdue."""
    due: list[tuple[str, str]] = []
    for obligation, deadline in (("acknowledge", d.ack_by), ("feedback", d.feedback_by)):
        if deadline is None or deadline > now:
            continue
        for r in d.recipients.values():
            if obligation not in r.overdue and pending(d, r, obligation):
                due.append((r.site, obligation))
    return due


RecipientStep = Callable[[Directive, Event], Recipient]
DirectiveStep = Callable[[Directive, Event], Directive]


def _whole(step: RecipientStep) -> DirectiveStep:
    """A one-recipient step as a step on the whole directive."""
    return lambda d, e: _with(d, step(d, e))


# Steps that change one recipient: validated and computed without copying the recipients.
_RECIPIENT_STEPS: Final[dict[str, RecipientStep]] = {
    "read": _read, "acknowledged": _acknowledged, "feedback": _feedback, "overdue": _overdue,
}
_HANDLERS: Final[dict[str, DirectiveStep]] = {
    "updated": _updated,
    "cancelled": _cancelled,
    "delivered": _delivered,
    "reminded": _reminded,
    **{kind: _whole(step) for kind, step in _RECIPIENT_STEPS.items()},
}


def validate(directives: dict[str, Directive], event: Event) -> None:
    """Raise IllegalTransition unless `event` would apply; cheap for one-recipient steps."""
    step = _RECIPIENT_STEPS.get(event.kind)
    current = directives.get(event.text("directive_id"))
    if step is None or current is None:
        apply(directives, event)
    else:
        step(current, event)


@dataclass
class Ledger:
    """All directives, folded event by event; `fold` skips (and reports) what `apply` refuses."""

    directives: dict[str, Directive] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def fold(self, event: Event) -> Directive | None:
        """Apply one event; on refusal remember (event id, code) and return None."""
        try:
            step = _RECIPIENT_STEPS.get(event.kind)
            current = self.directives.get(event.text("directive_id"))
            if step is not None and current is not None:
                # The ledger owns its recipients: update in place instead of copying thousands of rows.
                recipient = step(current, event)
                current.recipients[recipient.site] = recipient
                directive = evolve(current, last_event=event.id)
            else:
                directive = apply(self.directives, event)
        except IllegalTransition as exc:
            self.skipped.append((event.id, exc.code))
            return None
        self.directives[directive.id] = directive
        return directive
