"""The signed relay header and the node origins a page may reconnect through (pure functions)."""

from __future__ import annotations

import pytest

from server.origins import PEER_MEMORY, OriginPolicy, parse_origin
from server.relay_auth import MAX_AGE, RelayedFrom, RelayForged, relay_key, sign, verify

KEY = relay_key(b"s" * 32)
CLIENT = RelayedFrom(node="node-2", address="203.0.113.7", scheme="https", host="cmd.example", at=1000.0)


def test_a_header_signed_with_the_shared_secret_names_the_client() -> None:
    assert verify([relay_key(b"old" * 11), KEY], sign(KEY, CLIENT), now=1000.0 + MAX_AGE) == CLIENT


@pytest.mark.parametrize("value", ["", "abc", "abc.def", sign(relay_key(b"other" * 7), CLIENT)])
def test_a_header_not_signed_with_the_secret_is_forged(value: str) -> None:
    with pytest.raises(RelayForged):
        verify([KEY], value, now=1000.0)


def test_a_changed_payload_breaks_the_signature() -> None:
    payload, mac = sign(KEY, CLIENT).split(".")
    other = sign(KEY, RelayedFrom(node="node-2", address="10.0.0.1", scheme="https", host="cmd.example", at=1000.0)).split(".")[0]
    with pytest.raises(RelayForged):
        verify([KEY], f"{other}.{mac}", now=1000.0)


def test_an_old_header_cannot_be_replayed() -> None:
    with pytest.raises(RelayForged, match="expired"):
        verify([KEY], sign(KEY, CLIENT), now=1000.0 + MAX_AGE + 1)


def test_the_key_is_not_the_secret() -> None:
    assert relay_key(b"s" * 32) != b"s" * 32


def test_node_origins_are_allowed_while_live_and_for_a_day_after() -> None:
    policy = OriginPolicy((), port=8080)
    own = parse_origin("http://a.example:8080")
    peer = parse_origin("http://b.example:8081")
    assert peer is not None and own is not None
    assert not policy.allows(peer, own)
    policy.set_peers(["http://b.example:8081", "not a url"], now=0.0)
    assert policy.allows(peer, own)
    policy.set_peers([], now=PEER_MEMORY)  # b stopped beating: a page it served may still come here
    assert policy.allows(peer, own)
    policy.set_peers([], now=PEER_MEMORY + 1)
    assert not policy.allows(peer, own)
