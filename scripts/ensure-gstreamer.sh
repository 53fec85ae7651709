#!/usr/bin/env bash
# Make sure GStreamer's webrtcbin can be driven from the system Python, for the interop tests
# (tests/interop/gst_webrtc.py: a WHIP publisher and a WHEP player with webrtcbin's own RSA
# certificate), and a test RTSP camera (tests/cameras/rtsp_camera.py: GStreamer's RTSP server
# with x264enc/x265enc). As root: Debian's packages, installed when an element or binding is missing.
set -euo pipefail

PACKAGES=(
    gstreamer1.0-plugins-base   # videotestsrc, audiotestsrc, opusenc/opusdec, decodebin
    gstreamer1.0-plugins-good   # vp8enc/vp8dec, rtpvp8pay, rtpopuspay
    gstreamer1.0-plugins-bad    # webrtcbin, dtls, srtp
    gstreamer1.0-nice           # libnice's ICE elements
    python3-gi
    gir1.2-gst-plugins-bad-1.0  # GstWebRTC and GstSdp for Python
    gstreamer1.0-plugins-ugly   # x264enc (the test camera's H.264)
    gir1.2-gst-rtsp-server-1.0  # GstRtspServer for Python (the test camera)
)
ELEMENTS="webrtcbin nicesrc nicesink dtlssrtpenc srtpenc vp8enc vp8dec rtpvp8pay rtpvp8depay opusenc opusdec rtpopuspay rtpopusdepay videotestsrc audiotestsrc decodebin fakesink x264enc rtph264pay x265enc rtph265pay"

present() {
    [ -x /usr/bin/python3 ] || return 1
    /usr/bin/python3 - "$ELEMENTS" <<'EOF' 2>/dev/null
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer, GstSdp, GstWebRTC  # noqa: F401
Gst.init(None)
missing = [name for name in sys.argv[1].split() if Gst.ElementFactory.find(name) is None]
sys.exit(1 if missing else 0)
EOF
}

if present; then
    echo "ensure-gstreamer: webrtcbin and its elements are present for /usr/bin/python3"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-gstreamer: GStreamer's webrtcbin or python3-gi is missing and we are not root." >&2
    echo "ensure-gstreamer: as root run: apt-get install ${PACKAGES[*]}" >&2
    exit 1
fi

echo "ensure-gstreamer: installing ${PACKAGES[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
if ! present; then
    echo "ensure-gstreamer: installed, but webrtcbin still cannot be loaded from /usr/bin/python3" >&2
    exit 1
fi
echo "ensure-gstreamer: installed"
