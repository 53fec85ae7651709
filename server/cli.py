"""Command line: run the server, issue and revoke device tokens, list rooms, hash passwords."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

import msgspec

from server.auth import AuthError, PasswordVerifier, TokenService
from server.config import DEFAULT_CONFIG_PATH, GRANTS, Config, ConfigError, load_config
from server.keys import SecretError, load_previous_secrets, load_secret
from server.revocations import keep_until
from server.sites import SiteTree
from server.store import DeviceLinkRecord, RevocationRecord, Store, StoreError, open_store

logger = logging.getLogger(__name__)

USAGE_ERROR: Final[int] = 2
TOKEN_ID: Final[re.Pattern[str]] = re.compile(r"^[0-9a-f]{32}$")


class CliError(Exception):
    """A command cannot be carried out; the message goes to stderr and the exit code is 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has already printed usage
        return exc.code if isinstance(exc.code, int) else USAGE_ERROR
    try:
        return int(args.handler(args, os.environ))
    except (CliError, ConfigError, SecretError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR


def _parser() -> argparse.ArgumentParser:
    """Build the argument parser with one subcommand per handler."""
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the server")
    _add_config(run)
    run.add_argument("--port", type=int, help="listen port (overrides config and PORT)")
    run.add_argument("--host", help="listen address (overrides config and HOST)")
    run.add_argument("--self-signed-tls", action="store_true", help="serve HTTPS with a generated certificate")
    run.add_argument("--workers", help="worker processes, one node each, sharing the port: a number or 'auto' "
                                       "(one per core; needs REDIS_URL). Default: $WORKERS, else one process")
    run.add_argument("--worker-port", type=int, help=argparse.SUPPRESS)  # set by the supervisor for each worker
    run.set_defaults(handler=_run)

    token = commands.add_parser("token", help="print a signed device token, or revoke one (--revoke)")
    _add_config(token)
    token.add_argument("--identity", help="who the token is for, e.g. mobile01-cam (not a user's name)")
    token.add_argument("--site", help="site id the device belongs to")
    token.add_argument("--room", help="room id the device may join")
    token.add_argument("--grants", help="comma-separated, e.g. publish,subscribe")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600; at most device_token_max_ttl)")
    token.add_argument("--name", help="display name (default: the identity)")
    token.add_argument("--revoke", metavar="TOKEN_OR_ID", help="revoke this token (or token id) on every node instead")
    token.add_argument("--reason", default="", help="why it is revoked, for the record (with --revoke)")
    token.set_defaults(handler=_token)

    rooms = commands.add_parser("rooms", help="list configured rooms")
    _add_config(rooms)
    rooms.set_defaults(handler=_rooms)

    recordings = commands.add_parser("verify-recording", help="check a recording's segments against the hashes in its manifest "
                                                                 "(needs REDIS_URL); exit 1 when any is tampered or missing")
    _add_config(recordings)
    recordings.add_argument("session", help="the recording's id (12 hex digits, as in its page's address)")
    recordings.set_defaults(handler=_verify_recording)

    hash_password = commands.add_parser("hash-password", help="read a password from stdin, print its argon2 hash")
    hash_password.set_defaults(handler=_hash_password)
    return parser


def _add_config(parser: argparse.ArgumentParser) -> None:
    """Add the --config option shared by commands that read configuration."""
    parser.add_argument("--config", help=f"configuration file (default: $CONFIG or {DEFAULT_CONFIG_PATH})")


def _load(args: argparse.Namespace, env: Mapping[str, str]) -> Config:
    """Load the configuration named by --config, else $CONFIG, else the default."""
    path = args.config or env.get("CONFIG") or DEFAULT_CONFIG_PATH
    return load_config(path, env=env)


def _run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Load configuration, apply command-line overrides and hand over to the server."""
    logging.basicConfig(level=env.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = _load(args, env)
    changes: dict[str, object] = {}
    if args.port is not None:
        if not 1 <= args.port <= 65535:
            raise CliError(f"--port: out of range 1..65535: {args.port}")
        changes["port"] = args.port
    if args.host is not None:
        changes["host"] = args.host
    if args.self_signed_tls:
        if config.server.tls_cert is not None:
            raise CliError("--self-signed-tls: the configuration already names tls_cert/tls_key")
        changes["self_signed_tls"] = True
    if changes:
        config = msgspec.structs.replace(config, server=msgspec.structs.replace(config.server, **changes))
    config_path = Path(args.config or env.get("CONFIG") or DEFAULT_CONFIG_PATH)
    workers = args.workers or env.get("WORKERS")
    if workers and args.worker_port is None:
        from server.workers import WorkersError, supervise, worker_count

        try:
            count = worker_count(workers)
            if count > 1:
                return supervise(config, count, config_path, env)
        except WorkersError as exc:
            raise CliError(str(exc)) from exc
    from server.app import run_server  # imported late: the app pulls in the whole media stack

    run_server(config, config_path, worker_port=args.worker_port)  # SIGHUP reloads its users
    return 0


def _token(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Validate the request against configuration and print a signed device token (or revoke one)."""
    config = _load(args, env)
    if args.revoke is not None:
        return _revoke(args, env, config)
    missing = [f"--{name}" for name in ("identity", "site", "room", "grants") if getattr(args, name) is None]
    if missing:
        raise CliError(f"{', '.join(missing)}: required to issue a token")
    if args.site not in SiteTree(config.sites):
        raise CliError(f"--site: unknown site {args.site!r}")
    if config.room(args.room) is None:
        raise CliError(f"--room: unknown room {args.room!r} (see `python -m server rooms`)")
    grants = [g.strip() for g in args.grants.split(",") if g.strip()]
    unknown = sorted(set(grants) - GRANTS)
    if not grants or unknown:
        raise CliError(f"--grants: unknown grants {unknown} (choose from {', '.join(sorted(GRANTS))})")
    cap = config.server.device_token_max_ttl
    if args.ttl <= 0 or args.ttl > cap:
        raise CliError(f"--ttl: must be between 1 and {cap} s (device_token_max_ttl), got {args.ttl}")
    if not args.identity.strip() or ":" in args.identity:
        raise CliError("--identity: must not be empty nor contain ':'")
    if config.user(args.identity) is not None:
        # An issuer's identity is compared as a string: a device named like a user would act as them.
        raise CliError(f"--identity: {args.identity!r} is a user's name; name the device apart, e.g. {args.identity}-phone")
    secret = load_secret(Path(config.server.data_dir).resolve(), env)
    tokens = TokenService(secret, max_device_ttl=cap)
    token = tokens.issue_device_token(
        identity=args.identity, site=args.site, room=args.room, grants=grants, ttl=args.ttl, name=args.name
    )
    facts = tokens.facts(token)
    link = DeviceLinkRecord(
        token_id=facts.token_id, identity=args.identity, name=args.name or args.identity, site=args.site, room=args.room,
        grants=tuple(sorted(set(grants))), issued_at=float(facts.expires_at - args.ttl), expires_at=float(facts.expires_at),
        issued_by=_operator(env),
    )
    _record_link(config, link)
    print(token)
    return 0


def _operator(env: Mapping[str, str]) -> str:
    """Who ran the command, for the device links page."""
    return f"cli:{env.get('USER') or env.get('USERNAME') or '?'}@{socket.gethostname()}"


def _record_link(config: Config, link: DeviceLinkRecord) -> None:
    """Record an issued link in the shared store for the device links page; a note on stderr where it cannot be."""
    if not config.server.redis_url:
        print("note: not listed on /admin/devices until it connects (the embedded store lives inside the server; "
              "set REDIS_URL to share it)", file=sys.stderr)
        return
    try:
        asyncio.run(_in_store(config, lambda store: store.put_device_link(link)))
    except StoreError as exc:
        print(f"warning: the token works but is not listed on /admin/devices: {exc}", file=sys.stderr)


async def _in_store(config: Config, work: Callable[[Store], Awaitable[object]]) -> None:
    """Open the configured store, do `work`, close it."""
    store = open_store(config.server.redis_url, node_id=f"cli-{socket.gethostname()}")
    try:
        await store.start()
        await work(store)
    finally:
        await store.close()


def _revoke(args: argparse.Namespace, env: Mapping[str, str], config: Config) -> int:
    """Revoke a token, given itself or its id, in the shared store: every node refuses it and ends its connections."""
    if not config.server.redis_url:
        raise CliError("--revoke: needs the shared store (REDIS_URL): the embedded store lives inside the server "
                       "process; revoke on the /admin/devices page instead")
    value = args.revoke.strip()
    settings = config.server
    longest = max(settings.device_token_max_ttl, settings.session_ttl)
    now = time.time()
    if TOKEN_ID.match(value):
        record = RevocationRecord(token_id=value, expires_at=0.0, revoked_at=now, by=_operator(env), reason=args.reason)
    else:
        try:
            secret = load_secret(Path(settings.data_dir).resolve(), env)
            facts = TokenService(secret, previous_secrets=load_previous_secrets(env)).facts(value)
        except AuthError as exc:
            raise CliError(f"--revoke: neither a token id (32 hex digits) nor a token of this server: {exc}") from None
        if facts.expires_at <= now:
            print(f"token {facts.token_id} ({facts.subject}) has already expired: nothing to revoke")
            return 0
        record = RevocationRecord(token_id=facts.token_id, expires_at=float(facts.expires_at), revoked_at=now,
                                  identity=facts.subject, kind=facts.kind, by=_operator(env), reason=args.reason)

    async def revoke(store: Store) -> None:
        nonlocal record
        if record.expires_at == 0.0:  # only the id was given: the recorded link says until when
            link = await store.get_device_link(record.token_id)
            record = msgspec.structs.replace(
                record, expires_at=keep_until(link.expires_at if link else None, longest, now),
                identity=link.identity if link else "", kind="device" if link else "",
            )
        await store.revoke_token(record)

    try:
        asyncio.run(_in_store(config, revoke))
    except StoreError as exc:
        raise CliError(f"--revoke: the revocation could not be kept: {exc}") from None
    print(f"revoked {record.token_id} ({record.identity or 'identity unknown'}); every node refuses it within seconds")
    return 0


def _rooms(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Print each configured room: id, a tab, then its Chinese and English names."""
    for room in _load(args, env).rooms:
        print(f"{room.id}\t{room.name_zh} / {room.name_en}")
    return 0


def _verify_recording(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Print each segment's verdict (verified, tampered, missing, lost) and the recording's."""
    from server.errors import NotFound
    from server.recording.domain import Session
    from server.recording.files import read_session, verify

    config = _load(args, env)
    if not config.server.redis_url:
        raise CliError("needs the shared store (REDIS_URL): the embedded store lives inside the server process; "
                       "open /recordings/<id>/verify instead")
    found: list[Session] = []

    async def read(store: Store) -> None:
        found.append(await read_session(store, args.session))

    try:
        asyncio.run(_in_store(config, read))
    except NotFound as exc:
        raise CliError(str(exc)) from None
    except StoreError as exc:
        raise CliError(f"the store cannot be read: {exc}") from None
    session = found[0]
    root = Path(config.recording.root(config.server.data_dir))
    verdicts = verify(root, session)
    for v in verdicts:
        print(f"{v.status:9} {v.track}/{v.file} {v.sha256 or '-'}")
    bad = [v for v in verdicts if v.status in ("tampered", "missing")]
    print(f"recording {args.session}: {'TAMPERED 已被篡改' if bad else 'verified 校验通过'} "
          f"({len(verdicts) - len(bad)} of {len(verdicts)} segments as listed)")
    return 1 if bad else 0


def _hash_password(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Read one password (prompting on a terminal) and print its argon2 hash."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CliError("empty password")
    print(PasswordVerifier().hash(password))
    return 0
