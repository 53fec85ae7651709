"""How a roll-call reads on pages and in exports: rows with names, labels, local times; JSON and CSV."""

from __future__ import annotations

from typing import Any

from server.config import Config
from server.rollcall.domain import LABELS, RollCall
from server.sites import SiteTree
from server.spreadsheet import csv_text
from server.times import format_time

CSV_COLUMNS = ["site", "name_zh", "name_en", "outcome", "outcome_zh", "response_time_s", "called_at", "answered_at",
               "snapshot_sha256", "excuse_reason", "escalated_to"]


def local(config: Config, when: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A clock time as local text in the city's time zone ("" for None); never raises."""
    return format_time(when, config.city.timezone, fmt)


def rows(config: Config, tree: SiteTree, rollcall: RollCall) -> list[dict[str, Any]]:
    """One row per called site, in calling order."""
    out = []
    for index, site_id in enumerate(rollcall.sites, start=1):
        r = rollcall.results[site_id]
        site = tree.find(site_id)
        escalated = tree.find(r.escalated_to) if r.escalated_to else None
        zh, en = LABELS[r.outcome]
        out.append({
            "n": index, "site": site_id,
            "name_zh": site.name_zh if site else site_id, "name_en": site.name_en if site else "",
            "outcome": r.outcome, "label_zh": zh, "label_en": en,
            "called_at": r.called_at, "deadline": r.deadline, "window_open": r.window_open,
            "answered_at": r.answered_at, "response_time": r.response_time, "identity": r.identity,
            "snapshot": r.snapshot, "snapshot_url": f"/rollcalls/snapshots/{r.snapshot}.jpg" if r.snapshot else None,
            "snapshot_error": r.snapshot_error, "snapshot_took": r.snapshot_took, "reason": r.reason, "excused_by": r.excused_by,
            "escalated_to": r.escalated_to,
            "escalated_name": escalated.name_zh if escalated else r.escalated_to,
            "called_local": local(config, r.called_at, "%H:%M:%S"), "answered_local": local(config, r.answered_at, "%H:%M:%S"),
        })
    return out


def as_json(config: Config, tree: SiteTree, rollcall: RollCall, now: float) -> dict[str, Any]:
    """The whole roll-call for the live board and the JSON export."""
    return {
        "id": rollcall.id, "title": rollcall.title, "mode": rollcall.mode, "window": rollcall.window,
        "grace": rollcall.grace, "caller": rollcall.caller, "caller_site": rollcall.caller_site, "room": rollcall.room,
        "schedule": rollcall.schedule, "started_at": rollcall.started_at, "started_local": local(config, rollcall.started_at),
        "closed_at": rollcall.closed_at, "closed_local": local(config, rollcall.closed_at), "close_reason": rollcall.close_reason,
        "open": rollcall.open, "current": rollcall.current, "resumed": rollcall.resumed, "now": now,
        "totals": rollcall.totals(), "sites": rows(config, tree, rollcall),
    }


def as_csv(config: Config, tree: SiteTree, rollcall: RollCall) -> str:
    """The results as CSV (UTF-8 with BOM so spreadsheet programs read the Chinese names; no cell is a formula)."""
    return csv_text(CSV_COLUMNS, ([
        row["site"], row["name_zh"], row["name_en"], row["outcome"], row["label_zh"],
        "" if row["response_time"] is None else f"{row['response_time']:.1f}",
        local(config, row["called_at"]), local(config, row["answered_at"]), row["snapshot"] or "",
        row["reason"] or "", row["escalated_to"] or "",
    ] for row in rows(config, tree, rollcall)))
