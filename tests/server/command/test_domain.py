"""Property tests of the directive and incident-report state machines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.command.domain import STAGE_RANK, Event, IllegalTransition, Ledger, apply, overdue_now, pending
from server.command.reports import Board, apply_report

SITES = ["a", "b", "c"]
KINDS = ["updated", "cancelled", "delivered", "read", "acknowledged", "feedback", "overdue", "reminded"]


def _issued(cls: str = "mandatory", t: float = 0.0) -> Event:
    return Event("1-0", "issued", "mayor", {"directive_id": "d", "cls": cls, "title": "t", "recipients": SITES,
                                            "t": t, "ack_by": 100.0, "feedback_by": 200.0 if cls == "mandatory" else None})


steps = st.lists(st.tuples(
    st.sampled_from(KINDS), st.sampled_from([*SITES, "zz"]), st.sampled_from(["mayor", "chief"]),
    st.booleans(), st.sampled_from(["acknowledge", "feedback", "bogus"]),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(cls=st.sampled_from(["mandatory", "guidance", "reference"]), seq=steps)
def test_any_sequence_of_events_yields_a_consistent_directive(cls: str, seq: list[tuple[str, str, str, bool, str]]) -> None:
    ledger = Ledger()
    assert ledger.fold(_issued(cls)) is not None
    for n, (kind, site, actor, flag, obligation) in enumerate(seq, start=2):
        before = ledger.directives["d"]
        data = {"directive_id": "d", "site": site, "t": float(n), "reason": "r" if flag else "",
                "sites": [site], "text": "x", "final": flag, "obligation": obligation, "title": "new"}
        event = Event(f"{n}-0", kind, actor, data)
        try:
            after = apply(ledger.directives, event)
        except IllegalTransition as exc:
            assert exc.code and exc.message  # a clear error...
            assert ledger.fold(event) is None and ledger.directives["d"] is before  # ...and nothing changed
            continue
        old_recipients = dict(before.recipients)
        assert after.recipients.keys() == before.recipients.keys()
        for s, r in after.recipients.items():
            old = old_recipients[s]
            assert STAGE_RANK[r.stage] >= STAGE_RANK[old.stage]  # never backwards
            if r.stage == "done":
                assert r.done_at is not None
            if r.acknowledged_at is not None:
                assert r.read_at is not None and cls != "reference"
            if r.feedback:
                assert cls == "mandatory" and r.acknowledged_at is not None
            assert len(set(r.overdue)) == len(r.overdue)
            assert len(r.reminders) >= len(old.reminders)  # reminders are kept
        if before.status == "cancelled":
            assert after.status == "cancelled"
        ledger.fold(event)
        assert ledger.directives["d"].recipients == after.recipients  # the in-place fold agrees with apply


def test_illegal_transitions_are_refused_with_a_clear_error() -> None:
    ledger = Ledger()
    ledger.fold(_issued("reference"))
    with pytest.raises(IllegalTransition, match="reference directive is read"):
        apply(ledger.directives, Event("2-0", "acknowledged", "x", {"directive_id": "d", "site": "a", "t": 1.0}))
    with pytest.raises(IllegalTransition, match="not a recipient"):
        apply(ledger.directives, Event("2-0", "read", "x", {"directive_id": "d", "site": "zz", "t": 1.0}))
    with pytest.raises(IllegalTransition, match="only the issuer"):
        apply(ledger.directives, Event("2-0", "cancelled", "chief", {"directive_id": "d", "reason": "r", "t": 1.0}))
    with pytest.raises(IllegalTransition, match="at least one recipient"):
        apply({}, Event("1-0", "issued", "m", {"directive_id": "e", "cls": "mandatory", "title": "t", "recipients": [], "t": 0}))


def test_deadlines_mark_only_unmet_obligations() -> None:
    ledger = Ledger()
    ledger.fold(_issued("mandatory"))
    ledger.fold(Event("2-0", "acknowledged", "x", {"directive_id": "d", "site": "a", "t": 5.0}))
    d = ledger.directives["d"]
    assert sorted(overdue_now(d, 150.0)) == [("b", "acknowledge"), ("c", "acknowledge")]
    assert ("a", "feedback") in overdue_now(d, 250.0)
    assert not pending(d, d.recipients["a"], "acknowledge")


reports = st.lists(st.tuples(
    st.sampled_from(["initial", "followup", "close", "junk"]), st.sampled_from(["i1", "i2"]),
    st.sampled_from(["county", "town", "city"]), st.floats(0, 10_000), st.integers(-1, 5),
), max_size=30)


@settings(max_examples=300, deadline=None)
@given(seq=reports)
def test_any_sequence_of_reports_yields_a_consistent_board(seq: list[tuple[str, str, str, float, int]]) -> None:
    board = Board()
    for n, (what, incident, site, occurred, dead) in enumerate(seq, start=1):
        t = 5000.0 + n
        kind = "incident_closed" if what == "close" else "report_filed"
        data = {"incident_id": incident, "site": site, "t": t, "report_kind": what, "occurred_at": occurred,
                "place": "levee", "type": "flood", "summary": "s", "casualties": {"dead": dead},
                "chain": ["city"] if site == "county" else []}
        before = dict(board.incidents)
        late_before = dict(board.late_by_site)
        try:
            apply_report(board.incidents, Event(f"{n}-0", kind, "u", data))
        except IllegalTransition as exc:
            assert exc.code and exc.message
            assert board.fold(Event(f"{n}-0", kind, "u", data)) is None
            assert board.incidents == before and board.late_by_site == late_before
            continue
        incident = board.fold(Event(f"{n}-0", kind, "u", data))
        assert incident is not None
        assert incident.reports[0].kind == "initial"
        assert incident.late == (t - incident.occurred_at > 3600)
        assert all(r.kind == "followup" for r in incident.reports[1:])
    assert sum(board.late_by_site.values()) == sum(1 for i in board.incidents.values() if i.late)


def test_changes_of_different_recipients_go_together_and_a_whole_directive_change_waits() -> None:
    from server.command.service import _clashes, _take_up, _touches

    taken: set[tuple[str, ...]] = set()
    for site in ("a", "b", "c"):
        touches = _touches("acknowledged", {"directive_id": "d1", "site": site})
        assert not _clashes(touches, taken), site
        _take_up(touches, taken)
    assert _clashes(_touches("read", {"directive_id": "d1", "site": "b"}), taken), "the same recipient twice"
    assert _clashes(_touches("cancelled", {"directive_id": "d1"}), taken), "the directive as a whole after its recipients"
    assert _clashes(_touches("delivered", {"directive_id": "d1", "sites": ["x", "c"]}), taken)
    assert not _clashes(_touches("acknowledged", {"directive_id": "d2", "site": "a"}), taken)
    whole: set[tuple[str, ...]] = set()
    _take_up(_touches("updated", {"directive_id": "d3"}), whole)
    assert _clashes(_touches("acknowledged", {"directive_id": "d3", "site": "a"}), whole)
    assert not _clashes(_touches("reported", {"incident_id": "i1"}), whole)
