"""`python -m synthetic`: synthetic sites publishing test patterns into a room of a running server."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from server.config import ConfigError
from server.keys import SecretError
from synthetic.demo import (
    MediaSettings,
    add_common_arguments,
    configure_logging,
    install_stop_signals,
    load_demo_config,
    run_sites,
    select_sites,
    token_minter,
)


async def _run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run the chosen sites against `--url` until SIGINT or SIGTERM."""
    _, config = load_demo_config(args.config, env)
    sites = select_sites(config, args.room, [s for s in args.sites.split(",") if s])
    mint = token_minter(config, args.room, env)
    stop = asyncio.Event()
    install_stop_signals(stop)
    media = MediaSettings(width=args.size[0], height=args.size[1], fps=args.fps)
    await run_sites(args.url.rstrip("/"), args.room, sites, mint, stop, media=media, ssl=not args.insecure)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the synthetic sites."""
    parser = argparse.ArgumentParser(prog="python -m synthetic", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL (default %(default)s)")
    parser.add_argument("--insecure", action="store_true", help="accept a self-signed TLS certificate")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(os.environ)
    try:
        return asyncio.run(_run(args, os.environ))
    except (ValueError, ConfigError, SecretError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
