"""Property tests of the duty book: any sequence of events folds to a consistent book, refusals change nothing."""

from __future__ import annotations

import copy
import zoneinfo

from hypothesis import given, settings
from hypothesis import strategies as st

from server.duty.days import day_of, deadline_of, next_before_deadline, next_deadline, week_of
from server.duty.board import board, totals
from server.duty.domain import DutyBook, DutyRefused, apply, check, fold
from server.store import StoredEvent

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
SITES = ["a", "b", "c"]
DAYS = ["2027-01-15", "2027-01-16", "2027-02-30"]
DEADLINE = deadline_of("2027-01-15", "17:30", SHANGHAI)


def _event(n: int, kind: str, data: dict[str, object], actor: str = "duty-a") -> StoredEvent:
    return StoredEvent(id=f"{n}-0", stream="duty", at=float(n), actor=actor, kind=kind, data=data)


events = st.lists(st.tuples(
    st.sampled_from(["roster_set", "handover", "report_filed", "report_filed", "report_signed", "report_returned",
                     "deadline_passed", "reminded", "bogus"]),
    st.sampled_from([*SITES, ""]),
    st.sampled_from(DAYS),
    st.booleans(),
    st.lists(st.sampled_from(["i1", "i2", ""]), max_size=3),
    st.sampled_from(["", "堤防渗水", "x" * 5000]),
    st.floats(min_value=DEADLINE - 7200, max_value=DEADLINE + 7200),
), max_size=40)


def _data(site: str, day: str, flag: bool, incidents: list[str], text: str, at: float, signed: bool = True) -> dict[str, object]:
    return {"site": site, "day": day, "officer": "张三", "leader": "李四" if site != "c" else "", "all_well": flag,
            "incidents": incidents, "text": text, "at": at, "deadline": DEADLINE, "note": text, "comment": text,
            "signed": signed,
            "missing": [s for s in SITES if s != site], "escalated": {site: "office"} if site else {}}


@settings(max_examples=300, deadline=None)
@given(seq=events)
def test_any_sequence_of_events_folds_to_a_consistent_book(seq: list[tuple[str, str, str, bool, list[str], str, float]]) -> None:
    book = DutyBook()
    for n, (kind, site, day, flag, incidents, text, at) in enumerate(seq, start=1):
        event = _event(n, kind, _data(site, day, flag, incidents, text, at, signed=n % 3 != 0))
        before = copy.deepcopy(book)
        try:
            check(book, event)
        except DutyRefused as exc:
            assert exc.code and exc.message  # a clear error...
            assert book == before  # ...and checking changed nothing
            try:
                apply(book, event)
                raise AssertionError("apply took what check refused")
            except DutyRefused:
                assert book == before  # a refused event changes nothing
            continue
        assert book == before
        apply(book, event)
        for (site_id, day_id), report in book.reports.items():
            old = before.reports.get((site_id, day_id))
            if old is not None:
                assert report.versions[: len(old.versions)] == old.versions  # every version kept
                if old.went_up_at is not None:  # once up: when, and late or not, for good
                    assert (report.went_up_at, report.late) == (old.went_up_at, old.late)
            assert not (report.latest.all_well and report.latest.incidents)
            assert (report.went_up_at is None) == (report.signed_version == 0)
            assert report.signed_version <= len(report.versions)
            if report.state == "signed":
                assert report.signed_version == len(report.versions)
            assert len(report.comments) >= (report.state == "returned")
        assert before.deadlines.items() <= book.deadlines.items()  # a recorded deadline never changes
        for key in book.reminders:
            # no new reminder to a site whose report went up (a draft awaiting sign-off has not)
            assert key in before.reminders or key not in before.reports or before.reports[key].went_up_at is None


def test_a_filing_after_the_deadline_is_late_for_good_and_an_amendment_keeps_both_versions() -> None:
    book, skipped = fold([
        _event(1, "report_filed", _data("a", "2027-01-15", True, [], "", DEADLINE + 60)),
        _event(2, "report_filed", _data("a", "2027-01-15", False, ["i1"], "补报", DEADLINE - 60)),
    ])
    assert skipped == []
    report = book.reports[("a", "2027-01-15")]
    assert report.late and len(report.versions) == 2 and report.latest.incidents == ("i1",)


def test_a_filing_after_the_recorded_deadline_is_late_even_if_its_own_clock_says_otherwise() -> None:
    book, _ = fold([
        _event(1, "deadline_passed", {"day": "2027-01-15", "at": DEADLINE, "deadline": DEADLINE, "missing": ["a"],
                                      "escalated": {"a": "office"}}),
        _event(2, "report_filed", _data("a", "2027-01-15", True, [], "", DEADLINE - 5)),
    ])
    assert book.reports[("a", "2027-01-15")].late


def test_the_deadline_is_recorded_once_and_a_second_record_is_refused() -> None:
    passed = {"day": "2027-01-15", "at": DEADLINE, "deadline": DEADLINE, "missing": ["a"], "escalated": {}}
    book, skipped = fold([_event(1, "deadline_passed", passed), _event(2, "deadline_passed", {**passed, "missing": []})])
    assert book.deadlines["2027-01-15"].missing == ("a",)
    assert [why.split(":")[0] for _, why in skipped] == ["deadline_recorded"]


def test_the_board_says_filed_late_missing_and_pending_per_site() -> None:
    book, _ = fold([
        _event(1, "report_filed", _data("a", "2027-01-15", True, [], "", DEADLINE - 600)),
        _event(2, "report_filed", _data("b", "2027-01-15", True, [], "", DEADLINE + 600)),
    ])
    rows = board(book, ["a", "b", "c"], "2027-01-15", DEADLINE - 1, DEADLINE)
    assert [r.status for r in rows] == ["filed", "late", "pending"]
    rows = board(book, ["a", "b", "c"], "2027-01-15", DEADLINE, DEADLINE)
    assert [r.status for r in rows] == ["filed", "late", "missing"]
    assert totals(rows) == {"filed": 1, "late": 1, "missing": 1, "draft": 0, "pending": 0}


def test_a_report_must_say_all_well_or_what_happened() -> None:
    book = DutyBook()
    for data, code in ((_data("a", "2027-01-15", False, [], "", DEADLINE), "nothing_reported"),
                       (_data("a", "2027-01-15", True, ["i1"], "", DEADLINE), "all_well_with_incidents"),
                       (_data("a", "2027-02-30", True, [], "", DEADLINE), "bad_day"),
                       ({**_data("a", "2027-01-15", True, [], "", DEADLINE), "officer": " "}, "missing_field")):
        try:
            check(book, _event(1, "report_filed", data))
            raise AssertionError(f"accepted {data}")
        except DutyRefused as exc:
            assert exc.code == code


def test_days_and_deadlines_in_the_city_time_zone() -> None:
    assert day_of(DEADLINE, SHANGHAI) == "2027-01-15"
    assert next_deadline(DEADLINE - 1, "17:30", SHANGHAI) == ("2027-01-15", DEADLINE)
    assert next_deadline(DEADLINE, "17:30", SHANGHAI) == ("2027-01-16", DEADLINE + 86400)
    assert week_of("2027-01-15") == [f"2027-01-{d}" for d in range(11, 18)]  # a Friday's week, Monday first


def test_a_draft_goes_up_only_when_the_leader_signs_it_and_its_lateness_is_that_of_the_signature() -> None:
    draft = {**_data("a", "2027-01-15", True, [], "", DEADLINE - 2400), "signed": False}
    book, skipped = fold([
        _event(1, "report_filed", draft),
        _event(2, "report_returned", {"site": "a", "day": "2027-01-15", "at": DEADLINE - 1800, "comment": "补充转移人数"}, "leader-a"),
    ])
    assert skipped == [] and book.reports[("a", "2027-01-15")].state == "returned"
    assert book.status("a", "2027-01-15", DEADLINE - 1, DEADLINE) == "draft"
    assert book.status("a", "2027-01-15", DEADLINE, DEADLINE) == "missing"  # a draft at the deadline has not gone up
    book, skipped = fold([
        _event(3, "report_signed", {"site": "a", "day": "2027-01-15", "at": DEADLINE - 1000}, "leader-a"),  # nothing to sign
        _event(4, "report_filed", {**draft, "text": "转移群众120人", "at": DEADLINE - 900}),
        _event(5, "report_signed", {"site": "a", "day": "2027-01-15", "at": DEADLINE - 600}, "leader-a"),
    ], book)
    assert [why.split(":")[0] for _, why in skipped] == ["not_a_draft"]
    report = book.reports[("a", "2027-01-15")]
    assert (report.state, report.signed_by, report.signed_version, report.late) == ("signed", "leader-a", 2, False)
    assert report.went_up_at == DEADLINE - 600 and report.comments[0].text == "补充转移人数"
    # an amendment after it went up is a new draft; the report stays up, on time
    book, _ = fold([_event(6, "report_filed", {**draft, "at": DEADLINE + 600})], book)
    assert book.reports[("a", "2027-01-15")].state == "draft"
    assert book.status("a", "2027-01-15", DEADLINE + 700, DEADLINE) == "filed"


def test_the_reminder_before_the_deadline_is_todays_until_it_passes_then_tomorrows() -> None:
    assert next_before_deadline(DEADLINE - 3600, "17:30", 1800, SHANGHAI) == ("2027-01-15", DEADLINE - 1800)
    assert next_before_deadline(DEADLINE - 1800, "17:30", 1800, SHANGHAI) == ("2027-01-16", DEADLINE + 86400 - 1800)
    assert next_before_deadline(DEADLINE + 60, "00:10", 1800, SHANGHAI) == ("2027-01-16", deadline_of("2027-01-16", "00:10", SHANGHAI) - 1800)
