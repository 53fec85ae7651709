"""审核签发: one report's review on its way up, as pure steps. No I/O.

A report (an incident's initial report or a follow-up) is filed in one of three ways; the server
decides which from who files it and the settings (`[command] sign_off`, `urgent_types`):
- signed at once: the site's duty leader (grant `sign`) files it, or no sign-off is configured;
- a draft: the duty officer's report waits for the leader, who edits it, returns it with a comment
  (the officer fixes it: a new version, a draft again) or signs it off: only then does it go up;
- urgent (即报): it goes up at once and the leader reviews it after: an edit is seen above as a new
  version, and the leader's signature closes the review.
Every version is kept, and every step (who, when, what, the comment), for the report's page.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

from server.command.domain import Event, IllegalTransition

ReportState = Literal["draft", "returned", "sent"]
REVIEW_KINDS: Final[frozenset[str]] = frozenset({"report_revised", "report_returned", "report_signed"})
STATE_NAMES: Final[dict[str, tuple[str, str]]] = {
    "draft": ("待审核", "Awaiting review"),
    "returned": ("已退回", "Returned"),
    "sent": ("已报送", "Sent up"),
}
STEP_NAMES: Final[dict[str, tuple[str, str]]] = {
    "drafted": ("起草", "Drafted"),
    "filed": ("报送", "Filed and sent up"),
    "urgent": ("即报", "Sent up at once (urgent)"),
    "revised": ("修改", "Revised"),
    "returned": ("退回", "Returned"),
    "signed": ("签发", "Signed off"),
    "forwarded": ("转报", "Forwarded"),
}


@dataclass(frozen=True)
class Version:
    """One version of a report's text."""

    event_id: str
    at: float
    actor: str
    summary: str
    casualties: dict[str, int]
    photo: str | None


@dataclass(frozen=True)
class Step:
    """One step a report or an incident took: who, when, which action, the comment, the version it left."""

    event_id: str
    at: float
    actor: str
    site: str
    action: str
    comment: str = ""
    version: int = 0
    to: str = ""  # the site a forward went to


@dataclass(frozen=True)
class Report:
    """One report (the initial one or a follow-up): the version in force, every version, its review."""

    event_id: str
    kind: str
    at: float
    actor: str
    summary: str
    casualties: dict[str, int]
    photo: str | None
    late: bool
    state: ReportState = "sent"
    urgent: bool = False
    reviewed: bool = True  # signed off by the duty leader (before it went up, or after for an urgent one)
    sent_at: float | None = None
    signed_by: str = ""
    versions: tuple[Version, ...] = ()
    steps: tuple[Step, ...] = ()

    @property
    def sent(self) -> bool:
        """Whether the report has gone up."""
        return self.state == "sent"


def _flag(event: Event, key: str, default: bool) -> bool:
    value = event.data.get(key, default)
    if not isinstance(value, bool):
        raise IllegalTransition("bad_event", f"{key} must be true or false")
    return value


def filed(event: Event, kind: str, version: Version) -> Report:
    """A report as filed: a draft, urgent (up at once, reviewed after) or signed (up at once)."""
    draft, urgent, signed = _flag(event, "draft", False), _flag(event, "urgent", False), _flag(event, "signed", True)
    action = "drafted" if draft else "filed" if signed or not urgent else "urgent"
    return Report(
        event_id=event.id, kind=kind, at=event.t, actor=event.actor, summary=version.summary,
        casualties=version.casualties, photo=version.photo, late=False,
        state="draft" if draft else "sent", urgent=urgent, reviewed=not draft and signed,
        sent_at=None if draft else event.t, signed_by=event.actor if not draft and signed else "",
        versions=(version,), steps=(Step(event.id, event.t, event.actor, event.text("site"), action, version=1),),
    )


def revised(report: Report, event: Event, version: Version) -> Report:
    """A new version: of a draft or a returned report (a draft again), or of an urgent one not yet reviewed."""
    if report.sent and (report.reviewed or not report.urgent):
        raise IllegalTransition("already_sent", "a report that went up is not changed: file a follow-up")
    versions = (*report.versions, version)
    step = Step(event.id, event.t, event.actor, event.text("site"), "revised", event.text("comment").strip(), len(versions))
    return replace(report, summary=version.summary, casualties=version.casualties, photo=version.photo,
                   state="sent" if report.sent else "draft", versions=versions, steps=(*report.steps, step))


def returned(report: Report, event: Event) -> Report:
    """The leader sends a draft back with a comment."""
    if report.state != "draft":
        raise IllegalTransition("not_a_draft", f"the report is {report.state}, not a draft to review")
    comment = event.text("comment").strip()
    if not comment:
        raise IllegalTransition("comment_required", "returning a report needs a comment")
    step = Step(event.id, event.t, event.actor, event.text("site"), "returned", comment, len(report.versions))
    return replace(report, state="returned", steps=(*report.steps, step))


def signed(report: Report, event: Event) -> Report:
    """The leader signs a draft off (it goes up now) or an urgent report after it went up."""
    urgent_after = report.sent and report.urgent and not report.reviewed
    if report.state != "draft" and not urgent_after:
        raise IllegalTransition("not_a_draft", f"the report is {report.state}, not a draft to sign")
    step = Step(event.id, event.t, event.actor, event.text("site"), "signed", event.text("comment").strip(), len(report.versions))
    return replace(report, state="sent", reviewed=True, signed_by=event.actor,
                   sent_at=report.sent_at if urgent_after else event.t, steps=(*report.steps, step))
