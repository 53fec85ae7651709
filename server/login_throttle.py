"""Login throttling per address and per user name: a few failures free, then a lockout that doubles (pure, no I/O).

While a key is locked its attempts are refused before any password check, so guessing costs the
server nothing and gains the guesser one try per lockout. The user-name key is wiped by a
success; the address key is not (a valid account must not buy more guesses at others) but is
forgotten after a quiet spell, and allows more failures, since a whole office may share one address.
Keys are bounded (least recently used go first), so made-up user names cannot fill the memory.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

KeyKind = Literal["address", "user"]


@dataclass(frozen=True)
class ThrottleSettings:
    """How many failures are free per user name and per address, and how long lockouts last (seconds)."""

    user_free_failures: int = 5
    address_free_failures: int = 20
    first_lockout: float = 5.0
    max_lockout: float = 300.0
    forget_after: float = 3600.0
    max_keys: int = 10_000


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    """Counts failed logins per address and per user name; says how long to wait before the next try."""

    def __init__(self, clock: Callable[[], float], settings: ThrottleSettings | None = None) -> None:
        self._clock = clock
        self.settings = settings or ThrottleSettings()
        self._keys: OrderedDict[tuple[KeyKind, str], _Failures] = OrderedDict()

    def retry_after(self, address: str, username: str) -> int:
        """Whole seconds until this address may try this user name again; 0 when it may now."""
        now = self._clock()
        waits = [self._current(key, now).locked_until - now for key in self._pair(address, username)]
        return max(0, math.ceil(max(waits)))

    def failed(self, address: str, username: str) -> int:
        """Count a wrong password; return the lockout it starts (whole seconds, 0 for none)."""
        now = self._clock()
        for key in self._pair(address, username):
            record = self._current(key, now)
            record.count += 1
            record.last = now
            free = self.settings.user_free_failures if key[0] == "user" else self.settings.address_free_failures
            if record.count >= free:
                lockout = self.settings.first_lockout * 2.0 ** min(record.count - free, 32)
                record.locked_until = now + min(lockout, self.settings.max_lockout)
            self._store(key, record)
        return self.retry_after(address, username)

    def succeeded(self, address: str, username: str) -> None:
        """A correct password: the user name starts afresh (the address keeps its count)."""
        self._keys.pop(("user", _user_key(username)), None)

    def __len__(self) -> int:
        return len(self._keys)

    def _pair(self, address: str, username: str) -> tuple[tuple[KeyKind, str], tuple[KeyKind, str]]:
        return ("address", address), ("user", _user_key(username))

    def _current(self, key: tuple[KeyKind, str], now: float) -> _Failures:
        record = self._keys.get(key)
        if record is None or (now >= record.locked_until and now - record.last >= self.settings.forget_after):
            return _Failures()
        return record

    def _store(self, key: tuple[KeyKind, str], record: _Failures) -> None:
        self._keys[key] = record
        self._keys.move_to_end(key)
        while len(self._keys) > self.settings.max_keys:
            self._keys.popitem(last=False)


def _user_key(username: str) -> str:
    # User names are lower-case ids; folding and bounding means variants share one count.
    return username.strip().lower()[:64]
