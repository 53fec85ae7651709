"""The export worker process: `python -m media.composite_worker` reads one job (JSON) on stdin, writes
the composite (media/composite.py) and reports on stdout, one JSON object a line: `{"progress": p}`
as it goes, then `{"done": true, "sha256": ..., "bytes": ...}` (the file hashed here too, not in the
server) or `{"error": "..."}`. It runs niced, so the relay keeps the CPU it needs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from media.composite import Job, Part, Tile, export
from media.segments import sha256_file

NICENESS = 10


def job_of(data: dict[str, Any]) -> Job:
    """A job from its JSON form."""
    def parts(items: list[dict[str, Any]]) -> list[Part]:
        return [Part(str(p["path"]), float(p["start"]), float(p["end"])) for p in items]

    return Job(start=float(data["start"]), end=float(data["end"]), out=str(data["out"]),
               tiles=[Tile(str(t["label"]), parts(t["parts"])) for t in data["tiles"]],
               audio=[parts(a) for a in data.get("audio", [])], threads=int(data.get("threads", 1)))


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    """Run the job read on stdin."""
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    try:
        job = job_of(json.loads(sys.stdin.read()))
        export(job, lambda p: _say({"progress": round(p, 1)}))
    except Exception as exc:  # noqa: BLE001 - whatever it was, the server shows it
        _say({"error": f"{type(exc).__name__}: {exc}"[:500]})
        sys.exit(1)
    _say({"done": True, "sha256": sha256_file(Path(job.out)), "bytes": os.path.getsize(job.out)})


if __name__ == "__main__":
    main()
