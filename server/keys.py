"""The server's signing secret: from the environment, a named file, or generated once under the data directory."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

MIN_SECRET_CHARS: Final[int] = 32
SECRET_FILE_NAME: Final[str] = "secret.key"


class SecretError(Exception):
    """The signing secret cannot be obtained."""


class SecretTooShort(SecretError):
    """A configured secret has fewer than MIN_SECRET_CHARS characters."""


class SecretUnreadable(SecretError):
    """A secret file cannot be read or created."""


def load_secret(data_dir: Path, env: Mapping[str, str]) -> bytes:
    """Return the secret from SERVER_SECRET, else SERVER_SECRET_FILE, else `<data_dir>/secret.key` (created if absent)."""
    if env.get("SERVER_SECRET"):
        return _checked(env["SERVER_SECRET"], "environment SERVER_SECRET")
    if env.get("SERVER_SECRET_FILE"):
        path = Path(env["SERVER_SECRET_FILE"])
        return _checked(_read(path), f"SERVER_SECRET_FILE {path}")
    path = data_dir / SECRET_FILE_NAME
    if not path.exists():
        _create(path)
    return _checked(_read(path), str(path))


def load_previous_secrets(env: Mapping[str, str]) -> tuple[bytes, ...]:
    """Secrets that signed tokens still in use during a rotation: SERVER_SECRET_PREVIOUS (several
    separated by commas or spaces), or the file named by SERVER_SECRET_PREVIOUS_FILE (one a line).
    They verify; nothing new is signed with them."""
    if env.get("SERVER_SECRET_PREVIOUS"):
        text, source = env["SERVER_SECRET_PREVIOUS"], "environment SERVER_SECRET_PREVIOUS"
    elif env.get("SERVER_SECRET_PREVIOUS_FILE"):
        path = Path(env["SERVER_SECRET_PREVIOUS_FILE"])
        text, source = _read(path), f"SERVER_SECRET_PREVIOUS_FILE {path}"
    else:
        return ()
    return tuple(_checked(part, source) for part in text.replace(",", " ").split())


def _checked(secret: str, source: str) -> bytes:
    """Refuse a short secret; name its source but never its value."""
    secret = secret.strip()
    if len(secret) < MIN_SECRET_CHARS:
        raise SecretTooShort(f"{source}: secret must be at least {MIN_SECRET_CHARS} characters, got {len(secret)}")
    return secret.encode()


def _read(path: Path) -> str:
    """Read a secret file as text."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretUnreadable(f"{path}: cannot read secret: {exc}") from None


def _create(path: Path) -> None:
    """Write a new random secret readable only by its owner; another process winning the race is fine."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise SecretUnreadable(f"{path}: cannot create secret: {exc}") from None
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_bytes(32).hex() + "\n")
    logger.info("generated signing secret path=%s", path)
