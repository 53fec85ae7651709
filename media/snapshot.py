"""Snapshots: a JPEG of a publication's picture, decoded from a keyframe in a worker thread.

The relay never decodes; a snapshot takes the payloads of a cached keyframe and decodes them
off the event loop and off the relay path, only when someone asks (roll-call evidence, thumbnails).
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import Executor
from typing import cast

import av
from PIL import Image
from av.video.codeccontext import VideoCodecContext
from aiortc.codecs import depayload
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media.publication import CachedKeyframe, Publication

DECODERS = {"VP8": "libvpx", "H264": "h264"}


class SnapshotError(Exception):
    """No picture could be had: not video, no keyframe in time, or undecodable."""


def keyframe_to_jpeg(keyframe: CachedKeyframe, *, quality: int = 80, max_width: int = 640) -> bytes:
    """Depacketize and decode one keyframe, encode it as JPEG (runs in a worker thread)."""
    name = keyframe.codec.name.upper()
    decoder_name = DECODERS.get(name)
    if decoder_name is None:
        raise SnapshotError(f"cannot decode {keyframe.codec.mime_type}")
    codec = RTCRtpCodecParameters(mimeType=keyframe.codec.mime_type, clockRate=keyframe.codec.clock_rate, payloadType=96)
    try:
        data = b"".join(depayload(codec, payload) for payload in keyframe.payloads)
        # The codec is chosen by name at run time, so av cannot know it is a video decoder.
        context = cast(VideoCodecContext, av.CodecContext.create(decoder_name, "r"))
        frames = list(context.decode(av.Packet(data)))
        frames += list(context.decode(None))
    except (ValueError, av.FFmpegError) as exc:
        raise SnapshotError(f"keyframe did not decode: {exc}") from None
    if not frames:
        raise SnapshotError("keyframe produced no picture")
    image: Image.Image = frames[0].to_image()  # type: ignore[no-untyped-call]  # av leaves to_image untyped
    if image.width > max_width:
        image = image.resize((max_width, max(2, image.height * max_width // image.width)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


async def snapshot_jpeg(
    publication: Publication, *, fresh: bool = True, timeout: float = 2.0, executor: Executor | None = None
) -> bytes:
    """A JPEG of the publication's picture: from a keyframe asked for now (`fresh`) or the cached one."""
    if publication.kind != "video":
        raise SnapshotError("only video publications have pictures")
    keyframe = None if fresh else publication.keyframe
    if keyframe is None:
        try:
            keyframe = await asyncio.wait_for(publication.next_keyframe(), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            keyframe = publication.keyframe
            if keyframe is None:
                raise SnapshotError(f"no keyframe within {timeout} s") from None
    return await asyncio.get_running_loop().run_in_executor(executor, keyframe_to_jpeg, keyframe)
