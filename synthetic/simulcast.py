"""A simulcast publisher as a browser is one: one video m-section offering three rids, each layer
its own SSRC carrying a pre-encoded VP8 loop (1/4, 1/2 and full size), the rid header extension
on its first packets. aiortc sends one encoding per sender, so the layers are written straight
onto the connection's DTLS transport; a keyframe request restarts every layer at its keyframe.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from media.aiortc.client import on_keyframe_request
from media.aiortc.send import PermanentSource
from media.aiortc.srtp import drive
from media.packets import abs_send_time_now
from media.simulcast import RID_URI
from synthetic.encoded import encode_video_loop

RIDS = ("q", "h", "f")
# What Chromium sends from a 960x540 capture: sizes and rough bitrates, lowest first.
LAYERS = ((240, 135, 150_000), (480, 270, 450_000), (960, 540, 1_200_000))
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
RID_EXTENSION_ID = 10
RID_PACKETS = 200  # the rid goes on this many first packets of each layer (a browser stops at RRs)

def encode_layers(seconds: float = 2.0, fps: int = 30) -> list[list[bytes]]:
    """The three layers' VP8 loops (one frame per entry, a keyframe every second), encoded once."""
    return [encode_video_loop("VP8", width=w, height=h, fps=fps, seconds=seconds, bitrate=b) for w, h, b in LAYERS]


def simulcast_offer(sdp: str) -> str:
    """A browser's simulcast offer made of aiortc's: the video section announces rids and the rid
    extension, and no SSRCs (a browser lists none for simulcast)."""
    out: list[str] = []
    video = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            video = line.startswith("m=video")
        if video and line.startswith(("a=ssrc:", "a=ssrc-group:")):
            continue
        out.append(line)
        if video and line.startswith("a=mid:"):
            out.append(f"a=extmap:{RID_EXTENSION_ID} {RID_URI}")
            out.extend(f"a=rid:{rid} send" for rid in RIDS)
            out.append("a=simulcast:send " + ";".join(RIDS))
    return "\r\n".join(out) + "\r\n"


def _extension_ids(answer_sdp: str) -> dict[str, int]:
    ids: dict[str, int] = {}
    for line in answer_sdp.splitlines():
        if line.startswith("a=extmap:"):
            ident, _, uri = line[9:].partition(" ")
            ids.setdefault(uri.split(" ")[0], int(ident.split("/")[0]))
    return ids


class SimulcastLoopPublisher:
    """One publisher of three VP8 layers on one transceiver, as a browser's simulcast."""

    def __init__(self, layers: Sequence[list[bytes]], fps: int = 30) -> None:
        self.pc = RTCPeerConnection()
        self._source = PermanentSource("video")
        self.transceiver = self.pc.addTransceiver(self._source, direction="sendonly")
        self.transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"])
        self._layers = list(layers)
        self._interval = 1 / fps
        self.ssrcs = [random.getrandbits(32) for _ in self._layers]
        self._seqs = [random.getrandbits(16) for _ in self._layers]
        self._ts_bases = [random.getrandbits(32) for _ in self._layers]
        self._pictures = [random.getrandbits(15) for _ in self._layers]
        self._sent_packets = [0 for _ in self._layers]
        self._index = 0
        self._shift = 0
        self.keyframe_requests = 0
        self.frames_sent = 0
        self._task: asyncio.Task[None] | None = None
        self._map = HeaderExtensionsMap()
        self._payload_type = 96

    async def offer(self) -> str:
        """The simulcast offer to send the server."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return simulcast_offer(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        """Apply the server's answer and start sending every layer."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        ids = _extension_ids(answer_sdp)
        self._map.configure(RTCRtpParameters(headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=ident, uri=uri)
            for uri, ident in ids.items() if uri in (MID_URI, ABS_SEND_TIME_URI, RID_URI)
        ]))
        self._payload_type = next(c.payloadType or 96 for c in self.transceiver._codecs if c.mimeType == "video/VP8")
        sender = self.transceiver.sender
        for ssrc in self.ssrcs:  # keyframe requests for the layers reach the sender's handler
            sender.transport._rtp_router.register_sender(sender, ssrc)
        on_keyframe_request(sender, self.restart)
        self._task = asyncio.ensure_future(self._run())

    def restart(self) -> None:
        """Make the next frame of every layer its keyframe."""
        self.keyframe_requests += 1
        self._shift = self._index

    async def _run(self) -> None:
        start = time.monotonic()
        while True:
            delay = start + self._index * self._interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for layer in range(len(self._layers)):
                self._send_frame(layer)
            self._index += 1
            self.frames_sent += 1

    def _send_frame(self, layer: int) -> None:
        frames = self._layers[layer]
        frame = frames[(self._index - self._shift) % len(frames)]
        self._pictures[layer] = (self._pictures[layer] + 1) & 0x7FFF
        payloads = Vp8Encoder._packetize(frame, self._pictures[layer])
        timestamp = (self._ts_bases[layer] + self._index * 3000) & 0xFFFFFFFF
        transport = self.transceiver.sender.transport
        for position, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=self._payload_type, marker=int(position == len(payloads) - 1),
                sequence_number=self._seqs[layer], timestamp=timestamp, ssrc=self.ssrcs[layer], payload=payload,
            )
            packet.extensions.mid = self.transceiver.mid
            packet.extensions.abs_send_time = abs_send_time_now()
            if self._sent_packets[layer] < RID_PACKETS:
                packet.extensions.rtp_stream_id = RIDS[layer]
            self._seqs[layer] = (self._seqs[layer] + 1) & 0xFFFF
            self._sent_packets[layer] += 1
            drive(transport._send_rtp(packet.serialize(self._map)))

    async def close(self) -> None:
        """Stop sending and close the connection."""
        if self._task is not None:
            self._task.cancel()
        self._source.stop()
        await self.pc.close()
