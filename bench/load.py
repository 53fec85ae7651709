"""The load tool: N publishers of a pre-encoded 640x360 VP8 loop, M lean subscribers of all of
them, against a benchmark server (`bench.server`) in another process. Prints one JSON object.

Subscribers count packets and complete frames from plaintext RTP headers at the socket
(`tap_datagrams`), NACK gaps, and decrypt only retransmissions: no jitter buffer,
no depacketizing, no decoding.

Two processes, so that subscribers setting up never starve the publishers' pacing:

    python -m bench.load --role publish --publishers 4          # prints {"pid", "publications"}
    python -m bench.load --publishers 4 --subscribers 8 --publications ID,ID,... --load-pids PID
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import time
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpReceiverInfo, RtcpRrPacket, RtcpRtpfbPacket

from media.aiortc.client import (
    inject_send_loss,
    on_keyframe_request,
    rtx_payload_types,
    rtx_ssrc_map,
    send_rtcp,
    tap_datagrams,
    tap_receiver,
    unprotect_rtp,
)
from media.aiortc.ice import SOCKET_RECEIVE_BUFFER, enlarge_buffers_when_gathered
from media.aiortc.receive import tap_sender_reports
from media.packets import DelayHistogram
from synthetic.encoded import encode_video_loop
from synthetic.load import KeyframeLoopTrack, LeanCounter

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def udp_receive_buffer_errors() -> int:
    """The kernel's count of UDP datagrams dropped for a full receive buffer (whole machine)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST JSON, return JSON."""
    async with session.post(url, json=body) as response:
        response.raise_for_status()
        return await response.json()  # type: ignore[no-any-return]


async def start_publisher(
    session: aiohttp.ClientSession, url: str, name: str, packets: list[bytes], loss: float = 0.0
) -> tuple[RTCPeerConnection, KeyframeLoopTrack, list[str]]:
    """One VP8 publisher whose loop restarts at its keyframe on PLI; `loss` drops that share of its RTP."""
    pc = RTCPeerConnection()
    enlarge_buffers_when_gathered(pc)
    track = KeyframeLoopTrack(packets)
    transceiver = pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")]
    )
    on_keyframe_request(transceiver.sender, track.restart)
    await pc.setLocalDescription(await pc.createOffer())
    reply = await post(session, f"{url}/publish", {"name": name, "sdp": pc.localDescription.sdp})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
    if loss:
        rng = random.Random(name).random
        inject_send_loss(pc, loss, rng)
    return pc, track, reply["publications"]


class LeanSubscriber:
    """One subscriber connection receiving every publication, counting at the socket."""

    def __init__(self, name: str, loss: float = 0.0) -> None:
        self.name = name
        self.loss = loss
        self._random = random.Random(name)
        self._tapped = False
        self.pc = RTCPeerConnection()
        enlarge_buffers_when_gathered(self.pc)
        self.untapped_packets = 0  # RTP that reached aiortc's receiver, i.e. missed the socket tap
        self.counter: LeanCounter | None = None
        self.answered_at = 0.0
        self.nacks = 0
        # Per media SSRC: the middle 32 bits of the last sender report's NTP time, and when it came.
        self._last_report: dict[int, tuple[int, float]] = {}
        self._reports: asyncio.Task[None] | None = None
        self._tapped_receivers: set[object] = set()

    async def start(self, session: aiohttp.ClientSession, url: str, publications: list[str]) -> None:
        """Ask for an offer, answer it, tap the socket once ICE connects."""
        offer = await post(session, f"{url}/subscribe", {"name": self.name, "publications": publications})
        await self._apply(offer["sdp"])
        self.counter = LeanCounter(
            rtx_payload_types=rtx_payload_types(self.pc),
            on_gap=self._nack,
            unwrap=lambda d: unprotect_rtp(self.pc, d),
            rtx_map=lambda: rtx_ssrc_map(self.pc),
        )

        @self.pc.on("iceconnectionstatechange")
        def tap() -> None:
            if self.pc.iceConnectionState in ("completed", "connected"):
                self._tap()

        while True:  # the server's first offer carries a few tracks; the rest follow each answer
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            self.answered_at = self.answered_at or time.monotonic()
            reply = await post(session, f"{url}/answer", {"name": self.name, "sdp": self.pc.localDescription.sdp})
            if "sdp" not in reply:
                break
            await self._apply(reply["sdp"])
        self._reports = asyncio.ensure_future(self._report_loop())

    async def _apply(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver in self._tapped_receivers:
                continue
            self._tapped_receivers.add(transceiver.receiver)
            # Nothing decodes; the first packet through aiortc's path installs the socket tap.
            tap_receiver(transceiver.receiver, self._untapped, repair=False)
            tap_sender_reports(transceiver.receiver, self._on_sender_report)

    async def close(self) -> None:
        """Stop reporting and close the connection."""
        if self._reports is not None:
            self._reports.cancel()
        await self.pc.close()

    def _on_sender_report(self, ssrc: int, ntp: int, _rtp: int) -> None:
        self._last_report[ssrc] = ((ntp >> 16) & 0xFFFFFFFF, time.monotonic())

    async def _report_loop(self) -> None:
        # Receiver reports as a browser sends them (the socket tap keeps aiortc's receivers from
        # seeing the media, so they would report nothing): the server's round trip comes from
        # their LSR/DLSR, and with it the server tells a NACK that crossed a packet from a loss.
        while True:
            await asyncio.sleep(0.5 + self._random.random())
            if self.counter is None:
                continue
            now = time.monotonic()
            blocks = [
                RtcpReceiverInfo(
                    ssrc=ssrc, fraction_lost=0, packets_lost=len(stream.lost_seqs), highest_sequence=stream.highest_seq,
                    jitter=0, lsr=self._last_report[ssrc][0], dlsr=int((now - self._last_report[ssrc][1]) * 65536),
                )
                for ssrc, stream in list(self.counter.streams.items())
                if stream.highest_seq is not None and ssrc in self._last_report
            ]
            for first in range(0, len(blocks), 31):  # five bits of report count
                send_rtcp(self.pc, bytes(RtcpRrPacket(ssrc=1, reports=blocks[first : first + 31])))

    def _untapped(self, _packet: object, _arrival: int) -> None:
        self.untapped_packets += 1
        self._tap()

    def _tap(self) -> None:
        # Only once a socket is really tapped: marking it done before (no socket gathered or
        # nominated yet) left one subscriber per run counting nothing for the whole run.
        if not self._tapped and self.counter is not None:
            tapped = tap_datagrams(self.pc, self._on_datagram, receive_buffer=SOCKET_RECEIVE_BUFFER)
            self._tapped = tapped > 0

    def _on_datagram(self, data: bytes) -> None:
        if self.loss and self._random.random() < self.loss:
            return  # injected loss, to show NACK/RTX at work
        self.counter.on_datagram(data)  # type: ignore[union-attr]

    def _nack(self, ssrc: int, seqs: list[int]) -> None:
        # One NACK per run of sequence numbers that does not wrap (aiortc packs ascending lists).
        runs: list[list[int]] = [[]]
        for seq in seqs:
            if runs[-1] and seq < runs[-1][-1]:
                runs.append([])
            runs[-1].append(seq)
        for run in runs:
            self.nacks += 1
            send_rtcp(self.pc, bytes(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=ssrc, lost=run)))


async def publish(args: argparse.Namespace) -> None:
    """Publisher role: start the publishers, print their publication ids, run until stdin closes."""
    packets = encode_video_loop("VP8", width=640, height=360, fps=30, seconds=2, bitrate=1_000_000)
    async with aiohttp.ClientSession() as session:
        publishers = [
            await start_publisher(session, args.url, f"pub{i}", packets, args.publisher_loss) for i in range(args.publishers)
        ]
    loop = asyncio.get_running_loop()
    # The subscriber process pauses the publishers (SIGUSR1) to measure the server's idle cost
    # with every connection up, and resumes them (SIGUSR2).
    loop.add_signal_handler(signal.SIGUSR1, lambda: [track.pause() for _pc, track, _ids in publishers])
    loop.add_signal_handler(signal.SIGUSR2, lambda: [track.resume() for _pc, track, _ids in publishers])
    print(json.dumps({"pid": os.getpid(), "publications": [p for _pc, _t, ids in publishers for p in ids]}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(json.dumps({"keyframe_requests": sum(track.keyframe_requests for _pc, track, _ids in publishers)}), flush=True)
    for pc, _track, _ids in publishers:
        await pc.close()


async def drained(session: aiohttp.ClientSession, url: str, limit: float = 15.0) -> None:
    """Wait until the server has forwarded what was queued (its received count stops moving)."""
    await asyncio.sleep(0.5)
    deadline = time.monotonic() + limit
    last = None
    while time.monotonic() < deadline:
        count = (await (await session.get(f"{url}/stats")).json()).get("packets_received")
        if count is None:  # MediaRelay: no counters; give its decoders and encoders time
            await asyncio.sleep(1.5)
            return
        if count == last:
            return
        last = count
        await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Subscriber role: subscribe to every publication, measure, report."""
    publication_ids = args.publications.split(",")
    others = [int(p) for p in args.load_pids.split(",") if p]  # the publisher process(es): load tool CPU too
    async with aiohttp.ClientSession() as session:
        server = await (await session.get(f"{args.url}/stats")).json()
        pid = server["pid"]
        await asyncio.sleep(2)
        rss_before = rss_bytes(pid)
        subscribers = [LeanSubscriber(f"sub{j}", args.loss) for j in range(args.subscribers)]
        for subscriber in subscribers:  # one after another, like seats filling a room
            await subscriber.start(session, args.url, publication_ids)
        await asyncio.sleep(args.warmup)
        rss_after = rss_bytes(pid)
        stats_before = await (await session.get(f"{args.url}/stats")).json()
        own = [os.getpid(), *others]
        drops0 = udp_receive_buffer_errors()
        server_cpu0, own_cpu0, t0 = cpu_seconds(pid), sum(map(cpu_seconds, own)), time.monotonic()
        await asyncio.sleep(args.seconds)
        server_cpu1, own_cpu1, t1 = cpu_seconds(pid), sum(map(cpu_seconds, own)), time.monotonic()
        udp_drops = udp_receive_buffer_errors() - drops0
        stats_after = await (await session.get(f"{args.url}/stats")).json()
        # Idle: the same connections, no media (publishers paused): the fixed per-connection cost.
        idle_cpu = idle_elapsed = 0.0
        if args.idle_seconds > 0 and others:
            for publisher_pid in others:
                os.kill(publisher_pid, signal.SIGUSR1)
            await drained(session, args.url)
            idle0, i0 = cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(args.idle_seconds)
            idle_cpu, idle_elapsed = cpu_seconds(pid) - idle0, time.monotonic() - i0
        for subscriber in subscribers:
            await subscriber.close()
    streams = args.publishers * args.subscribers
    elapsed = t1 - t0
    complete = expected = 0
    first_frames: list[float] = []
    retransmitted = nacks = 0
    for subscriber in subscribers:
        assert subscriber.counter is not None
        subscriber.counter.finish()
        retransmitted += subscriber.counter.retransmissions
        nacks += subscriber.nacks
        for stream in subscriber.counter.streams.values():
            complete += stream.frames_complete
            expected += stream.frames_expected
            if stream.first_at is not None:
                first_frames.append(stream.first_at - subscriber.answered_at)
    ratios = sorted(
        stream.frames_complete / stream.frames_expected
        for s in subscribers if s.counter is not None
        for stream in s.counter.streams.values() if stream.frames_expected
    )
    received_streams = sum(len(s.counter.streams) for s in subscribers if s.counter is not None)
    silent = [s for s in subscribers if s.counter is None or not s.counter.streams]
    gross = (server_cpu1 - server_cpu0) / elapsed  # CPU seconds per second
    idle = idle_cpu / idle_elapsed if idle_elapsed else None
    histogram = DelayHistogram()
    if "delay_counts" in stats_after:
        histogram.counts = [a - b for a, b in zip(stats_after["delay_counts"], stats_before["delay_counts"])]
        histogram.count = sum(histogram.counts)
    return {
        "publishers": args.publishers,
        "subscribers": args.subscribers,
        "streams": streams,
        "streams_receiving": received_streams,
        "seconds": round(elapsed, 1),
        "server_cpu_ms_per_stream_s": round((server_cpu1 - server_cpu0) * 1000 / (streams * elapsed), 3),
        "server_cpu_percent": round((server_cpu1 - server_cpu0) * 100 / elapsed, 1),
        "server_idle_cpu_percent": round(idle * 100, 1) if idle is not None else None,
        "server_marginal_ms_per_stream_s": round((gross - idle) * 1000 / streams, 3) if idle is not None else None,
        "load_cpu_ms_per_stream_s": round((own_cpu1 - own_cpu0) * 1000 / (streams * elapsed), 3),
        "load_cpu_percent": round((own_cpu1 - own_cpu0) * 100 / elapsed, 1),
        "frames_delivered": complete,
        "frames_sent": expected,
        "delivered_ratio": round(complete / expected, 5) if expected else 0.0,
        "delay_p50_ms": round(histogram.quantile(0.5) * 1000, 3) if histogram.count else None,
        "delay_p99_ms": round(histogram.quantile(0.99) * 1000, 3) if histogram.count else None,
        "first_frame_p50_ms": round(statistics.median(first_frames) * 1000, 1) if first_frames else None,
        "first_frame_max_ms": round(max(first_frames) * 1000, 1) if first_frames else None,
        "server_rss_mb": round(rss_after / 1e6, 1),
        "server_kb_per_subscription": round((rss_after - rss_before) / 1024 / max(1, streams), 1),
        "worst_stream_ratios": [round(r, 3) for r in ratios[:5]],
        "streams_below_99": sum(1 for r in ratios if r < 0.99),
        "server_retransmissions": stats_after.get("retransmissions", 0) - stats_before.get("retransmissions", 0),
        "server_retransmissions_skipped": (
            stats_after.get("retransmissions_skipped", 0) - stats_before.get("retransmissions_skipped", 0)
        ),
        "server_keyframe_requests": stats_after.get("keyframe_requests", 0) - stats_before.get("keyframe_requests", 0),
        "nacks_sent": nacks,
        "udp_rcvbuf_drops": udp_drops,
        "upstream_nacks": stats_after.get("upstream_nacks", 0) - stats_before.get("upstream_nacks", 0),
        "upstream_retransmissions": (
            stats_after.get("upstream_retransmissions", 0) - stats_before.get("upstream_retransmissions", 0)
        ),
        "silent_subscribers": [f"{s.name} untapped={s.untapped_packets}" for s in silent],
        "retransmissions_received": retransmitted,
        **_recording_figures(stats_before, stats_after, elapsed),
    }


def _recording_figures(before: dict[str, Any], after: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """What a recording server (bench.server --record) wrote and its writer thread cost in the window."""
    if "recorded_tracks" not in after:
        return {}
    tracks = max(1, after["recorded_tracks"])
    return {
        "recorded_tracks": after["recorded_tracks"],
        "recorded_kbit_s_per_track": round((after["recorded_bytes"] - before["recorded_bytes"]) * 8 / 1000 / elapsed / tracks, 1),
        "recorded_fps_per_track": round((after["recorded_frames"] - before["recorded_frames"]) / elapsed / tracks, 1),
        "recorder_cpu_ms_per_track_s": round((after["recorder_cpu_seconds"] - before["recorder_cpu_seconds"]) * 1000 / elapsed / tracks, 3),
        "recorder_dropped": after["recorder_dropped"], "recorder_lost": after["recorder_lost"],
    }


def main() -> None:
    """Run one load and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8701")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=4)
    parser.add_argument("--idle-seconds", type=float, default=8, help="then measure the server with publishers paused")
    parser.add_argument("--loss", type=float, default=0.0, help="drop this fraction of received RTP in the load tool")
    parser.add_argument("--publisher-loss", type=float, default=0.0, help="publish role: drop this fraction of sent RTP")
    parser.add_argument("--role", choices=("publish", "subscribe"), default="subscribe")
    parser.add_argument("--publications", default="", help="subscribe role: comma-separated publication ids")
    parser.add_argument("--load-pids", default="", help="subscribe role: the publisher process ids, for the load CPU")
    args = parser.parse_args()
    if args.role == "publish":
        asyncio.run(publish(args))
    else:
        print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
