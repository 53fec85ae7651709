"""Every core used: `python -m server run --workers auto` runs one node per core on one machine.

One Python process forwards on one core. With `--workers N` (`auto`: one per core) this process
becomes a supervisor of N worker processes, each a whole node of its own (its own id, rooms and
media), sharing the public port (SO_REUSEPORT: the kernel spreads new connections over them) and
Redis, where placement spreads the rooms over the workers as over any nodes: a client that
reaches a worker whose room is on another is relayed there (server/relay.py), and its media goes
straight to the worker that hosts the room. Each worker also listens on 127.0.0.1 at the public
port + 1 + its index, the address the other workers relay to (`NODE_URL`).

The supervisor starts a worker again when it dies (a second later, and no more often than that),
hands SIGTERM/SIGINT (stop) and SIGHUP (reload the users) to every worker, and exits when they
have stopped. Several workers need Redis: the embedded store lives in one process.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from server.config import Config
from server.keys import load_secret
from server.store import redact_url
from server.tls import server_ssl_context

logger = logging.getLogger(__name__)

RESTART_AFTER = 1.0  # seconds between a worker's death and its new start
STOP_TIMEOUT = 20.0  # seconds a worker has to close its connections when told to stop


class WorkersError(Exception):
    """The workers cannot run as asked."""


def worker_count(value: str, cores: int | None = None) -> int:
    """`auto` (one per core) or a number of workers, at least 1."""
    if value == "auto":
        return max(1, cores if cores is not None else (os.cpu_count() or 1))
    try:
        count = int(value)
    except ValueError:
        raise WorkersError(f"--workers: 'auto' or a number, not {value!r}") from None
    if not 1 <= count <= 256:
        raise WorkersError(f"--workers: between 1 and 256, not {count}")
    return count


def worker_port(public_port: int, index: int) -> int:
    """The loopback port worker `index` listens on for the others."""
    return public_port + 1 + index


def supervise(config: Config, count: int, config_path: Path, env: Mapping[str, str]) -> int:
    """Run `count` workers until told to stop; the exit code."""
    settings = config.server
    if not settings.redis_url:
        raise WorkersError("--workers needs REDIS_URL: the workers share their rooms and logs through Redis")
    if worker_port(settings.port, count - 1) > 65535:
        raise WorkersError(f"--workers {count}: ports {settings.port + 1}..{worker_port(settings.port, count - 1)} do not fit")
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    load_secret(data_dir, env)  # made once here when it is a file, so every worker reads the same one
    server_ssl_context(settings, data_dir)  # likewise a self-signed certificate
    host = socket.gethostname()
    children: dict[int, subprocess.Popen[bytes]] = {}
    started: dict[int, float] = {}
    stopping = False

    def start(index: int) -> None:
        own = worker_port(settings.port, index)
        child_env = {
            **env,
            "NODE_ID": f"{env.get('NODE_ID') or host + '-' + str(settings.port)}-w{index}",
            "NODE_URL": f"http://127.0.0.1:{own}",
            "WORKER_INDEX": str(index),
        }
        if not env.get("PUBLIC_URL"):
            child_env["PUBLIC_URL"] = settings.own_public_url()
        command = [sys.executable, "-m", "server", "run", "--config", str(config_path), "--port", str(settings.port),
                   "--host", settings.host, "--worker-port", str(own)]
        if settings.self_signed_tls:
            command.append("--self-signed-tls")
        children[index] = subprocess.Popen(command, env=child_env)
        started[index] = time.monotonic()
        logger.info("worker started index=%d pid=%d node_port=%d", index, children[index].pid, own)

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    print(f"  {count} workers 个工作进程 on port {settings.port} (their own ports {settings.port + 1}..{worker_port(settings.port, count - 1)} "
          f"on 127.0.0.1), Redis {redact_url(settings.redis_url)}", flush=True)
    for index in range(count):
        start(index)
    while not stopping:
        time.sleep(0.2)
        for index, child in list(children.items()):
            code = child.poll()
            if code is None or stopping:
                continue
            logger.warning("worker exited index=%d pid=%d code=%s: starting it again", index, child.pid, code)
            time.sleep(max(0.0, RESTART_AFTER - (time.monotonic() - started[index])))
            if not stopping:
                start(index)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 0
