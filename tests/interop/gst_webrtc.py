"""GStreamer's webrtcbin as a WHIP publisher or a WHEP player, with its default (RSA-2048) DTLS certificate.

Run with the system Python and Debian's GStreamer (python3-gi, gir1.2-gst-plugins-bad-1.0):

    /usr/bin/python3 tests/interop/gst_webrtc.py publish URL TOKEN SECONDS
    /usr/bin/python3 tests/interop/gst_webrtc.py play URL TOKEN SECONDS

`publish` sends a VP8 test pattern and an Opus tone; `play` receives video and audio and counts
the decoded video frames. The offer goes out once ICE gathering is complete (no trickle), as
gst-plugins-rs' whipsink does by default. The last line printed is a JSON summary:
{"connected": bool, "frames": decoded video frames, "recent": frames in the last 5 s, ...}.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PUBLISH = """
videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 ! videoconvert
  ! vp8enc deadline=1 target-bitrate=300000 keyframe-max-dist=30 ! rtpvp8pay pt=96
  ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! w.
audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111
  ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w.
webrtcbin name=w bundle-policy=max-bundle
"""
RECENT = 5.0
RETRY_FOR = 20.0  # a player offers again while the server answers 404 (nobody publishing yet)


class Session:
    """One webrtcbin negotiated with a WHIP/WHEP endpoint, run for a while."""

    def __init__(self, mode: str, url: str, token: str, seconds: float) -> None:
        self.mode, self.url, self.token, self.seconds = mode, url, token, seconds
        self.loop = GLib.MainLoop()
        self.frames: list[float] = []
        self.connected = False
        self.error: str | None = None
        self.status: int | None = None
        self.location: str | None = None
        self.retry_until = time.monotonic() + RETRY_FOR
        if mode == "publish":
            self.pipeline = Gst.parse_launch(PUBLISH)
        else:
            self.pipeline = Gst.Pipeline.new("player")
            self.pipeline.add(Gst.ElementFactory.make("webrtcbin", "w"))
        self.webrtc = self.pipeline.get_by_name("w")
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        # The relay does UDP only. Keep the agent referenced: PyGObject would drop webrtcbin's own.
        self.ice = self.webrtc.get_property("ice-agent")
        self.ice.set_property("ice-tcp", False)
        if mode == "play":
            for caps in ("application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
                         "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000"):
                self.webrtc.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY, Gst.Caps.from_string(caps))
            self.webrtc.connect("pad-added", self.on_pad)
        self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering)
        self.webrtc.connect("notify::connection-state", self.on_connection_state)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)

    def run(self) -> dict[str, object]:
        self.pipeline.set_state(Gst.State.PLAYING)
        GLib.timeout_add(int(self.seconds * 1000), self.loop.quit)
        self.loop.run()
        now = time.monotonic()
        state = self.webrtc.get_property("connection-state")
        self.pipeline.set_state(Gst.State.NULL)
        self.delete()
        return {
            "mode": self.mode, "status": self.status, "connected": self.connected,
            "connection_state": state.value_nick, "frames": len(self.frames),
            "recent": sum(1 for t in self.frames if now - t <= RECENT), "error": self.error,
        }

    def on_negotiation_needed(self, element: Gst.Element) -> None:
        promise = Gst.Promise.new_with_change_func(self.on_offer, element, None)
        element.emit("create-offer", None, promise)

    def on_offer(self, promise: Gst.Promise, element: Gst.Element, _data: object) -> None:
        reply = promise.get_reply()  # kept while the offer is used: get_value() does not copy it
        offer = reply.get_value("offer")
        element.emit("set-local-description", offer, Gst.Promise.new())

    def on_gathering(self, element: Gst.Element, _spec: object) -> None:
        if element.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self.post_offer)

    def post_offer(self) -> bool:
        sdp = self.webrtc.get_property("local-description").sdp.as_text()
        request = urllib.request.Request(self.url, data=sdp.encode(), method="POST", headers={
            "Content-Type": "application/sdp", "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                self.status = response.status
                self.location = response.headers.get("Location")
                answer = response.read().decode()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and self.mode == "play" and time.monotonic() < self.retry_until:
                GLib.timeout_add(250, self.post_offer)  # not publishing yet: the publisher is another process
                return False
            self.status, self.error = exc.code, f"POST answered {exc.code}: {exc.read().decode(errors='replace')}"
            self.loop.quit()
            return False
        except OSError as exc:
            self.error = f"POST failed: {exc}"
            self.loop.quit()
            return False
        _, message = GstSdp.SDPMessage.new_from_text(answer)
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        self.webrtc.emit("set-remote-description", description, Gst.Promise.new())
        return False

    def delete(self) -> None:
        """End the WHIP/WHEP session (DELETE its resource), as a well-behaved client does."""
        if self.location is None:
            return
        resource = urllib.parse.urljoin(self.url, self.location)
        request = urllib.request.Request(resource, method="DELETE", headers={"Authorization": f"Bearer {self.token}"})
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except OSError as exc:
            print(f"DELETE {resource} failed: {exc}", file=sys.stderr)

    def on_connection_state(self, element: Gst.Element, _spec: object) -> None:
        if element.get_property("connection-state") == GstWebRTC.WebRTCPeerConnectionState.CONNECTED:
            self.connected = True

    def on_pad(self, _element: Gst.Element, pad: Gst.Pad) -> None:
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        decode = Gst.ElementFactory.make("decodebin")
        decode.connect("pad-added", self.on_decoded_pad)
        self.pipeline.add(decode)
        decode.sync_state_with_parent()
        pad.link(decode.get_static_pad("sink"))

    def on_decoded_pad(self, _decode: Gst.Element, pad: Gst.Pad) -> None:
        video = pad.get_current_caps().to_string().startswith("video/")
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)
        if video:
            sink.set_property("signal-handoffs", True)
            sink.connect("handoff", lambda *_: self.frames.append(time.monotonic()))
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

    def on_error(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        error, debug = message.parse_error()
        self.error = f"{error.message} ({debug})"
        self.loop.quit()


def main(argv: list[str]) -> int:
    mode, url, token, seconds = argv[0], argv[1], argv[2], float(argv[3])
    Gst.init(None)
    summary = Session(mode, url, token, seconds).run()
    print(json.dumps(summary), flush=True)
    return 0 if summary["connected"] and not summary["error"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
