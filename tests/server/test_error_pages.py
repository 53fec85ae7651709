"""What a person is told for each refused page: the code read from the plain answer, or the status's."""

from __future__ import annotations

import pytest

from server.error_pages import EXPLANATIONS, explain


@pytest.mark.parametrize(("status", "text", "code"), [
    (401, "token_expired: token expired\n", "token_expired"),
    (401, "invalid_token: token rejected: DecodeError\n", "invalid_token"),
    (403, "wrong_room: 'x' is not allowed in room 'y'\n", "wrong_room"),
    (404, "unknown_room: no room 'atlantis'\n", "not_found"),
    (404, "Not Found", "not_found"),
    (403, "some_new_code: nobody explained this yet\n", "forbidden"),
    (500, "<html>boom</html>", "internal"),
    (429, "", "rate_limited"),
])
def test_each_refusal_has_an_explanation_in_both_languages(status: int, text: str, code: str) -> None:
    found, detail, why = explain(status, text)
    assert found == code
    assert why is EXPLANATIONS[code]
    assert all(part[0] and part[1] for part in (why.title, why.why, why.next))
    assert "DecodeError" not in why.why[1] + why.next[1]


def test_an_expired_link_says_to_ask_the_duty_officer_for_a_new_one() -> None:
    _, _, why = explain(401, "token_expired: token expired")
    assert "值班员" in why.next[0] and "duty officer" in why.next[1]
