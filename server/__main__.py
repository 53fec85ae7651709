"""Entry point for `python -m server`."""

from server.cli import main

raise SystemExit(main())
