"""Command line: run the server, issue device tokens, list rooms, hash passwords."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import msgspec

from server.auth import PasswordVerifier, TokenService
from server.config import DEFAULT_CONFIG_PATH, GRANTS, Config, ConfigError, load_config
from server.keys import SecretError, load_secret

logger = logging.getLogger(__name__)

USAGE_ERROR: Final[int] = 2


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
    run.set_defaults(handler=_run)

    token = commands.add_parser("token", help="print a signed device token")
    _add_config(token)
    token.add_argument("--identity", required=True, help="who the token is for, e.g. mobile01-cam")
    token.add_argument("--site", required=True, help="site id the device belongs to")
    token.add_argument("--room", required=True, help="room id the device may join")
    token.add_argument("--grants", required=True, help="comma-separated, e.g. publish,subscribe")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--name", help="display name (default: the identity)")
    token.set_defaults(handler=_token)

    rooms = commands.add_parser("rooms", help="list configured rooms")
    _add_config(rooms)
    rooms.set_defaults(handler=_rooms)

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
    from server.app import run_server  # imported late: the app pulls in the whole media stack

    run_server(config)
    return 0


def _token(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Validate the request against configuration and print a signed device token."""
    config = _load(args, env)
    if config.find_site(args.site) is None:
        raise CliError(f"--site: unknown site {args.site!r}")
    if config.room(args.room) is None:
        raise CliError(f"--room: unknown room {args.room!r} (see `python -m server rooms`)")
    grants = [g.strip() for g in args.grants.split(",") if g.strip()]
    unknown = sorted(set(grants) - GRANTS)
    if not grants or unknown:
        raise CliError(f"--grants: unknown grants {unknown} (choose from {', '.join(sorted(GRANTS))})")
    if args.ttl <= 0:
        raise CliError(f"--ttl: must be positive, got {args.ttl}")
    if not args.identity.strip():
        raise CliError("--identity: must not be empty")
    secret = load_secret(Path(config.server.data_dir).resolve(), env)
    token = TokenService(secret).issue_device_token(
        identity=args.identity, site=args.site, room=args.room, grants=grants, ttl=args.ttl, name=args.name
    )
    print(token)
    return 0


def _rooms(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Print each configured room: id, a tab, then its Chinese and English names."""
    for room in _load(args, env).rooms:
        print(f"{room.id}\t{room.name_zh} / {room.name_en}")
    return 0


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
