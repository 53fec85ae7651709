"""The composite export of a recorded session: one video of every track in a grid, made by a worker
process (media/composite_worker.py, niced) so the relay's loop never feels it. One export at a time
per node: a second request while one runs is refused (409) with the session it waits for.

The result lies beside the recording, `<root>/<room>/<session>/export/composite.mp4`, with
`composite.json` saying its sha256, size and when it was made. Progress is the percent of the
session's duration encoded so far.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from server.errors import RequestError
from server.recording.domain import Session

logger = logging.getLogger(__name__)

FILE: Final[str] = "composite.mp4"
SIDECAR: Final[str] = "composite.json"
STDERR_KEPT: Final[int] = 2000


class ExportBusy(RequestError):
    """This node is already exporting another session."""

    status = 409


class NothingToExport(RequestError):
    """The session has no video on disk to put in a grid."""

    status = 409


@dataclass
class ExportJob:
    """One export: where it is and how it ended."""

    session: str
    state: str  # "running", "done", "failed"
    percent: float = 0.0
    error_zh: str = ""
    error_en: str = ""
    sha256: str | None = None
    bytes: int = 0
    started_at: float = 0.0
    finished_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        """What the player's progress bar polls."""
        download = f"/recordings/{self.session}/export/download" if self.state == "done" else None
        return {"session": self.session, "state": self.state, "percent": round(self.percent, 1), "error_zh": self.error_zh,
                "error_en": self.error_en, "sha256": self.sha256, "bytes": self.bytes, "download": download,
                "started_at": self.started_at, "finished_at": self.finished_at}


def job_spec(session: Session, root: Path, labels: dict[str, str], out: Path) -> dict[str, Any]:
    """The worker's job for a session: its video tracks as tiles (in the order they joined), its audio,
    only whole segments still on disk."""
    def parts(track_id: str) -> list[dict[str, Any]]:
        track = session.tracks[track_id]
        directory = root / session.room / session.id / track_id
        return [{"path": str(directory / s.file), "start": s.start, "end": s.end if s.end is not None else s.start}
                for s in track.whole if (directory / s.file).is_file()]

    ordered = sorted(session.tracks.values(), key=lambda t: t.added_at)
    tiles = [{"label": labels.get(t.id, t.name), "parts": parts(t.id)} for t in ordered if t.kind == "video"]
    tiles = [t for t in tiles if t["parts"]]
    audio = [p for p in (parts(t.id) for t in ordered if t.kind == "audio") if p]
    return {"start": session.started_at, "end": session.ended_at, "tiles": tiles, "audio": audio, "out": str(out)}


class Exporter:
    """The node's composite exports: at most one running, the last state of each session's."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.jobs: dict[str, ExportJob] = {}
        self.running: ExportJob | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    def directory(self, session: Session) -> Path:
        """Where a session's export lies."""
        return self.root / session.room / session.id / "export"

    def status(self, session: Session) -> ExportJob | None:
        """The session's export under way or last made (read back from its sidecar after a restart)."""
        job = self.jobs.get(session.id)
        if job is not None:
            return job
        sidecar = self.directory(session) / SIDECAR
        try:
            data = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            return None
        if not (self.directory(session) / FILE).is_file():
            return None
        return ExportJob(session.id, "done", 100.0, sha256=data.get("sha256"), bytes=int(data.get("bytes", 0)),
                         started_at=float(data.get("started_at", 0)), finished_at=float(data.get("finished_at", 0)))

    def file(self, session: Session) -> Path | None:
        """The finished export of a session, if there is one."""
        job = self.status(session)
        path = self.directory(session) / FILE
        return path if job is not None and job.state == "done" and path.is_file() else None

    def start(self, session: Session, labels: dict[str, str]) -> ExportJob:
        """Start exporting `session` (the one under way if it is this one); ExportBusy if another runs."""
        if self.running is not None:
            if self.running.session == session.id:
                return self.running
            raise ExportBusy("export_busy", f"本节点正在导出另一段录像（{self.running.session}，{self.running.percent:.0f}%），"
                                            f"请稍后再试 This node is exporting another recording ({self.running.session}, "
                                            f"{self.running.percent:.0f}%); try again when it is done")
        directory = self.directory(session)
        spec = job_spec(session, self.root, labels, directory / (FILE + ".part"))
        if not spec["tiles"]:
            raise NothingToExport("nothing_to_export", "此录像没有可导出的视频（已清除或未录到画面） "
                                                       "This recording has no video on disk to export (purged, or none recorded)")
        directory.mkdir(parents=True, exist_ok=True)
        job = ExportJob(session.id, "running", started_at=time.time())
        self.jobs[session.id] = job
        self.running = job
        self._task = asyncio.get_running_loop().create_task(self._run(job, spec, directory), name=f"export:{session.id}")
        logger.info("export started session=%s tiles=%d audio=%d", session.id, len(spec["tiles"]), len(spec["audio"]))
        return job

    async def _run(self, job: ExportJob, spec: dict[str, Any], directory: Path) -> None:
        try:
            await self._work(job, spec, directory)
        except Exception as exc:  # noqa: BLE001 - a failed export says why, the server goes on
            logger.exception("export failed session=%s", job.session)
            self._fail(job, "导出失败", f"export failed: {type(exc).__name__}: {exc}")
        finally:
            job.finished_at = time.time()
            self.running = None
            self._process = None

    async def _work(self, job: ExportJob, spec: dict[str, Any], directory: Path) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "media.composite_worker", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        self._process = process
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        process.stdin.write(json.dumps(spec).encode())
        await process.stdin.drain()
        process.stdin.close()
        errors = asyncio.get_running_loop().create_task(process.stderr.read())
        error, digest = "", ""
        async for line in process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "progress" in message:
                job.percent = min(99.9, float(message["progress"]))  # 100 once the file is hashed and in place
            elif "error" in message:
                error = str(message["error"])
            elif message.get("done"):
                digest = str(message.get("sha256") or "")
        code = await process.wait()
        stderr = (await errors)[-STDERR_KEPT:].decode(errors="replace")
        part = Path(spec["out"])
        if code != 0 or not part.is_file() or not digest:
            if part.is_file():
                part.unlink()
            self._fail(job, "导出进程失败", error or f"the export worker exited with {code}: {stderr.strip()[-300:]}")
            return
        final = directory / FILE
        os.replace(part, final)
        job.sha256, job.bytes = digest, final.stat().st_size
        job.finished_at = time.time()
        (directory / SIDECAR).write_text(json.dumps({
            "session": job.session, "file": FILE, "sha256": digest, "bytes": job.bytes, "started_at": job.started_at,
            "finished_at": job.finished_at, "tiles": [t["label"] for t in spec["tiles"]], "audio_tracks": len(spec["audio"])}))
        job.state, job.percent = "done", 100.0
        logger.info("export done session=%s bytes=%d seconds=%.1f", job.session, job.bytes, job.finished_at - job.started_at)

    def _fail(self, job: ExportJob, zh: str, en: str) -> None:
        job.state, job.error_zh, job.error_en = "failed", zh, en
        logger.warning("export failed session=%s reason=%s", job.session, en)

    async def close(self) -> None:
        """Stop the export under way (its partial file is removed)."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
