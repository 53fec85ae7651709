"""Configuration: the city's sites, rooms, users and server settings, loaded from TOML and checked strictly."""

from __future__ import annotations

import os
import tomllib
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

import msgspec

Grant = Literal["publish", "subscribe", "moderate", "issue", "admin"]
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


class UserConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A person (or wall display) who logs in with a password; `rooms` empty means every room."""

    username: Id
    password_hash: str
    display_name: str
    site: str
    grants: tuple[Grant, ...]
    rooms: tuple[str, ...] = ()


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


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The whole validated configuration, with lookups over its site tree, rooms and users."""

    city: CityInfo
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    sites: tuple[Site, ...]
    rooms: tuple[RoomConfig, ...]
    users: tuple[UserConfig, ...] = ()
    groups: tuple[SiteGroup, ...] = ()
    rollcall_schedules: tuple[RollCallSchedule, ...] = ()

    def group(self, group_id: str) -> SiteGroup | None:
        """Return the saved site group with this id, or None."""
        return next((g for g in self.groups if g.id == group_id), None)

    def site(self, site_id: str) -> Site:
        """Return the site with this id, or raise UnknownSite."""
        found = self.find_site(site_id)
        if found is None:
            raise UnknownSite(f"unknown site {site_id!r}")
        return found

    def find_site(self, site_id: str) -> Site | None:
        """Return the site with this id, or None."""
        return next((s for s in self.sites if s.id == site_id), None)

    def room(self, room_id: str) -> RoomConfig | None:
        """Return the configured room with this id, or None."""
        return next((r for r in self.rooms if r.id == room_id), None)

    def user(self, username: str) -> UserConfig | None:
        """Return the user with this name, or None."""
        return next((u for u in self.users if u.username == username), None)

    def children(self, site_id: str) -> list[Site]:
        """Return the sites whose parent is this site, in configuration order."""
        return [s for s in self.sites if s.parent == site_id]

    def subtree(self, site_id: str) -> list[Site]:
        """Return this site and all its descendants, depth first in configuration order."""
        by_parent: dict[str | None, list[Site]] = {}
        for s in self.sites:
            by_parent.setdefault(s.parent, []).append(s)
        result: list[Site] = []
        stack = [self.site(site_id)]
        while stack:
            current = stack.pop()
            result.append(current)
            stack.extend(reversed(by_parent.get(current.id, [])))
        return result


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
    """Overlay PORT, HOST, REDIS_URL, DATA_DIR, ICE_SERVERS, TURN_CREDENTIAL_TTL, RECONNECT_GRACE, CONNECT_TIMEOUT onto [server]."""
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
    raw["server"] = server


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
    return problems


def schedule_problems(config: Config, schedule: RollCallSchedule, key: str) -> list[str]:
    """Every problem of one roll-call schedule (from the file or the UI), each naming its key."""
    from croniter import croniter

    problems: list[str] = []
    if not croniter.is_valid(schedule.cron) or len(schedule.cron.split()) != 5:
        problems.append(f"{key}.cron: not a 5-field cron rule: {schedule.cron!r}")
    chosen = [name for name, value in (("sites", schedule.sites), ("group", schedule.group), ("subtree", schedule.subtree)) if value]
    if len(chosen) != 1:
        problems.append(f"{key}: give exactly one of sites, group or subtree (got {', '.join(chosen) or 'none'})")
    for j, sid in enumerate(schedule.sites):
        if config.find_site(sid) is None:
            problems.append(f"{key}.sites[{j}]: unknown site {sid!r}")
    if schedule.group and config.group(schedule.group) is None:
        problems.append(f"{key}.group: unknown group {schedule.group!r}")
    if schedule.subtree and config.find_site(schedule.subtree) is None:
        problems.append(f"{key}.subtree: unknown site {schedule.subtree!r}")
    if schedule.room and config.room(schedule.room) is None:
        problems.append(f"{key}.room: unknown room {schedule.room!r}")
    if schedule.timezone:
        try:
            zoneinfo.ZoneInfo(schedule.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(f"{key}.timezone: unknown time zone {schedule.timezone!r}")
    return problems


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
