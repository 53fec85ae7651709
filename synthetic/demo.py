"""The demo: synthetic sites publishing test patterns into a room, optionally with a server of their own.

`python -m synthetic.demo` (what `make demo` runs) starts the server, waits until it is healthy, then
runs the synthetic sites against it until Ctrl-C or SIGTERM. `python -m synthetic` runs only the sites.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from server.auth import TokenService
from server.config import DEFAULT_CONFIG_PATH, Config, ConfigError, Site, load_config
from server.keys import SecretError, load_secret
from server.sites import SiteTree
from synthetic.client import ClientError, RoomClient
from synthetic.pattern import TestPatternTrack, ToneTrack, find_cjk_font

log = logging.getLogger("synthetic.demo")  # not "__main__" under `python -m synthetic.demo`

DEFAULT_ROOM = "consultation"
MAX_DEFAULT_SITES = 8  # each site costs one VP8 and one Opus encode; the demo machine has 2 cores
TOKEN_TTL = 12 * 3600
MAX_BACKOFF = 30.0
# A session that lasted this long was healthy: the next failure starts the backoff from scratch.
HEALTHY_SESSION_SECONDS = 30.0


@dataclass(frozen=True)
class MediaSettings:
    """Size and rate of every synthetic camera."""

    width: int = 320
    height: int = 180
    fps: float = 10.0


def default_sites(config: Config, room_id: str, limit: int = MAX_DEFAULT_SITES) -> list[Site]:
    """The room's counties and mobile platforms, at most `limit`, keeping a couple of mobiles in the mix."""
    room = config.room(room_id)
    ids = room.sites if room is not None and room.sites else tuple(s.id for s in config.sites)
    tree = SiteTree(config.sites)
    sites = [tree.get(site_id) for site_id in ids]
    counties = [s for s in sites if s.kind == "county"]
    mobiles = [s for s in sites if s.kind == "mobile"]
    # Without the reservation a city of eleven counties would show no mobile platform at all.
    mobile_slots = min(len(mobiles), max(1, limit // 4))
    chosen = counties[: limit - mobile_slots]
    chosen += mobiles[: limit - len(chosen)]
    return chosen


def select_sites(config: Config, room_id: str, site_ids: Sequence[str]) -> list[Site]:
    """The named sites (ConfigError-like ValueError for an unknown one), or the room's defaults if none."""
    if not site_ids:
        return default_sites(config, room_id)
    tree = SiteTree(config.sites)
    unknown = [s for s in site_ids if s not in tree]
    if unknown:
        raise ValueError(f"unknown site(s): {', '.join(unknown)}")
    return [tree.get(s) for s in site_ids]


def token_minter(config: Config, room_id: str, env: Mapping[str, str]) -> Callable[[Site], str]:
    """A function that signs a fresh publish-only device token for a site, with the server's secret."""
    service = TokenService(load_secret(Path(config.server.data_dir), env))

    def mint(site: Site) -> str:
        return service.issue_device_token(
            identity=site.id,
            site=site.id,
            room=room_id,
            grants=["publish"],
            ttl=TOKEN_TTL,
            name=site.name_zh or site.name_en,
        )

    return mint


class SyntheticSite:
    """One site's synthetic terminal: joins the room, publishes camera and microphone, rejoins after failures."""

    def __init__(
        self,
        base_url: str,
        room: str,
        site: Site,
        token: Callable[[], str],
        *,
        media: MediaSettings = MediaSettings(),
        cjk_font: Path | None = None,
        ssl: bool = True,
    ) -> None:
        self.base_url = base_url
        self.room = room
        self.site = site
        self.sessions = 0
        self._token = token
        self._media = media
        self._cjk_font = cjk_font
        self._ssl = ssl

    async def run(self, stop: asyncio.Event) -> None:
        """Stay in the room until `stop` is set, reconnecting with exponential backoff."""
        loop = asyncio.get_running_loop()
        delay = 1.0
        while not stop.is_set():
            started = loop.time()
            try:
                await _first(self._session(), stop.wait())
            except (ClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("site session failed site=%s error=%s", self.site.id, exc)
            if stop.is_set():
                return
            if loop.time() - started > HEALTHY_SESSION_SECONDS:
                delay = 1.0
            log.info("site reconnecting site=%s in_seconds=%.0f", self.site.id, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            delay = min(delay * 2, MAX_BACKOFF)

    async def _session(self) -> None:
        client = RoomClient(self.base_url, self.room, self._token(), name=self.site.id, ssl=self._ssl)
        camera = TestPatternTrack(
            self.site.name_en,
            self.site.name_zh,
            width=self._media.width,
            height=self._media.height,
            fps=self._media.fps,
            cjk_font=self._cjk_font,
        )
        microphone = ToneTrack()
        try:
            await client.connect()
            await client.publish({"camera": camera, "microphone": microphone})
            self.sessions += 1
            log.info("site publishing site=%s room=%s", self.site.id, self.room)
            # A failed publisher connection is as dead as a closed socket: aiortc cannot restart ICE.
            await client.wait_for(lambda c: not c.connected or c.publisher_state in ("failed", "closed"), None)
        finally:
            await client.close()
            camera.stop()
            microphone.stop()


async def _first(*aws: Awaitable[object]) -> None:
    """Wait until the first of `aws` finishes, then cancel and await the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_sites(
    base_url: str,
    room: str,
    sites: Sequence[Site],
    mint: Callable[[Site], str],
    stop: asyncio.Event,
    *,
    media: MediaSettings = MediaSettings(),
    ssl: bool = True,
) -> None:
    """Run one SyntheticSite per site until `stop` is set."""
    font = find_cjk_font()  # searched once, not once per site
    runners = [
        SyntheticSite(base_url, room, site, functools.partial(mint, site), media=media, cjk_font=font, ssl=ssl)
        for site in sites
    ]
    log.info("synthetic sites room=%s sites=%s", room, ",".join(s.id for s in sites))
    await asyncio.gather(*(runner.run(stop) for runner in runners))


class ServerProcess:
    """The platform server as a child process: started, checked healthy, stopped cleanly."""

    def __init__(self, config_path: Path, port: int, *, env: Mapping[str, str] | None = None) -> None:
        self.config_path = config_path
        self.port = port
        self._env = dict(os.environ if env is None else env)
        self._process: asyncio.subprocess.Process | None = None

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return None if self._process is None else self._process.returncode

    async def start(self) -> None:
        """Launch `python -m server run` on `port`."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", "run", "--config", str(self.config_path), "--port", str(self.port),
            env={**self._env, "PORT": str(self.port)},
        )  # fmt: skip

    async def wait_healthy(self, base_url: str, timeout: float = 30.0, *, ssl: bool = True) -> None:
        """Return once GET /healthz answers 200; RuntimeError if the process exits, TimeoutError if too slow."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self._process.returncode is not None:
                    raise RuntimeError(f"server exited with code {self._process.returncode} before it was healthy")
                try:
                    async with session.get(f"{base_url}/healthz", ssl=ssl, timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, OSError, TimeoutError):
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{base_url}/healthz not healthy within {timeout:.0f} s")
                # A child process gives no readiness signal but its port: poll it, briefly and boundedly.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await self._process.wait()

    async def wait(self) -> int:
        """Wait for the process to exit and return its code."""
        assert self._process is not None
        return await self._process.wait()

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(timeout):
                await process.wait()
        except TimeoutError:
            log.warning("server did not stop within %.0f s; killing it", timeout)
            process.kill()
            await process.wait()


def base_url_for(config: Config, port: int) -> tuple[str, bool]:
    """The URL a local client uses to reach this server, and whether to verify its TLS certificate."""
    host = config.server.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    tls = config.server.tls_cert is not None or config.server.self_signed_tls
    # A self-signed certificate cannot be verified; a real one must be.
    verify = not config.server.self_signed_tls
    return f"{'https' if tls else 'http'}://{host}:{port}", verify


def install_stop_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGINT or SIGTERM instead of raising inside whatever is running."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


QUIET_LIBRARIES = ("aioice", "aiortc")


def configure_logging(env: Mapping[str, str]) -> None:
    """Log to stderr at $LOG_LEVEL (default INFO); the synthetic sites' ICE and RTC chatter only at DEBUG,
    so the printed URL stays on screen."""
    level = env.get("LOG_LEVEL", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if level.upper() != "DEBUG":
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)


def parse_size(text: str) -> tuple[int, int]:
    """Parse "WIDTHxHEIGHT"."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 320x180, got {text!r}") from None
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"size must be even and at least 16x16, got {text!r}")
    return width, height


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `python -m synthetic` and `python -m synthetic.demo`."""
    parser.add_argument("--room", default=DEFAULT_ROOM, help=f"room id (default {DEFAULT_ROOM})")
    parser.add_argument(
        "--sites", default="", help="comma-separated site ids (default: the room's counties and mobiles, at most 8)"
    )
    parser.add_argument("--config", type=Path, help=f"configuration file (default: $CONFIG or {DEFAULT_CONFIG_PATH})")
    parser.add_argument("--size", type=parse_size, default=(320, 180), help="camera size WxH (default 320x180)")
    parser.add_argument("--fps", type=float, default=10.0, help="camera frame rate (default 10)")


def load_demo_config(path: Path | None, env: Mapping[str, str]) -> tuple[Path, Config]:
    """The configuration named by --config, else $CONFIG, else the default, with its path."""
    chosen = path or Path(env.get("CONFIG") or DEFAULT_CONFIG_PATH)
    return chosen, load_config(chosen, env=env)


async def run_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Start the server, wait until it is healthy, run the sites, and stop both on a signal."""
    config_path, config = load_demo_config(args.config, env)
    port = int(env.get("PORT") or config.server.port)
    base_url, verify = base_url_for(config, port)
    sites = select_sites(config, args.room, [s for s in args.sites.split(",") if s])
    media = MediaSettings(width=args.size[0], height=args.size[1], fps=args.fps)
    stop = asyncio.Event()
    install_stop_signals(stop)
    server = ServerProcess(config_path, port, env=env)
    await server.start()
    try:
        try:
            await _first(server.wait_healthy(base_url, ssl=verify), stop.wait())
        except (RuntimeError, TimeoutError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if stop.is_set():
            return 0
        # The server creates its secret on first start: read it only now that the server is up.
        mint = token_minter(config, args.room, env)
        print(f"\n  Open {base_url}/  (demo users: mayor / demomayor, see {config_path})")
        print(f"  {len(sites)} synthetic sites in room {args.room!r}; Ctrl-C stops everything.\n", flush=True)
        sites_task = asyncio.create_task(run_sites(base_url, args.room, sites, mint, stop, media=media, ssl=verify))
        await _first(stop.wait(), server.wait())
        server_ended_alone = not stop.is_set()
        stop.set()  # let the sites leave either way
        await sites_task
        if server_ended_alone:
            print(f"server exited with code {server.returncode}", file=sys.stderr)
            return 1
        return 0
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m synthetic.demo`."""
    parser = argparse.ArgumentParser(prog="python -m synthetic.demo", description=__doc__)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(os.environ)
    try:
        return asyncio.run(run_demo(args, os.environ))
    except (ValueError, ConfigError, SecretError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
