"""A session as the player reads it: its tracks and segments placed on one clock, and the room's
events of that time (directives, roll-call calls and answers, spotlight, mutes, the chair's actions)
read back from their own logs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from server.command.domain import Directive
from server.recording.domain import STOP_REASONS, Session
from server.rollcall.domain import RollCall
from server.store import StoredEvent

# Control-log actions shown on the timeline, as people read them.
CONTROL_TEXT: Final[dict[str, tuple[str, str]]] = {
    "spotlight": ("主画面", "Spotlight"), "mute": ("静音", "Muted"), "unmute": ("解除静音", "Unmuted"),
    "mute_all": ("全体静音", "Muted everyone"), "grant_floor": ("准许发言", "Floor granted"),
    "self_unmuted": ("自行开麦", "Unmuted self"), "remove": ("移出", "Removed"), "lock": ("锁定会商室", "Room locked"),
    "unlock": ("解锁会商室", "Room unlocked"), "hand_over": ("移交主持", "Chair handed over"),
    "layout": ("切换布局", "Layout"), "end": ("结束会商", "Consultation ended"),
    "recording_started": ("开始录制", "Recording started"), "recording_stopped": ("停止录制", "Recording stopped"),
}
OUTCOMES: Final[dict[str, tuple[str, str]]] = {
    "answered": ("应答", "answered"), "late": ("迟到应答", "answered late"), "no_video": ("无视频", "no video"),
    "absent": ("缺席", "absent"), "excused": ("请假", "excused"),
}


def manifest(session: Session, names: dict[str, dict[str, str | None]]) -> dict[str, Any]:
    """The session as JSON: times in epoch seconds, every segment with its URL, hash and state."""
    tracks = []
    for track in session.tracks.values():
        site = names.get(track.site, {})
        tracks.append({
            "id": track.id, "publication": track.publication, "owner": track.owner, "name": track.name, "site": track.site,
            "site_zh": site.get("name_zh") or track.site, "site_en": site.get("name_en") or "", "kind": track.kind,
            "codec": track.codec, "source": track.source, "added_at": track.added_at, "ended_at": track.ended_at,
            "failed": track.failed, "dropped": track.dropped, "lost": track.lost,
            "download": f"/recordings/{session.id}/tracks/{track.id}/download",
            "segments": [{
                "index": s.index, "file": s.file, "state": s.state, "start": s.start, "end": s.end, "frames": s.frames,
                "bytes": s.bytes, "sha256": s.sha256, "width": s.width, "height": s.height, "recovered": s.recovered,
                "url": f"/recordings/{session.id}/files/{track.id}/{s.file}" if s.state == "whole" else None,
            } for s in track.segments],
        })
    zh, en = STOP_REASONS.get(session.stop_reason or "", (session.stop_reason or "", session.stop_reason or ""))
    return {
        "id": session.id, "room": session.room, "started_at": session.started_at, "ended_at": session.ended_at,
        "open": session.open, "by": session.by, "reasons": session.reasons, "node": session.node,
        "segment_seconds": session.segment_seconds, "stopped_at": session.stopped_at, "stop_reason": session.stop_reason,
        "stop_reason_zh": zh, "stop_reason_en": en, "interrupted_at": session.interrupted_at,
        "purged_at": session.purged_at, "purge_reason": session.purge_reason, "bytes": session.bytes,
        "lost": [{"track": s.track, "index": s.index, "file": s.file, "start": s.start, "bytes": s.bytes} for s in session.lost],
        "tracks": tracks,
    }


def _site_name(names: dict[str, dict[str, str | None]], site: str) -> str:
    return str((names.get(site) or {}).get("name_zh") or site)


def control_items(events: Iterable[StoredEvent], start: float, end: float) -> list[dict[str, Any]]:
    """The chair's actions (spotlight, mutes, floor, lock, end, layout) in [start, end]."""
    items = []
    for event in events:
        if not start <= event.at <= end or event.kind not in CONTROL_TEXT:
            continue
        zh, en = CONTROL_TEXT[event.kind]
        target = event.data.get("target")
        kind = event.data.get("kind")
        detail = " ".join(str(x) for x in (target, kind) if isinstance(x, str) and x)
        if event.kind == "spotlight" and not target:
            zh, en = "取消主画面", "Spotlight cleared"
        if event.kind == "layout":
            detail = str(event.data.get("layout") or "")
        items.append({"at": event.at, "kind": "control", "action": event.kind, "actor": event.actor, "zh": zh, "en": en,
                      "detail": detail, "id": event.id})
    return items


def rollcall_items(rollcalls: Iterable[RollCall], room: str, start: float, end: float,
                   names: dict[str, dict[str, str | None]]) -> list[dict[str, Any]]:
    """Each site called, and how it answered, by the roll-calls held in the room."""
    items = []
    for rc in rollcalls:
        if rc.room != room:
            continue
        if start <= rc.started_at <= end:
            items.append({"at": rc.started_at, "kind": "rollcall", "action": "started", "zh": f"开始点名：{rc.title}",
                          "en": "Roll-call started", "detail": rc.id, "link": f"/rollcalls/{rc.id}/report"})
        for site, result in rc.results.items():
            if result.called_at is not None and start <= result.called_at <= end:
                items.append({"at": result.called_at, "kind": "rollcall", "action": "called", "site": site,
                              "zh": f"点名：{_site_name(names, site)}", "en": f"Called {site}", "detail": rc.title,
                              "link": f"/rollcalls/{rc.id}/report"})
            if result.answered_at is not None and start <= result.answered_at <= end:
                zh, en = OUTCOMES.get(result.outcome, (result.outcome, result.outcome))
                items.append({"at": result.answered_at, "kind": "rollcall", "action": result.outcome, "site": site,
                              "zh": f"{_site_name(names, site)} {zh}", "en": f"{site} {en}", "detail": rc.title,
                              "link": f"/rollcalls/{rc.id}/report"})
    return items


def directive_items(directives: Iterable[Directive], start: float, end: float,
                    names: dict[str, dict[str, str | None]]) -> list[dict[str, Any]]:
    """The directives issued while the session recorded."""
    return [{"at": d.issued_at, "kind": "directive", "action": d.cls, "zh": f"指令：{d.title}", "en": "Directive issued",
             "detail": f"{_site_name(names, d.issuer_site)} · {d.issuer}", "link": f"/command/directives/{d.id}"}
            for d in directives if start <= d.issued_at <= end]
