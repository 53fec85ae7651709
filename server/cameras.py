"""Sites' IP cameras in rooms: configured or added by an administrator, pulled while someone watches.

A camera (`CameraConfig`) belongs to a site and names the rooms it may appear in (none: every
room). While a room hosted on this node has a subscriber, each of its cameras is pulled over RTSP
(media/rtsp.py) into it as a participant of its own, `camera:<id>`, of the camera's site, role
"camera", whose one video publication is the camera's H.264, forwarded as it came. When the room
has had no subscriber for `LINGER` seconds the pull stops. The camera's state (connecting, live,
failed with the reason, unsupported) is its participant's `status` on the roster, and on `/metrics`.

Cameras added at run time are events of the `cameras` stream (`added`, `removed`), folded over the
configured ones by every node and followed live. A password never enters the log in clear: it is
sealed (Fernet) with a key derived from the server's signing secret; configured cameras read theirs
from the environment. URLs shown, logged or recorded carry no credentials (`redact_url`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec
from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from media.rtsp import CameraFeed, CameraSource, redact_url
from server.auth import Identity
from server.config import CameraConfig, camera_problems
from server.errors import NotFound, RequestError
from server.metrics import REGISTRY
from server.participant import Participant
from server.room import Room
from server.services import Services
from server.skipped import SkippedRecords
from server.store import StoredEvent

logger = logging.getLogger(__name__)

CAMERA_STREAM = "cameras"
LINGER = 10.0  # seconds a room without subscribers keeps its cameras (a page reloading)
CHECK_INTERVAL = 1.0
STATES = ("idle", "connecting", "live", "failed", "unsupported")


@dataclass(frozen=True)
class Camera:
    """A camera in force: its settings and its password (in memory only)."""

    config: CameraConfig
    password: str = ""
    added_by: str = ""  # "" for a configured camera

    def pull_url(self) -> str:
        """The URL the demuxer opens, credentials included: never shown, never logged."""
        if not self.config.username:
            return self.config.url
        parts = urlsplit(self.config.url)
        auth = quote(self.config.username, safe="") + (":" + quote(self.password, safe="") if self.password else "")
        return urlunsplit((parts.scheme, f"{auth}@{parts.netloc}", parts.path, parts.query, parts.fragment))

    def applies_to(self, room_id: str) -> bool:
        """Whether the camera appears in the room."""
        return not self.config.rooms or room_id in self.config.rooms


@dataclass
class _Pull:
    """One camera pulled into one room."""

    feed: CameraFeed
    participant: Participant
    room: Room
    idle_since: float | None = None


class Cameras:
    """The cameras in force on this node and the pulls running for them."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.cameras: dict[str, Camera] = {}
        self.pulls: dict[tuple[str, str], _Pull] = {}  # (camera id, room id)
        self.skipped = SkippedRecords(CAMERA_STREAM)
        self.failures = 0  # transitions to failed, all cameras
        self.linger = LINGER
        self._sealer = MultiFernet([Fernet(base64.urlsafe_b64encode(k)) for k in services.tokens.derived_keys("camera-passwords")])

    # --- what is in force --------------------------------------------------------------------------

    async def start(self) -> None:
        """The configured cameras, then the log's additions and removals; follow it live."""
        for config in self.services.config.cameras:
            password = os.environ.get(config.password_env, "") if config.password_env else ""
            if config.password_env and not password:
                logger.warning("camera password not set camera=%s env=%s", config.id, config.password_env)
            self.cameras[config.id] = Camera(config, password)
        last = None
        after: str | None = None
        while True:
            events = await self.services.store.read_events(CAMERA_STREAM, after=after, limit=1000)
            self._followed(events)
            if events:
                last = after = events[-1].id
            if len(events) < 1000:
                break
        self.services.tail.follow(CAMERA_STREAM, last, self._followed)

    def _followed(self, events: list[StoredEvent]) -> None:
        for event in events:
            if event.kind == "added":
                try:
                    config = msgspec.convert(event.data.get("camera"), type=CameraConfig)
                    sealed = str(event.data.get("password_sealed", ""))
                    password = self._sealer.decrypt(sealed.encode()).decode() if sealed else ""
                except (msgspec.ValidationError, InvalidToken, UnicodeDecodeError) as exc:
                    self.skipped.add(event.id, "bad_camera", type(exc).__name__)
                    continue
                self.cameras[config.id] = Camera(config, password, event.actor)
            elif event.kind == "removed" and isinstance(event.data.get("id"), str):
                self.cameras.pop(str(event.data["id"]), None)
            else:
                self.skipped.add(event.id, "bad_event", f"kind={event.kind!r}")

    async def add(self, config: CameraConfig, password: str, *, actor: str) -> None:
        """Record a camera an administrator added (checked like the configuration); its password sealed."""
        problems = camera_problems(config, {s.id for s in self.services.config.sites}, {r.id for r in self.services.config.rooms})
        if problems:
            raise RequestError("invalid_camera", "; ".join(problems))
        if config.id in self.cameras:
            raise RequestError("camera_exists", f"a camera {config.id!r} exists: remove it first")
        sealed = self._sealer.encrypt(password.encode()).decode() if password else ""
        data = {"camera": msgspec.to_builtins(config), "password_sealed": sealed}
        event = await self.services.store.append_event(CAMERA_STREAM, actor=actor, kind="added", data=data)
        self._followed([event])
        logger.info("camera added camera=%s site=%s url=%s by=%s", config.id, config.site, redact_url(config.url), actor)

    async def remove(self, camera_id: str, *, actor: str) -> None:
        """Record a camera's removal; its pulls stop."""
        if camera_id not in self.cameras:
            raise NotFound("unknown_camera", f"no camera {camera_id!r}")
        event = await self.services.store.append_event(CAMERA_STREAM, actor=actor, kind="removed", data={"id": camera_id})
        self._followed([event])
        logger.info("camera removed camera=%s by=%s", camera_id, actor)
        await self.reconcile()

    # --- pulling on demand ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Start and stop pulls as rooms gain and lose subscribers, every CHECK_INTERVAL."""
        while True:
            try:
                await self.reconcile()
            except Exception:  # noqa: BLE001 - one bad pass must not end camera management
                logger.exception("camera reconcile failed")
            await asyncio.sleep(CHECK_INTERVAL)

    async def reconcile(self, now: float | None = None) -> None:
        """One pass: pull each camera into each hosted room that is watched; stop the others."""
        now = time.monotonic() if now is None else now
        rooms = self.services.rooms.rooms
        ending: list[tuple[str, str]] = []
        for key, pull in list(self.pulls.items()):
            camera_id, room_id = key
            camera = self.cameras.get(camera_id)
            gone = camera is None or rooms.get(room_id) is not pull.room or not camera.applies_to(room_id)
            if not gone and _watched(pull.room):
                pull.idle_since = None
                continue
            if pull.idle_since is None and not gone:
                pull.idle_since = now
            if gone or (pull.idle_since is not None and now - pull.idle_since >= self.linger):
                ending.append(key)
        # Together: a camera still connecting lets go of its thread only when its open times out.
        await asyncio.gather(*(self._stop(key) for key in ending))
        for room in list(rooms.values()):
            if not _watched(room):
                continue
            for camera in list(self.cameras.values()):
                if camera.applies_to(room.id) and (camera.config.id, room.id) not in self.pulls:
                    self._start(camera, room)

    def _start(self, camera: Camera, room: Room) -> None:
        config = camera.config
        identity = Identity(
            identity=f"camera:{config.id}", site=config.site, name=config.name_zh + (f" {config.name_en}" if config.name_en else ""),
            grants=frozenset({"publish"}), rooms=frozenset({room.id}), kind="device", expires_at=0, token_id="",
        )
        participant = Participant(identity=identity, role="camera", status="connecting")
        feed = CameraFeed(
            config.id, CameraSource(camera.pull_url(), config.transport), owner=identity.identity,
            counters=self.services.counters, on_state=lambda f: self._changed(f, participant, room),
        )
        self.pulls[(config.id, room.id)] = _Pull(feed, participant, room)
        room.add_camera(participant, feed.publication)
        feed.start()
        logger.info("camera pulled camera=%s room=%s url=%s", config.id, room.id, feed.url)

    def _changed(self, feed: CameraFeed, participant: Participant, room: Room) -> None:
        if feed.state == "failed":
            self.failures += 1
        participant.status = f"{feed.state}: {feed.reason}" if feed.reason else feed.state
        participant.state = "connected" if feed.state == "live" else "reconnecting"
        room.camera_changed(participant)

    async def _stop(self, key: tuple[str, str]) -> None:
        pull = self.pulls.pop(key)
        await pull.room.remove_camera(pull.participant)  # off the roster at once
        await pull.feed.close()
        logger.info("camera released camera=%s room=%s", *key)

    async def close(self) -> None:
        """Stop every pull (together, as above)."""
        await asyncio.gather(*(self._stop(key) for key in list(self.pulls)))

    def rows(self) -> list[dict[str, object]]:
        """Every camera in force with its pulls' states, for the page and the API (no credentials)."""
        rows: list[dict[str, object]] = []
        for camera in self.cameras.values():
            config = camera.config
            pulls = [(room_id, p.feed) for (camera_id, room_id), p in self.pulls.items() if camera_id == config.id]
            rows.append({
                "id": config.id, "site": config.site, "name_zh": config.name_zh, "name_en": config.name_en,
                "url": redact_url(config.url), "transport": config.transport, "rooms": list(config.rooms),
                "configured": not camera.added_by, "added_by": camera.added_by,
                "pulls": [{"room": r, "state": f.state, "reason": f.reason, "codec": f.codec, "reconnects": f.reconnects,
                           "frames": f.frames} for r, f in pulls],
            })
        return rows


def _watched(room: Room) -> bool:
    """Whether anyone but a camera receives the room's media (a page's subscriber connection, a player)."""
    return any(p.subscriber is not None for p in room.participants.values() if p.role != "camera")


class CameraCollector(Collector):
    """`/metrics`: each pull's state, and the reconnects and failures of all cameras."""

    def __init__(self, cameras: Cameras) -> None:
        self._cameras = cameras

    def collect(self) -> Iterator[Metric]:
        """Yield the current figures."""
        cameras = self._cameras
        yield GaugeMetricFamily("cp_cameras", "Cameras in force (configured and added)", value=len(cameras.cameras))
        state = GaugeMetricFamily("cp_camera_state", "A camera pulled into a room: 1 for its current state", labels=["camera", "room", "state"])
        for (camera_id, room_id), pull in sorted(cameras.pulls.items()):
            for name in STATES:
                state.add_metric([camera_id, room_id, name], 1.0 if pull.feed.state == name else 0.0)
        yield state
        yield CounterMetricFamily("cp_camera_reconnects", "Camera reconnect attempts (current pulls)",
                                  value=sum(p.feed.reconnects for p in cameras.pulls.values()))
        yield CounterMetricFamily("cp_camera_failures", "Times a camera went to failed", value=cameras.failures)


CAMERAS = web.AppKey("cameras", Cameras)


def install(app: web.Application, services: Services) -> None:
    """Cameras on this node: the log folded at start (after the store starts), pulls managed while
    the app runs, their states on `/metrics` (after metrics.add_routes)."""
    cameras = Cameras(services)
    app[CAMERAS] = cameras
    services.skipped.append(cameras.skipped)
    app[REGISTRY].register(CameraCollector(cameras))

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await cameras.start()
        task = services.background.spawn(cameras.run(), name="cameras")
        yield
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await cameras.close()

    app.cleanup_ctx.append(lifecycle)
