"""redis-server processes a test owns: a primary it can pause, kill and restart, replicas, a sentinel."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.e2e.test_command_restart import _free_port, _wait_port


class RedisProcess:
    """One redis-server (AOF in `directory`) the test can pause, kill and start again on the same port;
    `extra` arguments make it a replica (`--replicaof`) and the like."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.port = _free_port()
        self.directory = directory
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "yes",
             "--dir", str(self.directory), "--save", "", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, self.proc)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Kill it if it still runs (the test's end)."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


class SentinelProcess:
    """One Redis Sentinel watching `primary` as `name`, quick to call it down (1 s) and fail over."""

    def __init__(self, directory: Path, name: str, primary: RedisProcess) -> None:
        self.port = _free_port()
        self.directory = directory
        self.name = name
        self.primary = primary
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {self.name} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {self.name} 1000\n"
            f"sentinel failover-timeout {self.name} 4000\n"
            f"sentinel parallel-syncs {self.name} 2\n"
        )
        self.proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
