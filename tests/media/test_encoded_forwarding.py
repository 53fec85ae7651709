"""Forwarding is encoded: no codec's decode or encode runs while media is relayed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from aiortc import RTCRtpSender
from aiortc.codecs import base, g711, g722, h264, opus, vpx

from media.router import RoomRouter
from media.rtp import is_keyframe_start
from synthetic.encoded import audio_loop_track, encode_opus_loop, encode_video_loop, video_loop_track
from tests.media.conftest import SubscribingClient, publish

CODEC_CLASSES = [
    vpx.Vp8Decoder, vpx.Vp8Encoder, h264.H264Decoder, h264.H264Encoder, opus.OpusDecoder, opus.OpusEncoder,
    g711.PcmDecoder, g711.PcmEncoder, g722.G722Decoder, g722.G722Encoder,
]


@pytest.fixture
def codec_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Count every decode and encode of every aiortc codec while the test runs."""
    calls: Counter[str] = Counter()
    for cls in CODEC_CLASSES:
        for method in ("decode", "encode"):
            original = cls.__dict__.get(method)
            if original is None:
                continue

            def counting(self: object, *args: object, _original=original, _name=f"{cls.__name__}.{method}", **kwargs: object) -> object:
                calls[_name] += 1
                return _original(self, *args, **kwargs)

            monkeypatch.setattr(cls, method, counting)
    assert issubclass(vpx.Vp8Decoder, base.Decoder)
    yield calls


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_video_and_opus_are_relayed_without_decoding_or_encoding(
    router: RoomRouter, make_subscriber, codec_calls: Counter[str], codec: str
) -> None:
    video_packets = encode_video_loop(codec, width=320, height=180, seconds=1)
    audio_packets = encode_opus_loop(seconds=1)
    codec_calls.clear()  # pre-encoding the loops above is not forwarding
    tracks = [video_loop_track(video_packets), audio_loop_track(audio_packets)]
    client, publications = await _publish_preferring(router, tracks, codec)
    subscribers: list[SubscribingClient] = [make_subscriber(f"seat{i}", lean=True) for i in range(2)]
    for subscriber in subscribers:
        for publication in publications:
            subscriber.peer.subscribe(publication)
    video = next(p for p in publications if p.kind == "video")
    audio = next(p for p in publications if p.kind == "audio")
    assert video.codec.name == codec and audio.codec.name == "opus"

    for subscriber in subscribers:
        await subscriber.wait_packets(lambda s=subscriber: len(s.packets.get(video.id, [])) > 60 and len(s.packets.get(audio.id, [])) > 25)
    for subscriber in subscribers:
        first = subscriber.packets[video.id][0]
        assert is_keyframe_start(codec, first.payload), "a subscriber's first video packet starts a keyframe"
    assert sum(codec_calls.values()) == 0, f"codecs ran while forwarding: {dict(codec_calls)}"
    assert router.counters.packets_forwarded > 170
    await client.close()


async def _publish_preferring(router: RoomRouter, tracks: list, codec: str):
    # aiortc's publishing client offers every codec it has; keep only the one under test.
    from aiortc import RTCPeerConnection, RTCSessionDescription

    client = RTCPeerConnection()
    for track in tracks:
        transceiver = client.addTransceiver(track, direction="sendonly")
        if track.kind == "video":
            preferred = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in (f"video/{codec}", "video/rtx")]
            transceiver.setCodecPreferences(preferred)
    await client.setLocalDescription(await client.createOffer())
    publications = []
    peer = router.new_publisher("field-unit", on_publication=publications.append)
    answer = await peer.answer(client.localDescription.sdp, {})
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return client, publications
