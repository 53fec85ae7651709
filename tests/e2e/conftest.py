"""Fixtures for browser tests: a real server process, a real Chromium, signed device tokens."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
START_TIMEOUT = 30.0
ROOM = "consultation"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Server:
    """A running server: its base URL and the secret its tokens are signed with."""

    def __init__(self, base_url: str, secret: str, log_path: Path | None = None) -> None:
        self.base_url = base_url
        self.secret = secret
        self.log_path = log_path  # the server process's log (None for E2E_BASE_URL)
        self.process: subprocess.Popen[bytes] | None = None  # ours to kill (None for E2E_BASE_URL)

    def log(self) -> str:
        """What the server process has logged so far ("" when it is not ours)."""
        return self.log_path.read_text(errors="replace") if self.log_path is not None else ""

    def device_token(self, identity: str, site: str, *, grants: tuple[str, ...] = ("publish", "subscribe"),
                     room: str = ROOM, name: str | None = None) -> str:
        """Sign a device token the way `python -m server token` does."""
        from server.auth import TokenService

        service = TokenService(self.secret.encode())
        return service.issue_device_token(identity=identity, site=site, room=room, grants=grants, ttl=3600, name=name)

    def room_url(self, token: str, page: str = "rooms", room: str = ROOM) -> str:
        return f"{self.base_url}/{page}/{room}?token={token}"


def wait_until(page: object, script: str, arg: object = None, *, timeout_ms: int, interval_ms: int = 100) -> object:
    """Evaluate `script` in the page until it gives a truthy value, and return that value.

    For asynchronous predicates (getStats): Playwright's wait_for_function takes the Promise an
    async function returns for a truthy value and returns at once, so they are polled from here.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        value = page.evaluate(script, arg)  # type: ignore[attr-defined]
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not true within {timeout_ms} ms: {script[:120]}")
        page.wait_for_timeout(interval_ms)  # type: ignore[attr-defined]


@contextmanager
def running_server(data_dir: Path, *, port: int | None = None, secret: str | None = None,
                   config: str = "config/demo.toml", **env: str) -> Iterator[Server]:
    """`python -m server run` (on a free port unless given, with `config`) with `env` added to the
    environment, until the block ends; the same `data_dir`, port and secret make a restart of the same server."""
    secret = secret or os.environ.get("E2E_SERVER_SECRET") or secrets.token_hex(32)
    port = port or _free_port()
    log_path = data_dir / "server.log"
    environment = {**os.environ, "DATA_DIR": str(data_dir), "SERVER_SECRET": secret, "PYTHONUNBUFFERED": "1", **env}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "run", "--config", config, "--port", str(port)],
            cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(base):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not come up (exit {proc.poll()}):\n{log_path.read_text()[-4000:]}")
            time.sleep(0.1)  # process start-up: nothing to wait on but the port
        running = Server(base, secret, log_path)
        running.process = proc
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if os.environ.get("E2E_SHOW_SERVER_LOG"):
            print(log_path.read_text()[-20000:])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Start `python -m server run` on a free port; E2E_BASE_URL points the tests at a running one instead."""
    if os.environ.get("E2E_BASE_URL"):
        yield Server(os.environ["E2E_BASE_URL"].rstrip("/"), os.environ.get("E2E_SERVER_SECRET") or "")
        return
    with running_server(tmp_path_factory.mktemp("data")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One Chromium with fake camera and microphone; tests open a context per participant."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        kwargs: dict[str, object] = {"args": CHROMIUM_ARGS, "headless": True}
        if CHROMIUM.exists():
            kwargs["executable_path"] = str(CHROMIUM)
        b = pw.chromium.launch(**kwargs)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def open_page(browser: object) -> Iterator[Callable[..., object]]:
    """Open a page in a fresh context (own cookies), closed after the test; console errors are kept."""
    contexts = []

    def _open(url: str | None = None, **context_args: object) -> object:
        ctx = browser.new_context(**context_args)  # type: ignore[attr-defined]
        contexts.append(ctx)
        page = ctx.new_page()
        page.console_messages_seen = []  # type: ignore[attr-defined]
        page.on("console", lambda m: page.console_messages_seen.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: page.console_messages_seen.append(f"pageerror: {e}"))
        if url:
            page.goto(url)
        return page

    yield _open
    for ctx in contexts:
        ctx.close()
