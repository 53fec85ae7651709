"""Give freed memory back to the system after connections end.

A peer connection's C-side state (OpenSSL DTLS contexts and certificates, libsrtp sessions, socket
buffers' bookkeeping) is allocated with glibc's malloc; after a wave of connections ends, the freed
blocks stay in the process's heap and its resident size never falls back. `malloc_trim(0)` returns
free heap pages to the system. It walks the heap, so it runs at most once per refresh interval and
only after connections have ended.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)


class MemoryReleaser:
    """Calls glibc's malloc_trim when connections have ended since it last did (a no-op elsewhere)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        self._trim = getattr(libc, "malloc_trim", None)
        self._seen = 0

    def release(self) -> bool:
        """Return free heap memory to the system now; False where glibc's malloc_trim is missing."""
        if self._trim is None:
            return False
        self._trim(0)
        return True

    def after(self, ended: int) -> None:
        """Release if the count of ended connections moved since the last call."""
        if ended != self._seen:
            self._seen = ended
            self.release()
