"""A recording session's manifest, folded from its events: tracks, segments with their hashes, how it ended.

The stream `recording:{id}` holds, in order: `started` (room, who, why, when), `track` (a publication
taken in: owner, site, kind, codec), `segment_started` (a file opened), `segment` (a file closed:
start and end times, frames, bytes, sha256), `track_ended`, `track_failed`, `reason_added` /
`reason_dropped` (what keeps it on), `stopped` (when, why, by whom) and, for a session its node did
not stop (killed), `interrupted` with the segments that were being written: those are lost; every
segment listed whole is whole. `purged` says when its files went (retention or disk budget).

Everything here is pure: no store, no files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from server.store import StoredEvent

SegmentState = Literal["writing", "whole", "lost"]

# Why a session stopped, as people read it.
STOP_REASONS: Final[dict[str, tuple[str, str]]] = {
    "chair": ("主持人停止", "stopped by the chair"),
    "policy_ended": ("策略结束", "no longer required"),
    "room_ended": ("会商结束", "the consultation ended"),
    "room_closed": ("会商室关闭", "the room closed"),
    "disk_full": ("磁盘空间不足", "the disk is full"),
    "shutdown": ("服务器停止", "the server stopped"),
    "interrupted": ("服务器中断", "the server was interrupted"),
    "failed": ("录制失败", "recording failed"),
}


class FoldError(Exception):
    """The stream does not start with `started`."""


@dataclass
class Segment:
    """One file of one track."""

    track: str
    index: int
    file: str
    start: float
    end: float | None = None
    frames: int = 0
    bytes: int = 0
    sha256: str | None = None
    state: SegmentState = "writing"
    width: int | None = None
    height: int | None = None
    recovered: bool = False  # whole on disk, listed only after the node that wrote it came back


@dataclass
class Track:
    """One publication recorded in the session."""

    id: str
    publication: str
    owner: str
    name: str
    site: str
    kind: str
    codec: str
    source: str
    added_at: float
    ended_at: float | None = None
    end_reason: str | None = None
    failed: str | None = None
    dropped: int = 0
    lost: int = 0
    segments: list[Segment] = field(default_factory=list)

    def segment(self, index: int) -> Segment | None:
        """The segment with this index, if any."""
        return next((s for s in self.segments if s.index == index), None)

    @property
    def whole(self) -> list[Segment]:
        """The segments written whole, in order."""
        return [s for s in self.segments if s.state == "whole"]


@dataclass
class Session:
    """A recording of one room from its start to its stop."""

    id: str
    room: str
    started_at: float
    by: str
    reasons: list[str]
    node: str
    segment_seconds: float
    tracks: dict[str, Track] = field(default_factory=dict)
    stopped_at: float | None = None
    stop_reason: str | None = None
    stopped_by: str | None = None
    interrupted_at: float | None = None
    purged_at: float | None = None
    purge_reason: str | None = None
    last_event_id: str | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def open(self) -> bool:
        """Still recording (or its node died and has not come back to say so)."""
        return self.stopped_at is None

    @property
    def ended_at(self) -> float:
        """When it stopped, else the end of its last segment, else its start."""
        if self.stopped_at is not None:
            return self.stopped_at
        ends = [s.end or s.start for t in self.tracks.values() for s in t.segments]
        return max(ends, default=self.started_at)

    @property
    def segments(self) -> list[Segment]:
        """Every segment of every track."""
        return [s for t in self.tracks.values() for s in t.segments]

    @property
    def bytes(self) -> int:
        """What its whole segments take on disk."""
        return sum(s.bytes for s in self.segments if s.state == "whole")

    @property
    def lost(self) -> list[Segment]:
        """The segments that were being written when the node died."""
        return [s for s in self.segments if s.state == "lost"]


def _str(data: dict[str, object], key: str, default: str = "") -> str:
    value = data.get(key, default)
    return value if isinstance(value, str) else default


def _num(data: dict[str, object], key: str, default: float = 0.0) -> float:
    value = data.get(key, default)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _opt_num(data: dict[str, object], key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def fold(events: Iterable[StoredEvent]) -> Session:
    """The session its events describe; FoldError when the first one is not `started`."""
    session: Session | None = None
    for event in events:
        if session is None:
            if event.kind != "started":
                raise FoldError(f"recording stream starts with {event.kind!r}, not 'started'")
            data = event.data
            reasons = data.get("reasons")
            session = Session(
                id=_str(data, "id"), room=_str(data, "room"), started_at=_num(data, "at", event.at), by=event.actor,
                reasons=[r for r in reasons if isinstance(r, str)] if isinstance(reasons, list) else [],
                node=_str(data, "node"), segment_seconds=_num(data, "segment_seconds", 300.0),
            )
            session.last_event_id = event.id
            continue
        try:
            apply(session, event)
        except (KeyError, TypeError, ValueError) as exc:
            session.skipped.append((event.id, f"{event.kind}: {exc!r}"))
        session.last_event_id = event.id
    if session is None:
        raise FoldError("empty recording stream")
    return session


def apply(session: Session, event: StoredEvent) -> None:
    """Fold one event after `started` into the session."""
    data, kind = event.data, event.kind
    track = session.tracks.get(_str(data, "track"))
    if kind == "track":
        track_id = _str(data, "track")
        if not track_id:
            raise ValueError("a track without an id")
        session.tracks[track_id] = Track(
            id=track_id, publication=_str(data, "publication", track_id), owner=_str(data, "owner"),
            name=_str(data, "name"), site=_str(data, "site"), kind=_str(data, "kind"), codec=_str(data, "codec"),
            source=_str(data, "source"), added_at=_num(data, "at", event.at),
        )
    elif kind == "segment_started" and track is not None:
        index = int(_num(data, "index", -1))
        if track.segment(index) is None:
            width, height = _opt_num(data, "width"), _opt_num(data, "height")
            track.segments.append(Segment(track=track.id, index=index, file=_str(data, "file"), start=_num(data, "start"),
                                          width=int(width) if width else None, height=int(height) if height else None))
    elif kind == "segment" and track is not None:
        index = int(_num(data, "index", -1))
        segment = track.segment(index)
        if segment is None:
            segment = Segment(track=track.id, index=index, file=_str(data, "file"), start=_num(data, "start"))
            track.segments.append(segment)
            track.segments.sort(key=lambda s: s.index)
        segment.file = _str(data, "file", segment.file)
        segment.start, segment.end = _num(data, "start", segment.start), _opt_num(data, "end")
        segment.frames, segment.bytes = int(_num(data, "frames")), int(_num(data, "bytes"))
        segment.sha256 = _str(data, "sha256") or None
        segment.state = "whole"
        segment.recovered = bool(data.get("recovered"))
        track.dropped = max(track.dropped, int(_num(data, "dropped")))
        track.lost = max(track.lost, int(_num(data, "lost")))
    elif kind == "segment_lost" and track is not None:
        segment = track.segment(int(_num(data, "index", -1)))
        if segment is not None and segment.state == "writing":
            segment.state = "lost"
            segment.bytes = int(_num(data, "bytes"))
    elif kind in ("track_ended", "track_failed") and track is not None:
        track.ended_at = track.ended_at or event.at
        if kind == "track_failed":
            track.failed = _str(data, "error") or "failed"
        else:
            track.end_reason = _str(data, "reason") or None
            track.dropped = max(track.dropped, int(_num(data, "dropped")))
            track.lost = max(track.lost, int(_num(data, "lost")))
    elif kind == "reason_added":
        reason = _str(data, "reason")
        if reason and reason not in session.reasons:
            session.reasons.append(reason)
    elif kind == "reason_dropped":
        reason = _str(data, "reason")
        session.reasons = [r for r in session.reasons if r != reason]
    elif kind == "interrupted":
        session.interrupted_at = _num(data, "at", event.at)
    elif kind == "stopped":
        session.stopped_at = _num(data, "at", event.at)
        session.stop_reason = _str(data, "reason") or None
        session.stopped_by = event.actor
        for t in session.tracks.values():
            t.ended_at = t.ended_at or session.stopped_at
    elif kind == "purged":
        session.purged_at = _num(data, "at", event.at)
        session.purge_reason = _str(data, "reason") or None


def segment_at(track: Track, t: float) -> Segment | None:
    """The whole segment of `track` that covers wall time `t`, if any."""
    for segment in track.whole:
        if segment.start <= t <= (segment.end if segment.end is not None else segment.start):
            return segment
    return None
