"""Byte-level RTP writing for the relay's hot path: no RtpPacket objects per subscriber.

A publisher's packet is turned once into an `Inbound`; each subscriber's packet is then a fresh
12-byte header (struct) followed by a `tail` (header extensions in that subscriber's ids, then the
payload) that subscribers with the same extension layout and mid share.
"""

from __future__ import annotations

import struct
from collections import deque
from bisect import bisect_left
import time
from typing import NamedTuple

HEADER = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_EXTENSION_HEADER = struct.Struct("!HH")
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
NTP_EPOCH_MS = NTP_EPOCH_OFFSET * 1000  # aiortc's millisecond clock counts from 1900-01-01


class ExtensionLayout(NamedTuple):
    """The one-byte header extension ids (0: not negotiated) one subscriber's transport uses.

    A tuple, so that keying a packet's tails by it hashes in C on the hot path.
    """

    mid: int = 0
    abs_send_time: int = 0
    audio_level: int = 0


class Inbound:
    """One publisher packet, parsed once, with the tails built for subscribers so far."""

    __slots__ = ("sequence_number", "timestamp", "marker", "payload", "audio_level", "keyframe", "arrival", "abs_send_time", "tails")

    def __init__(
        self,
        *,
        sequence_number: int,
        timestamp: int,
        marker: int,
        payload: bytes,
        keyframe: bool,
        audio_level: tuple[bool, int] | None = None,
        arrival: float | None = None,
    ) -> None:
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.marker = marker
        self.payload = payload
        self.keyframe = keyframe
        self.audio_level = audio_level
        self.arrival = time.perf_counter() if arrival is None else arrival
        self.abs_send_time = abs_send_time_now()
        self.tails: dict[tuple[ExtensionLayout, str | None], bytes] = {}

    def tail(self, key: tuple[ExtensionLayout, str | None]) -> bytes:
        """Header extensions block and payload for a (layout, mid), cached during the fan-out:
        the first subscriber of a layout and mid builds what the others share."""
        tail = self.tails.get(key)
        if tail is None:
            tail = self.tails[key] = self.build_tail(*key)
        return tail

    def build_tail(self, layout: ExtensionLayout, mid: str | None, payload: bytes | None = None) -> bytes:
        """Header extensions block and payload (this one's or `payload`, rewritten for one
        subscriber) for this layout and mid, not cached (for resends)."""
        return encode_extensions(layout, mid, self.abs_send_time, self.audio_level) + (
            self.payload if payload is None else payload
        )


# What the relay reads of a publisher's packet: payload type, marker, sequence number, timestamp,
# SSRC, payload, padding size, abs-send-time (or None), audio level (voice activity, -dBov) (or None).
ParsedRtp = tuple[int, int, int, int, int, bytes, int, int | None, tuple[bool, int] | None]


def parse_rtp(data: bytes | memoryview, abs_send_time_id: int, audio_level_id: int) -> ParsedRtp | None:
    """Parse a plaintext RTP packet's header and the two extensions the relay reads; None if malformed.

    Reads one-byte (0xBEDE) and two-byte (0x100x) extension blocks; other profiles are skipped whole.
    The payload comes back as bytes of its own, also when `data` is a view of a reused buffer.
    """
    size = len(data)
    if size < 12:
        return None
    first, second, seq, ts, ssrc = HEADER.unpack_from(data)
    if first >> 6 != 2:
        return None
    pos = 12 + 4 * (first & 0x0F)
    abs_send_time: int | None = None
    audio_level: tuple[bool, int] | None = None
    if first & 0x10:
        if pos + 4 > size:
            return None
        profile, length = _EXTENSION_HEADER.unpack_from(data, pos)
        pos += 4
        end = pos + 4 * length
        if end > size:
            return None
        one_byte = profile == 0xBEDE
        if one_byte or profile >> 4 == 0x100:
            while pos < end:
                byte = data[pos]
                if byte == 0:  # padding
                    pos += 1
                    continue
                if one_byte:
                    if byte >> 4 == 15:
                        break
                    ext_id, length_ = byte >> 4, (byte & 0x0F) + 1
                    pos += 1
                else:
                    if pos + 1 >= end:
                        break
                    ext_id, length_ = byte, data[pos + 1]
                    pos += 2
                if ext_id == abs_send_time_id and length_ == 3 and pos + 3 <= end:
                    abs_send_time = int.from_bytes(data[pos : pos + 3], "big")
                elif ext_id == audio_level_id and length_ >= 1 and pos < end:
                    level = data[pos]
                    audio_level = (level & 0x80 == 0x80, level & 0x7F)
                pos += length_
        pos = end
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if not padding or padding > size - pos:
            return None
        payload = bytes(data[pos : size - padding])
    else:
        payload = bytes(data[pos:])
    return second & 0x7F, second >> 7, seq, ts, ssrc, payload, padding, abs_send_time, audio_level


class RateWindow:
    """aiortc's `RateCounter` (bytes over a sliding window of 1 ms steps, as bits/s) in O(1) per packet.

    aiortc's walks every millisecond bucket since the last packet on each call (~25 us per video
    frame's first packet); this keeps the packets in the window in a deque instead. Same results.
    """

    __slots__ = ("_window", "_scale", "_origin_ms", "_entries", "_count", "_value")

    def __init__(self, window_size: int = 1000, scale: int = 8000) -> None:
        self._window = window_size
        self._scale = scale
        self.reset()

    def reset(self) -> None:
        """Forget everything."""
        self._origin_ms: int | None = None
        self._entries: deque[tuple[int, int]] = deque()
        self._count = 0
        self._value = 0

    def add(self, value: int, now_ms: int) -> None:
        """Count `value` (bytes) at `now_ms`."""
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        self._entries.append((now_ms, value))
        self._count += 1
        self._value += value

    def rate(self, now_ms: int) -> int | None:
        """The rate over the window up to `now_ms`, or None before there is one."""
        if self._origin_ms is not None:
            self._erase_old(now_ms)
            active_window_size = now_ms - self._origin_ms + 1
            if self._count > 0 and active_window_size > 1:
                return round(self._scale * self._value / active_window_size)
        return None

    def _erase_old(self, now_ms: int) -> None:
        new_origin_ms = now_ms - self._window + 1
        if self._origin_ms is not None and self._origin_ms < new_origin_ms:
            self._origin_ms = new_origin_ms
            entries = self._entries
            while entries and entries[0][0] < new_origin_ms:
                self._value -= entries.popleft()[1]
                self._count -= 1


def abs_send_time_now() -> int:
    """The abs-send-time value (6.18 fixed-point seconds, 24 bits) for now."""
    return int((time.time() + NTP_EPOCH_OFFSET) * 262144) & 0xFFFFFF


def ntp_now() -> int:
    """The current wall-clock time as a 64-bit NTP timestamp."""
    return int((time.time() + NTP_EPOCH_OFFSET) * 4294967296) & 0xFFFFFFFFFFFFFFFF


def encode_extensions(layout: ExtensionLayout, mid: str | None, abs_send_time: int | None, audio_level: tuple[bool, int] | None) -> bytes:
    """An RFC 8285 one-byte extension block (profile 0xBEDE, length, padded elements), or b""."""
    body = bytearray()
    if layout.mid and mid:
        value = mid.encode()[:16]
        body.append((layout.mid << 4) | (len(value) - 1))
        body += value
    if layout.abs_send_time and abs_send_time is not None:
        body.append((layout.abs_send_time << 4) | 2)
        body += abs_send_time.to_bytes(3, "big")
    if layout.audio_level and audio_level is not None:
        body.append(layout.audio_level << 4)
        body.append((0x80 if audio_level[0] else 0) | (audio_level[1] & 0x7F))
    if not body:
        # Keep the X bit a per-subscriber constant: a block of padding when nothing applies.
        return b"\xbe\xde\x00\x01\x00\x00\x00\x00" if has_extensions(layout, mid) else b""
    body += b"\x00" * (-len(body) % 4)
    return b"\xbe\xde" + _U16.pack(len(body) // 4) + bytes(body)


def has_extensions(layout: ExtensionLayout, mid: str | None) -> bool:
    """True when packets for this layout and mid carry an extension block (the header's X bit)."""
    return bool((layout.mid and mid) or layout.abs_send_time or layout.audio_level)


def rtp_packet(payload_type: int, marker: int, sequence_number: int, timestamp: int, ssrc: int, tail: bytes, extended: bool) -> bytes:
    """A serialized RTP packet: the 12-byte header (X set when `extended`) + tail."""
    first = 0x90 if extended else 0x80
    return HEADER.pack(first, (marker << 7) | payload_type, sequence_number, timestamp, ssrc) + tail


def rtx_packet(
    payload_type: int, sequence_number: int, ssrc: int, original_seq: int, marker: int, timestamp: int, tail: bytes, extended: bool
) -> bytes:
    """An RFC 4588 retransmission: the original's extensions, then its sequence number, then its payload."""
    if extended:
        ext_len = 4 + 4 * _U16.unpack_from(tail, 2)[0]
        body = tail[:ext_len] + _U16.pack(original_seq) + tail[ext_len:]
        first = 0x90
    else:
        body = _U16.pack(original_seq) + tail
        first = 0x80
    return HEADER.pack(first, (marker << 7) | payload_type, sequence_number, timestamp, ssrc) + body


class SentHistory:
    """The last `size` packets sent to one subscriber, by output sequence number, for NACKs.

    Entries hold the publisher's shared `Inbound`, so a subscription costs a slot per packet,
    not a copy; a resend rebuilds its tail.
    """

    __slots__ = ("_slots", "_mask")

    def __init__(self, size: int = 512) -> None:
        if size & (size - 1):
            raise ValueError("history size must be a power of two")
        self._slots: list[tuple[int, int, Inbound] | None] = [None] * size
        self._mask = size - 1

    def add(self, sequence_number: int, timestamp: int, packet: Inbound) -> None:
        """Remember a sent packet under its output sequence number and timestamp."""
        self._slots[sequence_number & self._mask] = (sequence_number, timestamp, packet)

    def get(self, sequence_number: int) -> tuple[int, int, Inbound] | None:
        """(seq, timestamp, inbound packet) of a packet still held, else None."""
        entry = self._slots[sequence_number & self._mask]
        if entry is None or entry[0] != sequence_number:
            return None
        return entry

    def clear(self) -> None:
        """Forget everything (the subscription ended)."""
        self._slots = [None] * (self._mask + 1)


class DelayHistogram:
    """Bucket counts of per-packet forwarding delay (arrival to send), in seconds."""

    BOUNDS = (0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25)

    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * (len(self.BOUNDS) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        """Add one observation."""
        self.counts[bisect_left(self.BOUNDS, seconds)] += 1
        self.total += seconds
        self.count += 1

    def quantile(self, q: float) -> float:
        """An estimate of quantile `q` (linear inside the bucket), in seconds; 0 when empty."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        lower = 0.0
        for index, count in enumerate(self.counts):
            upper = self.BOUNDS[index] if index < len(self.BOUNDS) else self.BOUNDS[-1] * 2
            if count and seen + count >= rank:
                return lower + (upper - lower) * (rank - seen) / count
            seen += count
            lower = upper
        return lower
