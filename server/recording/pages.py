"""Recording pages: the recordings of a room by day, the player, segment files (with Range), a
track's download, and the integrity check. Seen only by those who may see the room."""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from media.segments import CONTAINERS, concatenate
from server.auth import AuthError, Identity
from server.command.keys import COMMAND
from server.control.room_control import control_stream
from server.duty.days import BadDay, day_of, deadline_of, parse_day, shift_day
from server.errors import RequestError, http_error
from server.pages import _me, _render, _sites
from server.recording.domain import STOP_REASONS, Session
from server.recording.keys import RECORDINGS
from server.recording.files import Verdict
from server.recording.views import control_items, directive_items, manifest, rollcall_items
from server.rollcall.keys import ROLLCALLS
from server.services import SERVICES
from server.times import format_time
from server.web_auth import signed_in

SID: Final[str] = "{sid:[0-9a-f]{12}}"
TRACK: Final[str] = "{track:[0-9a-f]{12}}"
FILE: Final[str] = r"{file:[0-9]{4}\.(?:webm|mkv)}"
TIMELINE_ROLLCALLS: Final[int] = 500
VERDICT_TEXT: Final[dict[str, tuple[str, str]]] = {
    "verified": ("校验通过", "verified"), "tampered": ("已被篡改", "tampered"), "missing": ("文件缺失", "missing"),
    "lost": ("中断丢失", "lost in an interruption"), "writing": ("正在写入", "being written"),
}


def _check_room(identity: Identity, room: str) -> None:
    try:
        identity.check_room(room)
    except AuthError as exc:
        raise http_error(exc) from None


async def _session(request: web.Request) -> tuple[Identity, Session]:
    identity = signed_in(request)
    try:
        session = await request.app[RECORDINGS].get(request.match_info["sid"])
    except RequestError as exc:
        raise http_error(exc) from None
    _check_room(identity, session.room)
    return identity, session


def _zone(request: web.Request) -> str:
    return request.app[SERVICES].config.city.timezone


def _local(request: web.Request, when: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return format_time(when, _zone(request), fmt)


async def list_page(request: web.Request) -> web.Response:
    """`GET /recordings?room=&day=`: the rooms this identity may see, and one room's recordings of a day."""
    identity = signed_in(request)
    services = request.app[SERVICES]
    rooms = [r for r in await services.store.list_rooms() if not identity.rooms or r.id in identity.rooms]
    if not rooms:
        raise web.HTTPForbidden(text="forbidden: no room to see\n")
    import zoneinfo

    zone = zoneinfo.ZoneInfo(_zone(request))
    room = request.query.get("room") or rooms[0].id
    _check_room(identity, room)
    day = request.query.get("day") or day_of(dt.datetime.now().timestamp(), zone)
    try:
        parse_day(day)
    except BadDay as exc:
        raise web.HTTPBadRequest(text=f"bad_day: {exc}\n") from None
    start, end = deadline_of(day, "00:00", zone), deadline_of(shift_day(day, 1), "00:00", zone)
    service = request.app[RECORDINGS]
    sessions = await service.sessions(room=room, start=start, end=end)
    rows = [{
        "id": s.id, "start": _local(request, s.started_at, "%H:%M:%S"), "end": _local(request, s.ended_at, "%H:%M:%S"),
        "minutes": round((s.ended_at - s.started_at) / 60, 1), "open": s.open, "tracks": len(s.tracks),
        "sites": sorted({t.site for t in s.tracks.values() if t.site}), "bytes": s.bytes, "lost": len(s.lost),
        "stop": STOP_REASONS.get(s.stop_reason or "", (s.stop_reason or "", ""))[0], "purged": s.purged_at is not None,
        "reasons": s.reasons, "by": s.by,
    } for s in sessions]
    state = service.state(room)
    return _render(request, "recordings.html", me=_me(identity), sites=_sites(services), rooms=rooms, room=room, day=day,
                   previous=shift_day(day, -1), next=shift_day(day, 1), sessions=rows, live=state.recording,
                   token=request.query.get("token", ""))


async def timeline(request: web.Request, session: Session) -> list[dict[str, Any]]:
    """The room's events while the session recorded, oldest first."""
    services = request.app[SERVICES]
    names = _sites(services)
    start, end = session.started_at - 1, session.ended_at + 1
    after = f"{max(0, int(start * 1000) - 1)}-0"
    control = []
    while True:
        page = await services.store.read_events(control_stream(session.room), after=after, limit=1000)
        control += [e for e in page if e.at <= end]
        if len(page) < 1000 or page[-1].at > end:
            break
        after = page[-1].id
    rollcalls = await request.app[ROLLCALLS].history(limit=TIMELINE_ROLLCALLS)
    items = [*control_items(control, start, end), *rollcall_items(rollcalls, session.room, start, end, names),
             *directive_items(request.app[COMMAND].service.ledger.directives.values(), start, end, names)]
    for item in items:
        item["local"] = _local(request, float(item["at"]), "%H:%M:%S")
    return sorted(items, key=lambda item: float(item["at"]))


async def player_page(request: web.Request) -> web.Response:
    """`GET /recordings/{sid}`: the tracks side by side in sync, the room's events on a timeline."""
    identity, session = await _session(request)
    services = request.app[SERVICES]
    data = {"manifest": manifest(session, _sites(services)), "timeline": await timeline(request, session),
            "tz": _zone(request), "token": request.query.get("token", ""), "t": request.query.get("t")}
    record = await services.store.get_room(session.room)
    room = {"id": session.room, "name_zh": record.name_zh if record else session.room, "name_en": record.name_en if record else ""}
    return _render(request, "recording_player.html", me=_me(identity), sites=_sites(services), room=room, session=session,
                   started=_local(request, session.started_at), ended=_local(request, session.ended_at),
                   stop=STOP_REASONS.get(session.stop_reason or "", (session.stop_reason or "", "")), page_data=data,
                   token=request.query.get("token", ""))


async def manifest_json(request: web.Request) -> web.Response:
    """`GET /recordings/{sid}.json`: the manifest and the timeline."""
    _, session = await _session(request)
    data = manifest(session, _sites(request.app[SERVICES]))
    data["timeline"] = await timeline(request, session)
    return web.json_response(data)


async def segment_file(request: web.Request) -> web.StreamResponse:
    """`GET /recordings/{sid}/files/{track}/{file}`: one whole segment (Range requests answered)."""
    _, session = await _session(request)
    track = session.tracks.get(request.match_info["track"])
    name = request.match_info["file"]
    segment = next((s for s in track.segments if s.file == name), None) if track is not None else None
    if track is None or segment is None or segment.state != "whole":
        raise web.HTTPNotFound(text="unknown_segment: no such whole segment\n")
    path = request.app[RECORDINGS].path_of(session, track.id, name)
    if not path.is_file():
        raise web.HTTPNotFound(text="segment_missing: the file is not on disk (purged?)\n")
    kind = "audio" if track.kind == "audio" else "video"
    mime = f"{kind}/webm" if name.endswith(".webm") else f"{kind}/x-matroska"
    return web.FileResponse(path, headers={"Content-Type": mime, "Cache-Control": "private, max-age=86400"})


async def download(request: web.Request) -> web.StreamResponse:
    """`GET /recordings/{sid}/tracks/{track}/download`: the track's whole segments remuxed into one file."""
    _, session = await _session(request)
    track = session.tracks.get(request.match_info["track"])
    if track is None or not track.whole:
        raise web.HTTPNotFound(text="unknown_track: no such track, or nothing of it was recorded whole\n")
    service = request.app[RECORDINGS]
    whole = [s for s in track.whole if service.path_of(session, track.id, s.file).is_file()]
    if not whole:
        raise web.HTTPNotFound(text="segment_missing: the files are not on disk (purged?)\n")
    ext = CONTAINERS.get(track.codec.upper(), ("webm", "", ""))[0]
    first = whole[0].start
    spool = Path(tempfile.mkdtemp(prefix="recording-download-"))
    out = spool / f"track.{ext}"
    parts = [(service.path_of(session, track.id, s.file), s.start - first) for s in whole]
    await asyncio.get_running_loop().run_in_executor(service.executor, concatenate, parts, out)
    stamp = _local(request, first, "%Y%m%d-%H%M%S")
    response = web.FileResponse(out, headers={
        "Content-Disposition": f'attachment; filename="{session.room}-{stamp}-{track.site or track.owner}-{track.kind}.{ext}"'})
    request.app[RECORDINGS].services.background.spawn(_remove_later(spool), name="recording-download-cleanup")
    return response


async def _remove_later(spool: Path, after: float = 600.0) -> None:
    import shutil

    await asyncio.sleep(after)
    shutil.rmtree(spool, ignore_errors=True)


def _verdict_row(verdict: Verdict, session: Session) -> dict[str, Any]:
    track = session.tracks.get(verdict.track)
    zh, en = VERDICT_TEXT.get(verdict.status, (verdict.status, verdict.status))
    return {"track": verdict.track, "name": track.name if track else "", "site": track.site if track else "",
            "kind": track.kind if track else "", "index": verdict.index, "file": verdict.file, "status": verdict.status,
            "zh": zh, "en": en, "sha256": verdict.sha256, "actual": verdict.actual}


async def verify_page(request: web.Request) -> web.Response:
    """`GET /recordings/{sid}/verify[?format=json]`: every segment against the manifest's hash."""
    identity, session = await _session(request)
    verdicts = await request.app[RECORDINGS].verify_async(session)
    rows = [_verdict_row(v, session) for v in verdicts]
    tampered = [r for r in rows if r["status"] in ("tampered", "missing")]
    verdict = "tampered" if tampered else "verified"
    if request.query.get("format") == "json":
        return web.json_response({"session": session.id, "verdict": verdict, "segments": rows})
    services = request.app[SERVICES]
    return _render(request, "recording_verify.html", me=_me(identity), sites=_sites(services), session=session, rows=rows,
                   verdict=verdict, started=_local(request, session.started_at), token=request.query.get("token", ""))


def _labels(request: web.Request, session: Session) -> dict[str, str]:
    """Each track's tile label: its site's name, Chinese then English, else the publisher's name."""
    names = _sites(request.app[SERVICES])
    labels = {}
    for track in session.tracks.values():
        site = names.get(track.site) or {}
        label = " ".join(str(n) for n in (site.get("name_zh"), site.get("name_en")) if n)
        labels[track.id] = label or track.name or track.owner
    return labels


async def export_start(request: web.Request) -> web.Response:
    """`POST /recordings/{sid}/export`: start the composite export (202), or say why not (409: another runs)."""
    _, session = await _session(request)
    try:
        job = request.app[RECORDINGS].exporter.start(session, _labels(request, session))
    except RequestError as exc:
        raise http_error(exc) from None
    return web.json_response(job.as_json(), status=202)


async def export_status(request: web.Request) -> web.Response:
    """`GET /recordings/{sid}/export.json`: the export's state and percent (what the progress bar polls)."""
    _, session = await _session(request)
    job = request.app[RECORDINGS].exporter.status(session)
    data = job.as_json() if job is not None else {"session": session.id, "state": "none", "percent": 0.0, "download": None}
    return web.json_response(data, headers={"Cache-Control": "no-store"})


async def export_download(request: web.Request) -> web.StreamResponse:
    """`GET /recordings/{sid}/export/download`: the composite video, once made."""
    _, session = await _session(request)
    exporter = request.app[RECORDINGS].exporter
    path = exporter.file(session)
    if path is None:
        raise web.HTTPNotFound(text="no_export: this recording has not been exported (or the export is not done)\n")
    job = exporter.status(session)
    stamp = _local(request, session.started_at, "%Y%m%d-%H%M%S")
    return web.FileResponse(path, headers={
        "Content-Type": "video/mp4", "Content-Disposition": f'attachment; filename="{session.room}-{stamp}-composite.mp4"',
        "X-Content-SHA256": (job.sha256 or "") if job is not None else ""})


def add_routes(app: web.Application) -> None:
    """Register the recording pages."""
    r = app.router
    r.add_get("/recordings", list_page)
    r.add_get(f"/recordings/{SID}.json", manifest_json)
    r.add_get(f"/recordings/{SID}/verify", verify_page)
    r.add_get(f"/recordings/{SID}/files/{TRACK}/{FILE}", segment_file)
    r.add_get(f"/recordings/{SID}/tracks/{TRACK}/download", download)
    r.add_post(f"/recordings/{SID}/export", export_start)
    r.add_get(f"/recordings/{SID}/export.json", export_status)
    r.add_get(f"/recordings/{SID}/export/download", export_download)
    r.add_get(f"/recordings/{SID}", player_page)
