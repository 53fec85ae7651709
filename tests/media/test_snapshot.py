"""Snapshots decode a keyframe off the relay path into a JPEG whose pixels are not uniform."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageStat

from media.router import RoomRouter
from media.snapshot import snapshot_jpeg
from synthetic.encoded import encode_video_loop, video_loop_track
from tests.media.conftest import publish


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_a_snapshot_of_a_live_publication_is_a_decodable_jpeg_with_a_picture(router: RoomRouter, codec: str) -> None:
    packets = encode_video_loop(codec, width=320, height=180, seconds=2)
    client, publications = await _publish(router, codec, packets)
    video = publications[0]
    jpeg = await snapshot_jpeg(video, fresh=True, timeout=5)
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG" and image.size == (320, 180)
    assert max(ImageStat.Stat(image.convert("L")).stddev) > 10, "the picture is not uniform"
    await client.close()


async def _publish(router: RoomRouter, codec: str, packets: list[bytes]):

    from tests.media.test_encoded_forwarding import _publish_preferring

    return await _publish_preferring(router, [video_loop_track(packets)], codec)
