"""Roll-call scoring folded from events: answered, late, absent, no video, excused; the next step."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from server.rollcall.domain import Action, FoldError, fold, next_action, press_refusal


@dataclass
class Ev:
    kind: str
    data: dict[str, object] = field(default_factory=dict)
    actor: str = "server"


def started(mode: str = "sequence", sites: tuple[str, ...] = ("a", "b", "c"), window: float = 30, grace: float = 10) -> Ev:
    return Ev("started", {"id": "r1", "mode": mode, "window": window, "grace": grace, "sites": list(sites), "at": 100.0},
              actor="chief")


def test_a_stream_must_begin_with_started() -> None:
    with pytest.raises(FoldError):
        fold([Ev("called", {"sites": ["a"], "at": 1, "deadline": 2})])


def test_a_press_with_video_within_the_window_is_answered_with_its_response_time() -> None:
    rc = fold([started(), Ev("called", {"sites": ["a"], "at": 100.0, "deadline": 130.0}),
               Ev("pressed", {"site": "a", "at": 104.25, "video": True, "identity": "county01"})])
    assert rc.results["a"].outcome == "answered"
    assert rc.results["a"].response_time == 4.25


def test_a_press_after_the_window_is_late_and_a_press_without_video_is_no_video() -> None:
    rc = fold([started(), Ev("called", {"sites": ["a"], "at": 100.0, "deadline": 130.0}),
               Ev("window_ended", {"sites": ["a"], "at": 130.0}),
               Ev("called", {"sites": ["b"], "at": 130.0, "deadline": 160.0}),
               Ev("pressed", {"site": "a", "at": 140.0, "video": True}),
               Ev("pressed", {"site": "b", "at": 135.0, "video": False})])
    assert (rc.results["a"].outcome, rc.results["a"].response_time) == ("late", 40.0)
    assert (rc.results["b"].outcome, rc.results["b"].response_time) == ("no_video", None)


def test_no_video_can_be_put_right_by_a_press_with_video_but_an_answer_is_final() -> None:
    rc = fold([started(), Ev("called", {"sites": ["a"], "at": 100.0, "deadline": 130.0}),
               Ev("pressed", {"site": "a", "at": 101.0, "video": False}),
               Ev("pressed", {"site": "a", "at": 105.0, "video": True}),
               Ev("pressed", {"site": "a", "at": 106.0, "video": False})])
    assert (rc.results["a"].outcome, rc.results["a"].response_time, rc.results["a"].presses) == ("answered", 5.0, 3)
    assert press_refusal(rc, "a") == "already_settled"
    assert press_refusal(rc, "b") == "not_called_yet"
    assert press_refusal(rc, "zz") == "not_called"


def test_closing_makes_every_unanswered_site_absent_and_keeps_no_video_and_excused() -> None:
    rc = fold([started(), Ev("called", {"sites": ["a", "b", "c"], "at": 100.0, "deadline": 130.0}),
               Ev("pressed", {"site": "a", "at": 101.0, "video": False}),
               Ev("excused", {"site": "b", "reason": "flood duty"}, actor="chief"),
               Ev("closed", {"at": 140.0, "reason": "finished"})])
    assert [rc.results[s].outcome for s in "abc"] == ["no_video", "excused", "absent"]
    assert rc.results["b"].reason == "flood duty" and rc.results["b"].excused_by == "chief"
    assert rc.totals()["absent"] == 1 and not rc.open
    assert press_refusal(rc, "c") == "rollcall_closed"


def test_a_sequence_calls_one_site_at_a_time_and_moves_on_early_once_it_answered() -> None:
    rc = fold([started()])
    assert next_action(rc, 100.0) == Action("call", 100.0, ("a",))
    rc = fold([started(), Ev("called", {"sites": ["a"], "at": 100.0, "deadline": 130.0})])
    assert next_action(rc, 101.0) == Action("end_window", 130.0, ("a",))
    rc = fold([started(), Ev("called", {"sites": ["a"], "at": 100.0, "deadline": 130.0}),
               Ev("pressed", {"site": "a", "at": 103.0, "video": True})])
    assert next_action(rc, 103.0) == Action("end_window", 103.0, ("a",))


def test_all_at_once_calls_everyone_then_closes_after_the_grace_unless_all_settled() -> None:
    rc = fold([started("all")])
    assert next_action(rc, 100.0) == Action("call", 100.0, ("a", "b", "c"))
    events = [started("all"), Ev("called", {"sites": ["a", "b", "c"], "at": 100.0, "deadline": 130.0}),
              Ev("window_ended", {"sites": ["a", "b", "c"], "at": 130.0})]
    assert next_action(fold(events), 130.0) == Action("close", 140.0)
    answered = [Ev("pressed", {"site": s, "at": 101.0, "video": True}) for s in "abc"]
    assert next_action(fold(events[:2] + answered), 101.0) == Action("end_window", 101.0, ("a", "b", "c"))
    assert next_action(fold(events + [Ev("closed", {"at": 140.0})]), 150.0) is None


def test_an_excused_site_is_skipped_in_a_sequence() -> None:
    rc = fold([started(), Ev("excused", {"site": "a", "reason": "sick"})])
    assert next_action(rc, 100.0) == Action("call", 100.0, ("b",))
