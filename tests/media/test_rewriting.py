"""Header rewriting: continuous sequence numbers and timestamps across a source change, and
the byte-level packets the relay writes (RTX, extensions) read back as aiortc parses them."""

from __future__ import annotations

from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters

from media.packets import DelayHistogram, ExtensionLayout, Inbound, SentHistory, encode_extensions, rtp_packet, rtx_packet
from media.rtp import SequenceRewriter


def _run(rewriter: SequenceRewriter, seq: int, ts: int, count: int, step: int = 3000) -> list[tuple[int, int]]:
    return [rewriter.rewrite((seq + i) & 0xFFFF, (ts + i * step) & 0xFFFFFFFF) for i in range(count)]


def test_a_publisher_reconnect_continues_the_output_sequence_and_timestamps() -> None:
    rewriter = SequenceRewriter(ts_step=3000)
    before = _run(rewriter, 100, 5_000, 10)
    rewriter.rebase()  # the publisher reconnected: a new SSRC with its own random numbers
    after = _run(rewriter, 40_000, 123_456_789, 10)
    outputs = before + after
    for (seq_a, ts_a), (seq_b, ts_b) in zip(outputs, outputs[1:]):
        assert (seq_b - seq_a) & 0xFFFF == 1
        assert (ts_b - ts_a) & 0xFFFFFFFF == 3000


def test_sequence_numbers_wrap_at_16_bits_and_timestamps_at_32_bits_without_a_jump() -> None:
    rewriter = SequenceRewriter(ts_step=3000)
    rewriter._last_seq, rewriter._last_ts = 0xFFF0, 0xFFFFF000  # output space near both wraps
    outputs = _run(rewriter, 0xFFFA, 0xFFFFFFFF - 7000, 40)
    assert any(seq < 0x10 for seq, _ in outputs) and any(ts < 0x10000 for _, ts in outputs)
    for (seq_a, ts_a), (seq_b, ts_b) in zip(outputs, outputs[1:]):
        assert (seq_b - seq_a) & 0xFFFF == 1 and (ts_b - ts_a) & 0xFFFFFFFF == 3000


def test_a_late_retransmission_maps_to_its_own_number_and_does_not_move_the_sequence_back() -> None:
    rewriter = SequenceRewriter()
    outputs = _run(rewriter, 500, 0, 5)
    late = rewriter.rewrite(502, 6000)
    assert late == outputs[2]
    assert rewriter.rewrite(505, 15000)[0] == (outputs[-1][0] + 1) & 0xFFFF
    assert rewriter.input_seq(late[0]) == 502


def _extensions_map() -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=4, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(id=7, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
                RTCRtpHeaderExtensionParameters(id=9, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            ]
        )
    )
    return extensions


def test_a_rewritten_packet_parses_with_the_subscribers_extension_ids() -> None:
    layout = ExtensionLayout(mid=4, abs_send_time=7, audio_level=9)
    inbound = Inbound(sequence_number=1, timestamp=2, marker=1, payload=b"opus!", keyframe=False, audio_level=(True, 33))
    data = rtp_packet(111, 1, 4242, 99_000, 0xCAFE, inbound.tail((layout, "3")), True)
    packet = RtpPacket.parse(data, _extensions_map())
    assert (packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp, packet.ssrc) == (111, 1, 4242, 99_000, 0xCAFE)
    assert packet.payload == b"opus!"
    assert packet.extensions.mid == "3"
    assert packet.extensions.audio_level == (True, 33)
    assert packet.extensions.abs_send_time == inbound.abs_send_time


def test_a_retransmission_carries_the_original_sequence_number_before_the_payload() -> None:
    layout = ExtensionLayout(mid=4, abs_send_time=7)
    tail = encode_extensions(layout, "12", 1234, None) + b"\x90\x80vp8"
    data = rtx_packet(97, 7, 0xBEEF, 4242, 0, 99_000, tail, True)
    packet = RtpPacket.parse(data, _extensions_map())
    assert (packet.payload_type, packet.sequence_number, packet.ssrc) == (97, 7, 0xBEEF)
    assert packet.payload == (4242).to_bytes(2, "big") + b"\x90\x80vp8"
    assert packet.extensions.mid == "12"


def test_a_subscriber_without_extensions_gets_a_plain_header() -> None:
    data = rtp_packet(96, 0, 1, 2, 3, encode_extensions(ExtensionLayout(), "0", 5, None) + b"xyz", False)
    assert len(data) == 15 and data[0] == 0x80


def test_the_history_answers_only_for_packets_it_still_holds() -> None:
    history = SentHistory(8)
    inbound = Inbound(sequence_number=1, timestamp=2, marker=0, payload=b"p", keyframe=False)
    for seq in range(20):
        history.add(seq, seq * 10, inbound)
    assert history.get(19) == (19, 190, inbound)
    assert history.get(3) is None  # overwritten by 11
    history.clear()
    assert history.get(19) is None


def test_the_delay_histogram_estimates_quantiles_inside_the_right_bucket() -> None:
    histogram = DelayHistogram()
    for _ in range(98):
        histogram.observe(0.0004)
    histogram.observe(0.008)
    histogram.observe(0.2)
    assert 0.0003 < histogram.quantile(0.5) <= 0.0005
    assert 0.0075 < histogram.quantile(0.99) <= 0.01
    assert histogram.count == 100
