"""How the duty book reads on pages: who may see which site, rows as JSON, local times. No I/O."""

from __future__ import annotations

import zoneinfo
from typing import Any

from server.auth import Identity
from server.duty.board import BoardRow
from server.duty.domain import STATUS_NAMES, DutyReport
from server.sites import SiteTree
from server.times import format_time


def sees_board(identity: Identity) -> bool:
    """The city's view: everyone who may issue directives or moderate."""
    return identity.can("issue") or identity.can("moderate")


def sees_site(identity: Identity, site: str, tree: SiteTree) -> bool:
    """A site's own people, the sites above it, and the city's view."""
    return sees_board(identity) or identity.site == site or any(a.id == identity.site for a in tree.ancestors(site))


def clock(when: float | None, tz: zoneinfo.ZoneInfo, fmt: str = "%H:%M") -> str:
    """A time as local wall-clock text ("" for None)."""
    return format_time(when, tz, fmt)


def report_info(report: DutyReport | None, tz: zoneinfo.ZoneInfo) -> dict[str, Any] | None:
    """The report in force as plain data."""
    if report is None:
        return None
    latest = report.latest
    return {"filed_at": report.filed_at, "filed_local": clock(report.filed_at, tz), "late": report.late,
            "versions": len(report.versions), "officer": latest.officer, "leader": latest.leader,
            "all_well": latest.all_well, "incidents": list(latest.incidents), "text": latest.text,
            "updated_local": clock(latest.at, tz), "by": latest.actor, "state": report.state,
            "went_up_local": clock(report.went_up_at, tz), "signed_by": report.signed_by, "signed_version": report.signed_version,
            "comments": [{"at_local": clock(n.at, tz), "by": n.actor, "text": n.text} for n in report.comments]}


def row_info(row: BoardRow, tree: SiteTree, tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    """One board row as plain data, with names and labels in Chinese and English."""
    site = tree.find(row.site)
    parent = tree.find(row.escalated_to) if row.escalated_to else None
    zh, en = STATUS_NAMES[row.status]
    return {
        "site": row.site, "name_zh": site.name_zh if site else row.site, "name_en": site.name_en if site else "",
        "status": row.status, "label_zh": zh, "label_en": en, "report": report_info(row.report, tz),
        "officer": row.roster.officer if row.roster else "", "leader": row.roster.leader if row.roster else "",
        "reminders": [{"at_local": clock(n.at, tz), "by": n.actor, "note": n.text} for n in row.reminders],
        "escalated_to": row.escalated_to, "escalated_name": f"{parent.name_zh} {parent.name_en}" if parent else "",
    }
