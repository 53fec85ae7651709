"""Roll-call state folded from its events, and what must happen next: pure, no I/O, no clock.

A roll-call's stream holds, in order: `started`, then `called` / `pressed` / `snapshot` /
`snapshot_failed` / `excused` / `window_ended` / `resumed` / `escalated` events, and finally `closed`.
Every time in an event's data is wall-clock seconds from the injectable clock, so the fold gives
the same answer in tests (manual time) and in production.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, NewType, Protocol

RollCallId = NewType("RollCallId", str)
Mode = Literal["sequence", "all"]
Outcome = Literal["waiting", "calling", "overdue", "answered", "late", "no_video", "absent", "excused"]

OUTCOMES: tuple[Outcome, ...] = ("answered", "late", "no_video", "absent", "excused", "calling", "overdue", "waiting")
SETTLED: frozenset[str] = frozenset({"answered", "late", "excused"})
LABELS: dict[str, tuple[str, str]] = {
    "waiting": ("待点名", "Waiting"),
    "calling": ("点名中", "Calling"),
    "overdue": ("超时未到", "Overdue"),
    "answered": ("已到", "Answered"),
    "late": ("迟到", "Late"),
    "no_video": ("无视频", "No video"),
    "absent": ("缺席", "Absent"),
    "excused": ("请假", "Excused"),
}


class Event(Protocol):
    """What the fold needs of a stored event."""

    @property
    def kind(self) -> str:
        """The event's kind."""
        ...

    @property
    def actor(self) -> str:
        """Who caused it."""
        ...

    @property
    def data(self) -> dict[str, object]:
        """Its payload."""
        ...


@dataclass
class SiteResult:
    """One called site's state and evidence."""

    site: str
    outcome: Outcome = "waiting"
    called_at: float | None = None
    deadline: float | None = None
    window_open: bool = False
    answered_at: float | None = None
    response_time: float | None = None
    identity: str | None = None
    presses: int = 0
    snapshot: str | None = None
    snapshot_error: str | None = None
    snapshot_took: float | None = None
    reason: str | None = None
    excused_by: str | None = None
    escalated_to: str | None = None

    @property
    def settled(self) -> bool:
        """Answered, late or excused: nothing more can change it."""
        return self.outcome in SETTLED


@dataclass
class RollCall:
    """A roll-call as its events describe it."""

    id: RollCallId
    title: str
    mode: Mode
    window: float
    grace: float
    sites: list[str]
    caller: str
    caller_site: str
    room: str | None
    schedule: str | None
    started_at: float
    results: dict[str, SiteResult] = field(default_factory=dict)
    closed_at: float | None = None
    close_reason: str | None = None
    last_window_end: float | None = None
    resumed: list[float] = field(default_factory=list)
    last_event_id: str | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (event id, why) of events the fold could not use

    @property
    def open(self) -> bool:
        """Not yet closed."""
        return self.closed_at is None

    @property
    def current(self) -> list[str]:
        """Sites whose answer window is open now."""
        return [s for s in self.sites if self.results[s].window_open]

    def totals(self) -> dict[str, int]:
        """How many sites have each outcome (every outcome listed, zeros included)."""
        counts: dict[str, int] = {o: 0 for o in OUTCOMES}
        for result in self.results.values():
            counts[result.outcome] += 1
        return counts


class FoldError(Exception):
    """A stream that does not describe a roll-call (no `started` first), or an event that cannot be folded."""


def _float(data: dict[str, object], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FoldError(f"{key} must be a number, not {value!r}")
    return float(value)


def _text(data: dict[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise FoldError(f"{key} must be text, not {value!r}")
    return value


def _sites(data: dict[str, object], key: str = "sites") -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise FoldError(f"{key} must be a list of site ids")
    return list(value)


def _results(rollcall: RollCall, sites: Iterable[str]) -> list[SiteResult]:
    """The results of `sites`, every one looked up before any is changed: a bad event changes nothing."""
    sites = list(sites)
    missing = [s for s in sites if s not in rollcall.results]
    if missing:
        raise FoldError(f"sites not called by roll-call {rollcall.id}: {', '.join(missing[:5])}")
    return [rollcall.results[s] for s in sites]


def start(event: Event) -> RollCall:
    """The roll-call a `started` event opens."""
    if event.kind != "started":
        raise FoldError(f"a roll-call stream must begin with started, not {event.kind!r}")
    d = event.data
    sites = _sites(d)
    return RollCall(
        id=RollCallId(_text(d, "id")),
        title=str(d.get("title", "")),
        mode="all" if d.get("mode") == "all" else "sequence",
        window=_float(d, "window"),
        grace=_float(d, "grace"),
        sites=sites,
        caller=event.actor,
        caller_site=str(d.get("caller_site", "")),
        room=str(d["room"]) if d.get("room") else None,
        schedule=str(d["schedule"]) if d.get("schedule") else None,
        started_at=_float(d, "at"),
        results={s: SiteResult(site=s) for s in sites},
    )


def judge_press(result: SiteResult, at: float, video: bool) -> tuple[Outcome, float | None]:
    """The outcome of a press at `at`: answered within the window, late after it, no video without video."""
    assert result.called_at is not None and result.deadline is not None
    if not video:
        return "no_video", None
    response = round(at - result.called_at, 3)
    return ("answered" if at <= result.deadline else "late"), response


def press_refusal(rollcall: RollCall, site: str) -> str | None:
    """Why a press by `site` cannot count (a wire error code), or None if it can."""
    result = rollcall.results.get(site)
    if result is None:
        return "not_called"
    if not rollcall.open:
        return "rollcall_closed"
    if result.called_at is None:
        return "not_called_yet"
    if result.settled:
        return "already_settled"
    return None


def _called(rollcall: RollCall, d: dict[str, object], actor: str) -> None:
    at, deadline, results = _float(d, "at"), _float(d, "deadline"), _results(rollcall, _sites(d))
    for r in results:
        if r.outcome == "waiting":
            r.outcome = "calling"
        r.called_at, r.deadline, r.window_open = at, deadline, True


def _window_ended(rollcall: RollCall, d: dict[str, object], actor: str) -> None:
    at, results = _float(d, "at"), _results(rollcall, _sites(d))
    rollcall.last_window_end = at
    for r in results:
        r.window_open = False
        if r.outcome == "calling":
            r.outcome = "overdue"


def _pressed(rollcall: RollCall, d: dict[str, object], actor: str) -> None:
    (r,) = _results(rollcall, [_text(d, "site")])
    at = _float(d, "at")
    r.presses += 1
    if r.settled or r.called_at is None or r.deadline is None or not rollcall.open:
        return
    outcome, response = judge_press(r, at, bool(d.get("video")))
    if outcome == "no_video" and r.outcome == "no_video":
        return  # keep the first press's time
    r.outcome, r.response_time = outcome, response
    r.answered_at, r.identity = at, str(d.get("identity", ""))


def _snapshot(rollcall: RollCall, d: dict[str, object], actor: str) -> None:
    (r,) = _results(rollcall, [_text(d, "site")])
    r.snapshot, r.snapshot_error = _text(d, "file"), None
    took = d.get("took")
    r.snapshot_took = float(took) if isinstance(took, (int, float)) else None


def _snapshot_failed(rollcall: RollCall, d: dict[str, object], actor: str) -> None:
    (r,) = _results(rollcall, [_text(d, "site")])
    if r.snapshot is None:
        r.snapshot_error = str(d.get("error", ""))


def _excused(rollcall: RollCall, d: dict[str, object], actor: str) -> None:
    (r,) = _results(rollcall, [_text(d, "site")])
    if r.outcome not in ("answered", "late"):
        r.outcome, r.reason, r.excused_by = "excused", str(d.get("reason", "")), actor


def _escalated(rollcall: RollCall, d: dict[str, object], actor: str) -> None:
    parents = d.get("parents", {})
    if not isinstance(parents, dict):
        raise FoldError("parents must be a mapping of site to parent site")
    for r, parent in zip(_results(rollcall, [str(s) for s in parents]), parents.values()):
        r.escalated_to = str(parent)


def _resumed(rollcall: RollCall, d: dict[str, object], actor: str) -> None:
    rollcall.resumed.append(_float(d, "at"))


def _closed(rollcall: RollCall, d: dict[str, object], actor: str) -> None:
    rollcall.closed_at, rollcall.close_reason = _float(d, "at"), str(d.get("reason", ""))
    for r in rollcall.results.values():
        r.window_open = False
        if r.outcome in ("waiting", "calling", "overdue"):
            r.outcome = "absent"


# Each step checks every field it reads before it changes anything, so a bad event leaves the roll-call as it was.
_STEPS: Final[dict[str, Callable[[RollCall, dict[str, object], str], None]]] = {
    "called": _called, "window_ended": _window_ended, "pressed": _pressed, "snapshot": _snapshot,
    "snapshot_failed": _snapshot_failed, "excused": _excused, "escalated": _escalated, "resumed": _resumed,
    "closed": _closed,
}


def apply(rollcall: RollCall, event: Event, event_id: str | None = None) -> None:
    """Fold one more event into the roll-call; FoldError (and no change) for one that cannot be folded."""
    step = _STEPS.get(event.kind)
    if step is None:
        raise FoldError(f"unknown roll-call event {event.kind!r}")
    if not isinstance(event.data, dict):
        raise FoldError("event data must be a mapping")
    step(rollcall, event.data, event.actor)
    if event_id is not None:
        rollcall.last_event_id = event_id


def fold(events: Iterable[Event]) -> RollCall:
    """The roll-call described by its whole stream, oldest event first; events it cannot use are listed in `skipped`."""
    iterator = iter(events)
    first = next(iterator, None)
    if first is None:
        raise FoldError("empty roll-call stream")
    rollcall = start(first)
    rollcall.last_event_id = getattr(first, "id", None)
    for event in iterator:
        event_id = getattr(event, "id", None)
        try:
            apply(rollcall, event, event_id)
        except FoldError as exc:
            rollcall.skipped.append((str(event_id), str(exc)))
            rollcall.last_event_id = event_id  # skipped, but read: the log goes on after it
    return rollcall


@dataclass(frozen=True)
class Action:
    """What the service must do next: `call` sites, end their `window`, or `close`, at `when`."""

    kind: Literal["call", "end_window", "close"]
    when: float
    sites: tuple[str, ...] = ()


def next_action(rollcall: RollCall, now: float) -> Action | None:
    """The next step of an open roll-call (due now or later); None once it is closed."""
    if not rollcall.open:
        return None
    results = [rollcall.results[s] for s in rollcall.sites]
    in_window = [r for r in results if r.window_open]
    if in_window:
        if all(r.settled for r in in_window):
            return Action("end_window", now, tuple(r.site for r in in_window))
        deadline = min(r.deadline or now for r in in_window)
        due = tuple(r.site for r in in_window if (r.deadline or now) <= deadline)
        return Action("end_window", deadline, due)
    waiting = [r.site for r in results if r.outcome == "waiting" and r.called_at is None]
    if waiting:
        return Action("call", now, tuple(waiting[:1] if rollcall.mode == "sequence" else waiting))
    if all(r.settled for r in results):
        return Action("close", now)
    return Action("close", (rollcall.last_window_end or now) + rollcall.grace)
