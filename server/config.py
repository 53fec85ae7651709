"""Configuration: the city's sites, rooms, users and server settings, loaded from TOML and checked strictly."""

from __future__ import annotations

import time
import ipaddress
import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

import msgspec

from server.cron import ScheduleError, is_valid_rule, next_fire, zone

Grant = Literal["publish", "subscribe", "moderate", "issue", "admin", "sign"]
SiteKind = Literal["office", "command_centre", "county", "township", "mobile", "linkage", "team"]

GRANTS: Final[frozenset[str]] = frozenset(get_args(Grant))
SITE_KINDS: Final[frozenset[str]] = frozenset(get_args(SiteKind))
ID_PATTERN: Final[str] = r"^[a-z0-9][a-z0-9_-]{0,63}$"

DEFAULT_CONFIG_PATH: Final[Path] = Path(__file__).resolve().parent.parent / "config" / "demo.toml"

Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Positive = Annotated[int, msgspec.Meta(gt=0)]


class ConfigError(Exception):
    """A configuration file that cannot be read or does not validate; the message names file and key."""


class UnknownSite(LookupError):
    """A site id that is not in the configuration."""


class CityInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The city this deployment serves."""

    name_zh: str
    name_en: str
    timezone: str = "Asia/Shanghai"


class Site(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One place that takes part: the office, the centre, a county, a vehicle, a linkage unit."""

    id: Id
    name_zh: str
    name_en: str
    kind: SiteKind
    parent: str | None = None


class RoomConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A conference room configured at start; `sites` are the sites expected in it."""

    id: Id
    name_zh: str
    name_en: str
    sites: tuple[str, ...] = ()
    locked: bool = False
    record: bool = False  # recorded whenever media flows in it (server/recording/)


class UserConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A person (or wall display) who logs in with a password; `rooms` empty means every room."""

    username: Id
    password_hash: str
    display_name: str
    site: str
    grants: tuple[Grant, ...]
    rooms: tuple[str, ...] = ()


class CameraConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[[cameras]]`: an IP camera of a site, pulled over RTSP into its rooms while someone watches.

    `url` carries no credentials (refused when it does): the user name is `username`, the password
    is read from the environment variable `password_env` (secrets never in the repository)."""

    id: Id
    site: str
    name_zh: str
    url: str
    name_en: str = ""
    username: str = ""
    password_env: str = ""
    transport: Literal["tcp", "udp"] = "tcp"
    rooms: tuple[str, ...] = ()  # empty: every room


class SiteGroup(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A saved group of sites to call or address together (e.g. the eleven counties)."""

    id: Id
    name_zh: str
    name_en: str
    sites: tuple[str, ...]


class RollCallSchedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A roll-call that starts by itself on a cron rule, in the city's (or the given) time zone."""

    id: Id
    name_zh: str
    name_en: str
    cron: str
    sites: tuple[str, ...] = ()
    group: str | None = None
    subtree: str | None = None
    mode: Literal["sequence", "all"] = "sequence"
    window: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    grace: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 15.0
    timezone: str | None = None
    room: str | None = None
    enabled: bool = True


class DutySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[duty]`: which sites file the daily duty report (每日值班报告) and the deadline, in the city's (or this) time zone."""

    deadline: Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$")] = "17:30"  # env DUTY_DEADLINE
    timezone: str | None = None
    kinds: tuple[SiteKind, ...] = ("county",)
    sites: tuple[str, ...] = ()  # more sites that file (city departments), beside those of `kinds`
    # 审核签发: a report the duty officer files is a draft until the site's duty leader (grant `sign`) signs it off.
    sign_off: bool = False
    # Minutes before the deadline when the sites whose report has not gone up are reminded (催办); 0: never.
    remind_before: Annotated[float, msgspec.Meta(ge=0, le=720)] = 30.0


Minutes = Annotated[float, msgspec.Meta(ge=0, le=1440)]


class ReminderMinutes(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[command.remind_before]`: per directive class, minutes before its deadline when the recipients
    that still owe the step are reminded (催办) automatically; 0: never."""

    mandatory: Minutes = 30.0
    guidance: Minutes = 15.0
    reference: Minutes = 0.0

    def of(self, cls: str) -> float:
        """The minutes for a directive class (0 for an unknown one)."""
        return {"mandatory": self.mandatory, "guidance": self.guidance, "reference": self.reference}.get(cls, 0.0)


class CommandSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[command]`: the command channel's settings."""

    remind_before: ReminderMinutes = msgspec.field(default_factory=ReminderMinutes)
    # 审核签发: an incident report the duty officer files is a draft until the site's duty leader (grant
    # `sign`) signs it off; reports of `urgent_types` (or marked 即报 urgent) go up at once, reviewed after.
    sign_off: bool = False
    urgent_types: tuple[str, ...] = ()


class RecordingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[recording]`: where recordings go, how they are cut, kept and bounded (server/recording/)."""

    enabled: bool = True
    directory: str = ""  # default: <data_dir>/recordings                           env RECORDING_DIR
    segment_seconds: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 300.0  # env RECORDING_SEGMENT_SECONDS
    rollcalls: bool = True  # a roll-call with a room records that room while it runs
    retention_days: Annotated[float, msgspec.Meta(gt=0, le=36600)] = 90.0
    budget_gb: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # every recording together; 0: no budget
    # A recording is refused below this much free disk, and one under way stops (cleanly) there.
    min_free_gb: Annotated[float, msgspec.Meta(ge=0)] = 2.0  # env RECORDING_MIN_FREE_GB
    # Packets sent to the recording worker and not yet read by it, beyond which they are dropped (and counted).
    queue_mb: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 32

    def root(self, data_dir: str) -> str:
        """The directory the recordings are written under."""
        return self.directory or str(Path(data_dir) / "recordings")


class Bucket(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A token bucket: `burst` requests at once, refilled at `per_minute`."""

    burst: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    per_minute: Annotated[float, msgspec.Meta(gt=0, le=600_000)]


class RateLimitSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`[server.rate_limits]`: one bucket per identity and one per address for each kind of request."""

    enabled: bool = True
    # A page reconnects at once and then every second while the server is away; a join refused
    # here waits its turn and retries, so the identity's bucket covers a grace period of retries.
    join_identity: Bucket = Bucket(burst=20, per_minute=60)
    join_address: Bucket = Bucket(burst=200, per_minute=1200)
    issue_identity: Bucket = Bucket(burst=30, per_minute=60)
    issue_address: Bucket = Bucket(burst=120, per_minute=600)
    whip_identity: Bucket = Bucket(burst=10, per_minute=30)
    whip_address: Bucket = Bucket(burst=200, per_minute=1200)
    # A wall controller opens a player per tile, all at once.
    whep_identity: Bucket = Bucket(burst=60, per_minute=240)
    whep_address: Bucket = Bucket(burst=200, per_minute=1200)


class ServerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How the server listens and the limits it enforces."""

    host: str = "127.0.0.1"
    port: Port = 8080
    data_dir: str = "var"
    tls_cert: str | None = None
    tls_key: str | None = None
    self_signed_tls: bool = False
    public_host: str | None = None
    redis_url: str | None = None
    session_ttl: Positive = 12 * 3600
    max_message_bytes: Positive = 65536
    max_sdp_bytes: Positive = 32768
    max_tracks: Positive = 8
    # STUN and TURN URLs told to clients (pages, WHIP/WHEP `Link` headers); TURN ones carry coturn
    # REST API credentials (secret TURN_SECRET) valid for `turn_credential_ttl` seconds. coturn checks
    # the expiry on every allocation refresh, so a session that outlives it loses its relay: a day
    # covers a 12-hour duty shift and its handover, and bounds a leaked credential to a day.
    ice_servers: tuple[str, ...] = ()
    turn_credential_ttl: Annotated[int, msgspec.Meta(ge=60, le=7 * 86400)] = 86400
    # Liveness: a participant whose connections are lost (socket closed, media silent, ICE or DTLS
    # failed) is "reconnecting" for `reconnect_grace` seconds: its tiles stay, and the same identity
    # coming back takes them over; after that it is gone. Media silent for `media_stalled_after`
    # seconds (a consent check unanswered) counts as lost; a connection not up within
    # `connect_timeout` seconds is closed.
    reconnect_grace: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 30.0
    media_stalled_after: Annotated[float, msgspec.Meta(gt=0, le=60)] = 4.0
    connect_timeout: Annotated[float, msgspec.Meta(gt=0, le=600)] = 20.0
    # Access (server/access.py): a device token may live at most `device_token_max_ttl` seconds
    # (refused when minted and when presented); a node reads the revocations other nodes made every
    # `revocation_poll` seconds and checks its live sessions against expiry, revocations and the
    # configuration every `access_recheck` seconds; joins, directives and WHIP/WHEP offers are
    # limited per identity and per address by `rate_limits`.
    device_token_max_ttl: Annotated[int, msgspec.Meta(ge=60, le=366 * 86400)] = 30 * 86400
    revocation_poll: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    access_recheck: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    rate_limits: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    # Browser security (server/web_security.py). A WebSocket upgrade or a state-changing request
    # (outside /whip and /whep) is accepted from the server's own origin, as the request arrived
    # (or as `public_host`), and from `allowed_origins` (`https://host[:port]`), no other.
    # `secure_cookies` marks the session cookie Secure behind a TLS-terminating proxy (it is
    # Secure anyway when the request came over TLS). `trusted_proxies` (addresses or networks) are
    # the proxies whose X-Forwarded-For/-Proto/-Host headers are believed.
    allowed_origins: tuple[str, ...] = ()
    secure_cookies: bool = False
    trusted_proxies: tuple[str, ...] = ()
    # Several nodes (server/nodes.py): `node_url` is where the other nodes reach this one (signaling
    # for the rooms it hosts is relayed there; default http(s)://127.0.0.1:<port>), `public_url`
    # where browsers do (pages whose node died try the others'; default `public_host` or
    # `node_url`). A node beats every `node_heartbeat` seconds; one silent for `node_ttl` seconds
    # is dead and its rooms are placed again.
    node_url: str | None = None
    public_url: str | None = None
    node_heartbeat: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    node_ttl: Annotated[float, msgspec.Meta(gt=0, le=600)] = 4.0
    # A room spans nodes (server/span.py) when this is set: each node serves up to this many of a
    # room's participants, then the next joins on another node and media is relayed once between
    # them. 0: a room lives on one node, wherever its clients connect (signaling relayed there).
    room_node_limit: Annotated[int, msgspec.Meta(ge=0)] = 0

    def own_node_url(self) -> str:
        """Where the other nodes reach this one."""
        if self.node_url:
            return self.node_url.rstrip("/")
        scheme = "https" if self.tls_cert or self.self_signed_tls else "http"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def own_public_url(self) -> str:
        """Where browsers reach this node."""
        if self.public_url:
            return self.public_url.rstrip("/")
        if self.public_host:
            scheme = "https" if self.tls_cert or self.self_signed_tls or self.secure_cookies else "http"
            return f"{scheme}://{self.public_host}"
        return self.own_node_url()


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The whole validated configuration, with lookups of its groups, rooms and users (the sites: server/sites.py)."""

    city: CityInfo
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    sites: tuple[Site, ...]
    rooms: tuple[RoomConfig, ...]
    users: tuple[UserConfig, ...] = ()
    groups: tuple[SiteGroup, ...] = ()
    rollcall_schedules: tuple[RollCallSchedule, ...] = ()
    duty: DutySettings = msgspec.field(default_factory=DutySettings)
    command: CommandSettings = msgspec.field(default_factory=CommandSettings)
    cameras: tuple[CameraConfig, ...] = ()
    recording: RecordingSettings = msgspec.field(default_factory=RecordingSettings)

    def group(self, group_id: str) -> SiteGroup | None:
        """Return the saved site group with this id, or None."""
        return next((g for g in self.groups if g.id == group_id), None)

    def room(self, room_id: str) -> RoomConfig | None:
        """Return the configured room with this id, or None."""
        return next((r for r in self.rooms if r.id == room_id), None)

    def user(self, username: str) -> UserConfig | None:
        """Return the user with this name, or None."""
        return next((u for u in self.users if u.username == username), None)


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read, decode and cross-check a TOML configuration; `env` (default os.environ) may override server keys."""
    label = str(path)
    environ = os.environ if env is None else env
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: invalid TOML: {exc}") from None
    _apply_env(raw, environ, label)
    try:
        config = msgspec.convert(raw, type=Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    problems = _cross_check(config)
    if problems:
        raise ConfigError(f"{label}: " + f"\n{label}: ".join(problems))
    return config


def _apply_env(raw: dict[str, Any], env: Mapping[str, str], label: str) -> None:
    """Overlay PORT, HOST, REDIS_URL, DATA_DIR, ICE_SERVERS, TURN_CREDENTIAL_TTL, RECONNECT_GRACE, CONNECT_TIMEOUT onto
    [server], and DUTY_DEADLINE onto [duty]."""
    server = raw.get("server", {})
    if not isinstance(server, dict):
        return  # msgspec reports the wrong type with its path
    if "PORT" in env:
        try:
            port = int(env["PORT"])
        except ValueError:
            raise ConfigError(f"{label}: environment PORT: not an integer: {env['PORT']!r}") from None
        if not 1 <= port <= 65535:
            raise ConfigError(f"{label}: environment PORT: out of range 1..65535: {port}")
        server["port"] = port
    for var, key in (("HOST", "host"), ("REDIS_URL", "redis_url"), ("DATA_DIR", "data_dir")):
        value = env.get(var)
        if value:
            server[key] = value
    if "ICE_SERVERS" in env:  # comma-separated; set but empty means none
        server["ice_servers"] = [url.strip() for url in env["ICE_SERVERS"].split(",") if url.strip()]
    if env.get("TURN_CREDENTIAL_TTL"):
        try:
            server["turn_credential_ttl"] = int(env["TURN_CREDENTIAL_TTL"])
        except ValueError:
            value = env["TURN_CREDENTIAL_TTL"]
            raise ConfigError(f"{label}: environment TURN_CREDENTIAL_TTL: not an integer: {value!r}") from None
    for var, key in (("RECONNECT_GRACE", "reconnect_grace"), ("CONNECT_TIMEOUT", "connect_timeout")):
        if env.get(var):
            try:
                server[key] = float(env[var])
            except ValueError:
                raise ConfigError(f"{label}: environment {var}: not a number: {env[var]!r}") from None
    _apply_web_env(server, env, label)
    _apply_access_env(server, env, label)
    _apply_node_env(server, env, label)
    raw["server"] = server
    _apply_recording_env(raw, env, label)
    if env.get("DUTY_DEADLINE"):  # "HH:MM" or "HH:MM:SS", local time
        duty = raw.setdefault("duty", {})
        if isinstance(duty, dict):
            duty["deadline"] = env["DUTY_DEADLINE"]


def _apply_recording_env(raw: dict[str, Any], env: Mapping[str, str], label: str) -> None:
    """Overlay RECORDING_DIR, RECORDING_SEGMENT_SECONDS and RECORDING_MIN_FREE_GB onto [recording]."""
    recording = raw.get("recording", {})
    if not isinstance(recording, dict):
        return  # msgspec reports the wrong type with its path
    if env.get("RECORDING_DIR"):
        recording["directory"] = env["RECORDING_DIR"]
    for var, key in (("RECORDING_SEGMENT_SECONDS", "segment_seconds"), ("RECORDING_MIN_FREE_GB", "min_free_gb")):
        if env.get(var):
            try:
                recording[key] = float(env[var])
            except ValueError:
                raise ConfigError(f"{label}: environment {var}: not a number: {env[var]!r}") from None
    if recording:
        raw["recording"] = recording


def _apply_web_env(server: dict[str, Any], env: Mapping[str, str], label: str) -> None:
    """Overlay ALLOWED_ORIGINS, TRUSTED_PROXIES (comma-separated; set but empty means none) and SECURE_COOKIES."""
    for var, key in (("ALLOWED_ORIGINS", "allowed_origins"), ("TRUSTED_PROXIES", "trusted_proxies")):
        if var in env:
            server[key] = [item.strip() for item in env[var].split(",") if item.strip()]
    if env.get("SECURE_COOKIES"):
        value = env["SECURE_COOKIES"].strip().lower()
        if value not in _BOOLEANS:
            raise ConfigError(f"{label}: environment SECURE_COOKIES: not a boolean (1/0, true/false): {env['SECURE_COOKIES']!r}")
        server["secure_cookies"] = _BOOLEANS[value]


_BOOLEANS: Final[Mapping[str, bool]] = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _apply_access_env(server: dict[str, Any], env: Mapping[str, str], label: str) -> None:
    """Overlay DEVICE_TOKEN_MAX_TTL, REVOCATION_POLL, ACCESS_RECHECK and RATE_LIMITS (`off` or `on`)."""
    for var, key, kind in (("DEVICE_TOKEN_MAX_TTL", "device_token_max_ttl", int), ("REVOCATION_POLL", "revocation_poll", float),
                           ("ACCESS_RECHECK", "access_recheck", float)):
        if env.get(var):
            try:
                server[key] = kind(env[var])
            except ValueError:
                raise ConfigError(f"{label}: environment {var}: not a number: {env[var]!r}") from None
    if env.get("RATE_LIMITS"):
        value = env["RATE_LIMITS"].strip().lower()
        if value not in _BOOLEANS:
            raise ConfigError(f"{label}: environment RATE_LIMITS: not on/off: {env['RATE_LIMITS']!r}")
        limits = server.get("rate_limits")
        server["rate_limits"] = {**(limits if isinstance(limits, dict) else {}), "enabled": _BOOLEANS[value]}


def _apply_node_env(server: dict[str, Any], env: Mapping[str, str], label: str) -> None:
    """Overlay NODE_URL, PUBLIC_URL, NODE_HEARTBEAT, NODE_TTL and ROOM_NODE_LIMIT."""
    for var, key in (("NODE_URL", "node_url"), ("PUBLIC_URL", "public_url")):
        if env.get(var):
            server[key] = env[var]
    for var, key in (("NODE_HEARTBEAT", "node_heartbeat"), ("NODE_TTL", "node_ttl"), ("ROOM_NODE_LIMIT", "room_node_limit")):
        if env.get(var):
            try:
                server[key] = int(env[var]) if key == "room_node_limit" else float(env[var])
            except ValueError:
                raise ConfigError(f"{label}: environment {var}: not a number: {env[var]!r}") from None


def camera_problems(camera: CameraConfig, site_ids: set[str], room_ids: set[str]) -> list[str]:
    """What is wrong with a camera's settings (configured, or added by an administrator), each with its key."""
    problems = []
    if camera.site not in site_ids:
        problems.append(f"site: unknown site {camera.site!r}")
    problems += [f"rooms: unknown room {r!r}" for r in camera.rooms if r not in room_ids]
    if not re.match(r"^rtsps?://[^/\s]+(/\S*)?$", camera.url):
        problems.append("url: not an rtsp:// URL")
    elif "@" in camera.url.split("/", 3)[2]:
        problems.append("url: carries credentials: give `username` and `password_env` instead")
    return problems


def _cross_check(config: Config) -> list[str]:
    """Return every reference and consistency problem, each starting with its key path."""
    problems: list[str] = []
    problems += _duplicates("sites", [s.id for s in config.sites], "site")
    problems += _duplicates("rooms", [r.id for r in config.rooms], "room")
    problems += _duplicates("users", [u.username for u in config.users], "user")
    site_ids = {s.id for s in config.sites}
    room_ids = {r.id for r in config.rooms}
    for i, site in enumerate(config.sites):
        if site.parent is not None and site.parent not in site_ids:
            problems.append(f"sites[{i}].parent: unknown site {site.parent!r}")
    problems += _cycles(config)
    problems += _duplicates("cameras", [c.id for c in config.cameras], "camera")
    for i, camera in enumerate(config.cameras):
        problems += [f"cameras[{i}].{p}" for p in camera_problems(camera, site_ids, room_ids)]
    for i, room in enumerate(config.rooms):
        for j, sid in enumerate(room.sites):
            if sid not in site_ids:
                problems.append(f"rooms[{i}].sites[{j}]: unknown site {sid!r}")
    for i, user in enumerate(config.users):
        if user.site not in site_ids:
            problems.append(f"users[{i}].site: unknown site {user.site!r}")
        for j, rid in enumerate(user.rooms):
            if rid not in room_ids:
                problems.append(f"users[{i}].rooms[{j}]: unknown room {rid!r}")
        if not user.password_hash.startswith("$argon2"):
            problems.append(f"users[{i}].password_hash: not an argon2 hash (use `python -m server hash-password`)")
    for i, group in enumerate(config.groups):
        for j, sid in enumerate(group.sites):
            if sid not in site_ids:
                problems.append(f"groups[{i}].sites[{j}]: unknown site {sid!r}")
    problems += _duplicates("groups", [g.id for g in config.groups], "group")
    problems += _duplicates("rollcall_schedules", [r.id for r in config.rollcall_schedules], "schedule")
    for i, schedule in enumerate(config.rollcall_schedules):
        problems += schedule_problems(config, schedule, f"rollcall_schedules[{i}]")
    problems += _duty_problems(config, site_ids)
    server = config.server
    if (server.tls_cert is None) != (server.tls_key is None):
        problems.append("server.tls_cert: tls_cert and tls_key must be given together")
    if server.self_signed_tls and server.tls_cert is not None:
        problems.append("server.self_signed_tls: cannot be combined with tls_cert/tls_key")
    for i, url in enumerate(server.ice_servers):
        if not url.lower().startswith(("stun:", "stuns:", "turn:", "turns:")) or any(c in url for c in " <>,\""):
            problems.append(f"server.ice_servers[{i}]: not a stun:, stuns:, turn: or turns: URL: {url!r}")
    try:
        zoneinfo.ZoneInfo(config.city.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(f"city.timezone: unknown time zone {config.city.timezone!r}")
    problems += _web_problems(server)
    for key, base in (("node_url", server.node_url), ("public_url", server.public_url)):
        if base is not None and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+/?", base):
            problems.append(f"server.{key}: not a base URL like http://host:port: {base!r}")
    if server.node_ttl <= server.node_heartbeat:
        problems.append("server.node_ttl: must be longer than node_heartbeat")
    return problems


def _duty_problems(config: Config, site_ids: set[str]) -> list[str]:
    """The `[duty]` section's unknown sites and time zone."""
    problems = [f"duty.sites[{j}]: unknown site {sid!r}" for j, sid in enumerate(config.duty.sites) if sid not in site_ids]
    if config.duty.timezone:
        try:
            zone(config.duty.timezone)
        except ScheduleError:
            problems.append(f"duty.timezone: unknown time zone {config.duty.timezone!r}")
    return problems


def _web_problems(server: ServerSettings) -> list[str]:
    """Allowed origins must be bare `http(s)://host[:port]`; trusted proxies addresses or networks."""
    problems: list[str] = []
    for i, origin in enumerate(server.allowed_origins):
        if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin) or origin.count("/") != 2:
            problems.append(f"server.allowed_origins[{i}]: not an origin like https://host[:port]: {origin!r}")
    for i, proxy in enumerate(server.trusted_proxies):
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            problems.append(f"server.trusted_proxies[{i}]: not an IP address or network: {proxy!r}")
    return problems


def schedule_problems(config: Config, schedule: RollCallSchedule, key: str) -> list[str]:
    """Every problem of one roll-call schedule (from the file or the UI), each naming its key."""
    problems: list[str] = []
    site_ids = {s.id for s in config.sites}
    if not is_valid_rule(schedule.cron):
        problems.append(f"{key}.cron: not a 5-field cron rule: {schedule.cron!r}")
    else:
        problems += _never_fires(config, schedule, key)
    chosen = [name for name, value in (("sites", schedule.sites), ("group", schedule.group), ("subtree", schedule.subtree)) if value]
    if len(chosen) != 1:
        problems.append(f"{key}: give exactly one of sites, group or subtree (got {', '.join(chosen) or 'none'})")
    for j, sid in enumerate(schedule.sites):
        if sid not in site_ids:
            problems.append(f"{key}.sites[{j}]: unknown site {sid!r}")
    if schedule.group and config.group(schedule.group) is None:
        problems.append(f"{key}.group: unknown group {schedule.group!r}")
    if schedule.subtree and schedule.subtree not in site_ids:
        problems.append(f"{key}.subtree: unknown site {schedule.subtree!r}")
    if schedule.room and config.room(schedule.room) is None:
        problems.append(f"{key}.room: unknown room {schedule.room!r}")
    if schedule.timezone:
        try:
            zoneinfo.ZoneInfo(schedule.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(f"{key}.timezone: unknown time zone {schedule.timezone!r}")
    return problems


def _never_fires(config: Config, schedule: RollCallSchedule, key: str) -> list[str]:
    """A problem when the rule has no next time (`0 0 31 2 *`): croniter only finds out by computing one."""
    try:
        tz = zone(schedule.timezone or config.city.timezone)
    except ScheduleError:
        return []  # reported as an unknown time zone
    try:
        next_fire(schedule.cron, tz, time.time())
    except ScheduleError as exc:
        return [f"{key}.cron: {schedule.cron!r} never fires ({exc})"]
    return []


def _duplicates(section: str, ids: list[str], noun: str) -> list[str]:
    """Report every repeated id after its first occurrence."""
    seen: set[str] = set()
    problems = []
    key = "username" if section == "users" else "id"
    for i, item_id in enumerate(ids):
        if item_id in seen:
            problems.append(f"{section}[{i}].{key}: duplicate {noun} {item_id!r}")
        seen.add(item_id)
    return problems


def _cycles(config: Config) -> list[str]:
    """Report each site whose parent chain loops back on itself."""
    parents = {s.id: s.parent for s in config.sites}
    problems = []
    for i, site in enumerate(config.sites):
        seen = {site.id}
        current = site.parent
        while current is not None and current in parents:
            if current in seen:
                if current == site.id:  # report a loop once per member, not for sites that lead into it
                    problems.append(f"sites[{i}].parent: cycle in the site tree through {site.id!r}")
                break
            seen.add(current)
            current = parents[current]
    return problems
