"""Simulcast for one subscriber: a switch between layers on the target layer's keyframe gives the
subscriber one continuous stream (sequence numbers, timestamps, VP8 picture ids and TL0PICIDX)
that a real VP8 decoder decodes through the change of resolution; the answer accepts every layer."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor, vp8_depayload

from media.rtp import SequenceRewriter, is_vp8_keyframe_start
from media.simulcast import (
    Layer,
    LayerSelector,
    Vp8PictureRewriter,
    answer_simulcast,
    layer_for_tile,
    parse_vp8_descriptor,
    simulcast_layers,
    simulcast_offers,
    vp8_keyframe_size,
)

SIZES = ((160, 90), (320, 180), (640, 360))


@dataclass
class Packet:
    layer: int
    seq: int
    ts: int
    marker: bool
    payload: bytes


def _frame(width: int, height: int, index: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane, value in zip(frame.planes, ((index * 7) % 256, 128, 128)):
        plane.update(bytes([value]) * plane.buffer_size)
    frame.pts = index * 3000
    frame.time_base = Fraction(1, 90000)
    return frame


def _three_layers(frames: int, keyframes_at: dict[int, set[int]]) -> list[Packet]:
    """What a simulcast publisher sends: three VP8 encodings of the same picture, each with its
    own random sequence numbers, timestamps and picture ids, interleaved frame by frame."""
    encoders = [Vp8Encoder() for _ in SIZES]
    seqs = [1000, 30000, 65500]  # one of them wraps during the run
    ts_bases = [7, 2_000_000_000, 0xFFFFF000]
    packets: list[Packet] = []
    for index in range(frames):
        for layer, ((width, height), encoder) in enumerate(zip(SIZES, encoders)):
            force = index in keyframes_at.get(layer, set())
            payloads, timestamp = encoder.encode(_frame(width, height, index), force_keyframe=force)
            for position, payload in enumerate(payloads):
                packets.append(
                    Packet(layer, seqs[layer], (ts_bases[layer] + timestamp) & 0xFFFFFFFF, position == len(payloads) - 1, payload)
                )
                seqs[layer] = (seqs[layer] + 1) & 0xFFFF
    return packets


def _forward(packets: list[Packet], selector: LayerSelector, retarget: dict[int, int]) -> list[Packet]:
    """One subscription: the selected layer's packets, rewritten into one output stream."""
    seq_rewriter, picture_rewriter = SequenceRewriter(ts_step=3000), Vp8PictureRewriter()
    out: list[Packet] = []
    frame_of_layer = [0, 0, 0]
    for packet in packets:
        if packet.marker:
            frame_of_layer[packet.layer] += 1
        if frame_of_layer[0] in retarget and packet.layer == 0 and packet.marker:
            selector.target = retarget.pop(frame_of_layer[0])
        forward, switched = selector.accept(packet.layer, is_vp8_keyframe_start(packet.payload))
        if not forward:
            continue
        if switched:
            seq_rewriter.rebase()
            picture_rewriter.rebase()
        seq, ts = seq_rewriter.rewrite(packet.seq, packet.ts)
        out.append(Packet(packet.layer, seq, ts, packet.marker, picture_rewriter.rewrite(packet.payload)))
    return out


def _decode(packets: list[Packet]) -> list[tuple[int, int]]:
    decoder = av.CodecContext.create("libvpx", "r")
    sizes: list[tuple[int, int]] = []
    data = b""
    for packet in packets:
        data += vp8_depayload(packet.payload)
        if packet.marker:
            for frame in decoder.decode(av.Packet(data)):
                sizes.append((frame.width, frame.height))
            data = b""
    return sizes


def test_a_switch_to_the_full_layer_on_its_keyframe_is_one_continuous_stream_that_decodes() -> None:
    packets = _three_layers(30, keyframes_at={2: {12}})  # the full layer's next keyframe: frame 12
    selector = LayerSelector(target=0)
    out = _forward(packets, selector, retarget={8: 2})  # the tile grew to the spotlight at frame 8

    assert selector.current == 2
    layers = [p.layer for p in out]
    switch = layers.index(2)
    assert set(layers[:switch]) == {0} and set(layers[switch:]) == {2}
    assert is_vp8_keyframe_start(out[switch].payload)
    for a, b in zip(out, out[1:]):
        assert (b.seq - a.seq) & 0xFFFF == 1, "sequence numbers continue across the switch"
        step = (b.ts - a.ts) & 0xFFFFFFFF
        assert step == 0 or abs(step - 3000) <= 2, "timestamps move forward one frame at a time"
    picture_ids = [VpxPayloadDescriptor.parse(p.payload)[0].picture_id for p in out if p.marker]
    assert all((b - a) % 0x8000 == 1 for a, b in zip(picture_ids, picture_ids[1:])), picture_ids

    keyframe_sizes = {vp8_keyframe_size(p.payload) for p in packets if is_vp8_keyframe_start(p.payload)}
    assert keyframe_sizes == set(SIZES), "each layer's keyframe tells its size"
    sizes = _decode(out)
    assert len(sizes) == len([p for p in out if p.marker]), "every frame sent decodes: no freeze"
    assert sizes[0] == SIZES[0] and sizes[-1] == SIZES[2]
    assert sizes.index(SIZES[2]) == len([p for p in out[:switch] if p.marker])


def test_a_frame_cut_short_by_a_switch_leaves_one_sequence_number_out() -> None:
    rewriter = SequenceRewriter(ts_step=3000)
    last, _ = rewriter.rewrite(100, 9000)  # a frame's first packet; its marker never went out
    rewriter.rebase(skip=1)
    first, _ = rewriter.rewrite(5000, 123)
    assert (first - last) & 0xFFFF == 2


def test_before_the_target_layers_keyframe_the_current_layer_keeps_flowing() -> None:
    selector = LayerSelector(target=0)
    assert selector.accept(0, keyframe=False) == (False, False), "nothing starts without a keyframe"
    assert selector.accept(0, keyframe=True) == (True, True)
    selector.target = 2
    assert selector.switching
    assert selector.accept(0, keyframe=False) == (True, False)
    assert selector.accept(2, keyframe=False) == (False, False)
    assert selector.accept(1, keyframe=True) == (False, False), "a keyframe of another layer is no switch"
    assert selector.accept(2, keyframe=True) == (True, True)
    assert selector.accept(0, keyframe=False) == (False, False), "the old layer stops at the switch"
    assert not selector.switching


def _descriptor(picture_id: int, tl0: int, *, long_id: bool = True) -> bytes:
    # X=1, S=1; I and L set; picture id (7 or 15 bits); TL0PICIDX; then a frame byte.
    pid = bytes([0x80 | picture_id >> 8, picture_id & 0xFF]) if long_id else bytes([picture_id & 0x7F])
    return bytes([0x90, 0xC0]) + pid + bytes([tl0, 0x9D])


def test_picture_ids_and_tl0picidx_continue_across_a_switch_and_wrap() -> None:
    rewriter = Vp8PictureRewriter()
    first = [rewriter.rewrite(_descriptor(0x7FFE + i & 0x7FFF, 254 + i & 0xFF)) for i in range(4)]
    rewriter.rebase()
    second = [rewriter.rewrite(_descriptor(1234 + i, 17 + i)) for i in range(3)]
    parsed = [parse_vp8_descriptor(p) for p in first + second]
    picture_ids = [d.picture_id for d in parsed if d is not None]
    tl0s = [d.tl0 for d in parsed if d is not None]
    assert picture_ids == [0x7FFE, 0x7FFF, 0, 1, 2, 3, 4]
    assert tl0s == [254, 255, 0, 1, 2, 3, 4]
    assert all(p[-1] == 0x9D for p in first + second), "the payload after the descriptor is untouched"


def test_a_short_picture_id_stays_short_and_a_payload_without_one_is_untouched() -> None:
    rewriter = Vp8PictureRewriter()
    rewriter.rewrite(_descriptor(100, 1))
    rewriter.rebase()
    short = rewriter.rewrite(_descriptor(5, 9, long_id=False))
    assert len(short) == len(_descriptor(5, 9, long_id=False))
    assert parse_vp8_descriptor(short) is not None and parse_vp8_descriptor(short).picture_id == 101  # type: ignore[union-attr]
    plain = bytes([0x10, 0x9D])
    assert rewriter.rewrite(plain) is plain
    assert parse_vp8_descriptor(bytes([0x90])) is None


def test_each_tile_gets_the_smallest_layer_that_fills_it() -> None:
    layers = simulcast_layers(960, 540, ("q", "h", "f"))
    assert layers == [Layer("q", 240, 135), Layer("h", 480, 270), Layer("f", 960, 540)]
    assert layer_for_tile(layers, 200, 112) == 0  # a tile of a 16-tile wall
    assert layer_for_tile(layers, 480, 270) == 1
    assert layer_for_tile(layers, 500, 280) == 1  # within a tenth
    assert layer_for_tile(layers, 1920, 1080) == 2  # the spotlight
    assert layer_for_tile(layers, 0, 0) == 0  # a hidden tile


CHROMIUM_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:0",
        "a=sendonly",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
        "a=mid:1",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
        "a=sendonly",
        "a=rid:q send",
        "a=rid:h send",
        "a=rid:f send",
        "a=simulcast:send q;h;~f",
        "",
    ]
)
AIORTC_ANSWER = "\r\n".join(
    [
        "v=0",
        "o=- 3 4 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:0",
        "a=recvonly",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
        "a=mid:1",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=recvonly",
        "",
    ]
)


def test_the_answer_accepts_every_layer_a_browser_offers() -> None:
    (offer,) = simulcast_offers(CHROMIUM_OFFER)
    assert (offer.mid, offer.rids, offer.rid_id, offer.repaired_rid_id) == ("1", ("q", "h", "f"), 10, 11)
    answer = answer_simulcast(CHROMIUM_OFFER, AIORTC_ANSWER)
    video = answer.split("m=video")[1].split("\r\n")
    assert "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id" in video
    assert "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id" in video
    assert [line for line in video if line.startswith("a=rid:")] == ["a=rid:q recv", "a=rid:h recv", "a=rid:f recv"]
    assert "a=simulcast:recv q;h;f" in video
    assert "a=rid" not in answer.split("m=video")[0], "the audio section is left as it was"
    assert answer.endswith("\r\n") and "\n\n" not in answer.replace("\r\n", "\n")
    assert answer_simulcast(AIORTC_ANSWER, AIORTC_ANSWER) == AIORTC_ANSWER, "no simulcast offered: unchanged"


def test_a_page_reports_its_tile_sizes_and_nonsense_is_refused() -> None:
    from signaling.codec import ProtocolError, parse_client
    from signaling.messages import TileSizes

    message = parse_client('{"type": "tile_sizes", "sizes": {"abc123": [494, 163], "def456": [0, 0]}}')
    assert message == TileSizes(sizes={"abc123": (494, 163), "def456": (0, 0)})
    for bad in ('{"type": "tile_sizes", "sizes": {"a": [-1, 10]}}', '{"type": "tile_sizes", "sizes": {"a": [1]}}',
                '{"type": "tile_sizes", "sizes": {"a": [99999, 10]}}'):
        try:
            parse_client(bad)
        except ProtocolError as exc:
            assert exc.code == "invalid_field"
        else:
            raise AssertionError(f"accepted {bad}")
