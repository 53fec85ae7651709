"""Per-site figures over a generated month, against figures worked out by hand."""

from __future__ import annotations

from server.command.domain import Directive, Feedback, Recipient
from server.command.reports import Incident
from server.command.review import Report
from server.duty.days import shift_day
from server.duty.domain import fold as fold_duty
from server.rollcall.domain import RollCall, RollCallId, SiteResult
from server.stats.figures import Records, by_day, by_site
from server.store import StoredEvent

BASE = 1_800_000_000.0  # the month's first midnight
DAY = 86_400.0
DAYS = [shift_day("2027-03-01", n) for n in range(30)]
SITES = ["a", "b", "c"]


def _deadline(day: str) -> float:
    return BASE + DAYS.index(day) * DAY + 17.5 * 3600


def _directives() -> list[Directive]:
    found = []
    for n in range(30):
        issued = BASE + n * DAY + 9 * 3600
        b_after = 300 if n % 2 == 0 else 900  # b is late (after 600 s) every odd day
        found.append(Directive(
            id=f"g{n}", cls="guidance", title="t", body="", issuer="mayor", issuer_site="office", issued_at=issued,
            issued_event="", ack_by=issued + 600, feedback_by=None, recipients={
                "a": Recipient("a", "done", acknowledged_at=issued + 60, read_at=issued + 60),
                "b": Recipient("b", "done", acknowledged_at=issued + b_after, read_at=issued + b_after),
                "c": Recipient("c", "sent")}))
        if n % 5 == 0:  # six mandatory ones, to a (answers with feedback) and b (on time, no feedback)
            fed = Feedback("e", issued + 120, "a", "done", None, True)
            found.append(Directive(
                id=f"m{n}", cls="mandatory", title="t", body="", issuer="mayor", issuer_site="office", issued_at=issued,
                issued_event="", ack_by=issued + 600, feedback_by=None, recipients={
                    "a": Recipient("a", "done", acknowledged_at=issued + 60, feedback=(fed,)),
                    "b": Recipient("b", "acknowledged", acknowledged_at=issued + 300)}))
    found.append(Directive(id="x", cls="guidance", title="t", body="", issuer="mayor", issuer_site="office",
                           issued_at=BASE - DAY, issued_event="", ack_by=None, feedback_by=None,
                           recipients={"a": Recipient("a")}))  # the month before: not counted
    return found


def _incident(n: int, site: str, late: bool, sent: bool = True) -> Incident:
    at = BASE + n * DAY + 3600
    report = Report(f"r{n}{site}", "initial", at, site, "s", {}, None, late, state="sent" if sent else "draft",
                    sent_at=at if sent else None)
    return Incident(f"i{n}{site}", site, ("office",), at - 600, "p", "flood", (report,), late=late)


def _rollcalls() -> list[RollCall]:
    found = []
    for n in range(30):
        started = BASE + n * DAY + 17.5 * 3600
        b = SiteResult("b", "answered", response_time=20.0) if n < 20 else SiteResult("b", "absent")
        found.append(RollCall(RollCallId(f"rc{n}"), "17:30", "all", 30, 15, SITES, "mayor", "office", None, None, started,
                              results={"a": SiteResult("a", "answered", response_time=10.0), "b": b,
                                       "c": SiteResult("c", "no_video")}, closed_at=started + 60))
    return found


def _duty_events() -> list[StoredEvent]:
    events = []
    for n, day in enumerate(DAYS):
        filings = [("a", _deadline(day) - 600)]
        if n < 15:
            filings.append(("b", _deadline(day) - 60))
        elif n < 25:
            filings.append(("b", _deadline(day) + 600))  # late; the last five days missing
        for site, at in filings:
            events.append(StoredEvent(id=f"{len(events) + 1}-0", stream="duty", at=at, actor="x", kind="report_filed", data={
                "site": site, "day": day, "officer": "o", "leader": "l", "all_well": True, "incidents": [], "text": "",
                "deadline": _deadline(day), "signed": True, "at": at}))
    return events


def _records() -> Records:
    book, refused = fold_duty(_duty_events())
    assert not refused
    incidents = [*(_incident(n, "a", False) for n in (1, 2, 3, 4)), _incident(5, "b", False), _incident(6, "b", True),
                 _incident(7, "c", False, sent=False)]
    return Records(_directives(), incidents, _rollcalls(), book, SITES, _deadline, BASE + 40 * DAY)


def test_each_sites_figures_of_a_month_are_the_ones_worked_out_by_hand() -> None:
    sites, total = by_site(_records(), SITES, DAYS, BASE, BASE + 30 * DAY)
    a, b, c = sites
    assert (a.received, a.on_time, a.ack_median, a.feedback_rate) == (36, 36, 60.0, 1.0)
    # b: 15 guidance at 300 s and 6 mandatory at 300 s on time, 15 guidance at 900 s late: median 300 s
    assert (b.received, b.on_time, b.ack_median, b.feedback_rate) == (36, 21, 300.0, 0.0)
    assert (c.received, c.on_time, c.ack_median, c.feedback_rate) == (30, 0, None, None)
    assert (a.incidents, a.late_rate, b.incidents, b.late_rate, c.incidents, c.late_rate) == (4, 0.0, 2, 0.5, 0, None)
    assert (a.attendance, a.response_median, b.present, b.called, b.response_median) == (1.0, 10.0, 20, 30, 20.0)
    assert (c.attendance, c.response_median) == (0.0, None)
    assert (a.duty_on_time, a.duty_due, b.duty_on_time, b.duty_late, b.duty_due, c.duty_compliance) == (30, 30, 15, 10, 30, 0.0)
    assert (total.received, total.on_time, total.called, total.present, total.duty_due) == (102, 57, 90, 50, 90)
    assert total.ack_median == (60.0 + 300.0) / 2  # 36 at 60 s, 21 at 300 s, 15 at 900 s: the 36th and 37th of 72
    assert (total.response_median, total.duty_on_time, total.late_rate) == (10.0, 45, 1 / 6)


def test_the_figures_day_by_day_add_up_to_the_month() -> None:
    records = _records()
    days = by_day(records, SITES, DAYS, [BASE + n * DAY for n in range(30)], BASE + 30 * DAY)
    _, total = by_site(records, SITES, DAYS, BASE, BASE + 30 * DAY)
    assert sum(d.received for d in days) == total.received and sum(d.duty_on_time for d in days) == total.duty_on_time
    assert (days[0].received, days[0].on_time, days[0].on_time_rate) == (5, 4, 0.8)  # a twice, b twice, c not
    assert (days[1].received, days[1].on_time) == (3, 1)  # b late on odd days
    assert [d.attendance for d in days[19:21]] == [2 / 3, 1 / 3]  # b absent from the 21st day
    assert days[29].duty_compliance == 1 / 3 and days[0].duty_compliance == 2 / 3
