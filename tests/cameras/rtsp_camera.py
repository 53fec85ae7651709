"""A test camera: GStreamer's RTSP server serving a moving test pattern, run under /usr/bin/python3.

    /usr/bin/python3 tests/cameras/rtsp_camera.py PORT [--codec h264|h265] [--user U --password P]
        [--size 320x240] [--fps 15] [--kbps 400] [--pattern ball|snow|...] [--gop FRAMES]

Serves rtsp://127.0.0.1:PORT/stream (TCP interleaved and UDP, as the client asks); prints
`ready PORT` on stdout once it listens, and serves until killed (SIGTERM, SIGKILL: a camera that
goes away). A keyframe every second (every `fps` frames), so a new viewer waits at most a second.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINES = {
    "h264": (
        "videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={w},height={h},framerate={fps}/1 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={kbps} "
        "! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96"
    ),
    "h265": (
        "videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={w},height={h},framerate={fps}/1 "
        "! x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={kbps} "
        "! rtph265pay name=pay0 pt=96"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--codec", choices=sorted(PIPELINES), default="h264")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--kbps", type=int, default=400)
    parser.add_argument("--gop", type=int, default=0, help="frames from keyframe to keyframe (default: fps)")
    parser.add_argument("--pattern", default="ball")  # "snow" fills the bitrate, as a busy scene does
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    width, height = args.size.split("x")
    pipeline = PIPELINES[args.codec].format(w=width, h=height, fps=args.fps, kbps=args.kbps, pattern=args.pattern,
                                          gop=args.gop or args.fps)
    factory.set_launch(f"( {pipeline} )")
    factory.set_shared(True)  # one encoder for every client, as a camera has
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        permissions.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/stream", factory)
    if server.attach(None) == 0:
        print("cannot listen", file=sys.stderr, flush=True)
        sys.exit(1)
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    print(f"ready {args.port}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
