"""Login throttling per address and user name, and argon2 verifications bounded to a small pool."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import argon2
import pytest

from server.auth import BadCredentials, PasswordsBusy, PasswordVerifier
from server.config import UserConfig
from server.login_throttle import LoginThrottle, ThrottleSettings
from tests.server.conftest import WebPlatform, WebPlatformFactory


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class GatedHasher(argon2.PasswordHasher):
    """Real argon2 (small parameters) that holds each verification at a gate and counts how many run at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0
        self.calls = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 - argon2's own name
        with self.lock:
            self.active += 1
            self.calls += 1
            self.most = max(self.most, self.active)
        try:
            self.gate.wait(timeout=30)
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture
async def web(make_web_platform: WebPlatformFactory) -> WebPlatform:
    return await make_web_platform()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


async def _login(http: aiohttp.ClientSession, web: WebPlatform, username: str, password: str) -> tuple[int, str, str | None]:
    form = {"username": username, "password": password, "next": "/"}
    async with http.post(web.url + "/login", data=form, allow_redirects=False) as response:
        return response.status, await response.text(), response.headers.get("Retry-After")


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# ------------------------------------------------------------ the throttle ---


def test_a_few_failures_are_free_then_the_lockout_doubles_up_to_a_cap() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, ThrottleSettings(user_free_failures=3, first_lockout=5, max_lockout=30))
    assert [throttle.failed("10.0.0.1", "mayor") for _ in range(2)] == [0, 0]
    assert throttle.failed("10.0.0.1", "mayor") == 5
    assert throttle.retry_after("10.0.0.2", "mayor") == 5  # per user name, from anywhere
    assert throttle.retry_after("10.0.0.1", "chief") == 0
    clock.now += 5
    assert throttle.retry_after("10.0.0.1", "mayor") == 0
    assert throttle.failed("10.0.0.1", "mayor") == 10
    clock.now += 10
    assert throttle.failed("10.0.0.1", "mayor") == 20
    clock.now += 20
    assert throttle.failed("10.0.0.1", "Mayor ") == 30  # capped; the name folded
    clock.now += 30
    assert throttle.failed("10.0.0.1", "mayor") == 30


def test_a_success_clears_the_user_name_but_not_the_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, ThrottleSettings(user_free_failures=3, address_free_failures=4))
    for name in ("a", "b", "c"):
        throttle.failed("10.0.0.1", name)
    throttle.succeeded("10.0.0.1", "a")
    assert throttle.retry_after("10.0.0.1", "d") == 0
    assert throttle.failed("10.0.0.1", "d") == 5  # the fourth failure from this address, whatever the names
    assert throttle.retry_after("10.0.0.9", "a") == 0


def test_quiet_keys_are_forgotten_and_the_table_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, ThrottleSettings(user_free_failures=2, forget_after=60, max_keys=100))
    throttle.failed("10.0.0.1", "mayor")
    clock.now += 61
    assert throttle.failed("10.0.0.1", "mayor") == 0  # the first failure was forgotten
    for i in range(1000):
        throttle.failed(f"10.1.{i // 256}.{i % 256}", f"made-up-{i}")
    assert len(throttle) <= 100


async def test_fifteen_wrong_passwords_then_the_right_one_is_refused_until_the_lockout_ends(
    web: WebPlatform, http: aiohttp.ClientSession
) -> None:
    statuses = [(await _login(http, web, "mayor", f"guess{i}"))[0] for i in range(15)]
    assert statuses[:4] == [401] * 4 and set(statuses[4:]) == {429}
    status, html, retry_after = await _login(http, web, "mayor", "demomayor")
    assert status == 429 and retry_after is not None and int(retry_after) > 0
    assert f"请 <b class=\"login-seconds\">{retry_after}</b> 秒后再试" in html
    assert f"Try again in <b class=\"login-seconds\">{retry_after}</b> s" in html
    web.clock.advance(int(retry_after))
    status, _, _ = await _login(http, web, "mayor", "demomayor")
    assert status == 303


async def test_guessing_at_many_users_from_one_address_is_throttled(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    free = ThrottleSettings().address_free_failures
    statuses = [(await _login(http, web, f"user{i}", "x"))[0] for i in range(free + 1)]
    assert statuses[-2:] == [429, 429]
    assert (await _login(http, web, "chief", "demochief"))[0] == 429  # the address waits, whoever it claims to be


async def test_a_locked_attempt_costs_no_password_check(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    hasher = GatedHasher()
    hasher.gate.set()
    web.services.passwords = PasswordVerifier(hasher)
    for i in range(12):
        await _login(http, web, "mayor", f"guess{i}")
    assert hasher.calls == ThrottleSettings().user_free_failures


# ------------------------------------------------------------ the argon2 pool ---


async def test_parallel_logins_queue_for_two_password_checks(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    hasher = GatedHasher()
    passwords = PasswordVerifier(hasher, workers=2)
    web.services.passwords = passwords
    logins = [asyncio.ensure_future(_login(http, web, name, "demo" + name)) for name in
              ("mayor", "chief", "wall", "county01", "county02", "county03", "county04", "county05")]
    await _until(lambda: passwords.pending == 8 and hasher.active == 2)
    assert hasher.most == 2  # six wait their turn instead of each taking argon2's memory now
    hasher.gate.set()
    results = await asyncio.gather(*logins)
    assert [status for status, _, _ in results] == [303] * 8
    assert hasher.calls == 8 and hasher.most == 2


async def test_a_full_queue_is_refused_at_once() -> None:
    hasher = GatedHasher()
    passwords = PasswordVerifier(hasher, workers=1, max_queued=1)
    user = UserConfig(username="mayor", password_hash=hasher.hash("right"), display_name="M", site="office", grants=("publish",))
    first = asyncio.ensure_future(passwords.check(user, "right"))
    second = asyncio.ensure_future(passwords.check(user, "wrong"))
    await _until(lambda: passwords.pending == 2 and hasher.active == 1)
    with pytest.raises(PasswordsBusy):
        await passwords.check(user, "right")
    hasher.gate.set()
    await first
    with pytest.raises(BadCredentials):
        await second
    assert passwords.pending == 0


async def test_a_busy_server_says_so_on_the_login_page(web: WebPlatform, http: aiohttp.ClientSession) -> None:
    hasher = GatedHasher()
    web.services.passwords = PasswordVerifier(hasher, workers=1, max_queued=0)
    first = asyncio.ensure_future(_login(http, web, "mayor", "demomayor"))
    await _until(lambda: hasher.active == 1)
    status, html, retry_after = await _login(http, web, "chief", "demochief")
    assert status == 503 and retry_after is not None
    assert "登录人数过多" in html and "Too many sign-ins at once" in html
    hasher.gate.set()
    assert (await first)[0] == 303
