"""Records a fold could not use: each logged once (WARNING) and counted, so one bad record never stops a server."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class SkippedRecords:
    """The records of one log that were skipped, counted by reason; `/metrics` reads `by_reason`."""

    def __init__(self, log: str) -> None:
        self.log = log
        self.by_reason: dict[str, int] = {}
        # Logs are folded again on some reads (closed roll-calls, the schedules page): count each record once.
        self._seen: set[str] = set()

    @property
    def total(self) -> int:
        """How many records were skipped."""
        return sum(self.by_reason.values())

    def add(self, record: str, reason: str, detail: str = "") -> None:
        """Count and log one skipped record (a repeat of the same record is neither counted nor logged)."""
        if record in self._seen:
            return
        self._seen.add(record)
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        logger.warning("record skipped log=%s record=%s reason=%s detail=%s", self.log, record, reason, detail[:300])
