"""Pure RTP helpers for the relay: keyframe detection and sequence/timestamp rewriting."""

from __future__ import annotations

import random


def is_vp8_keyframe_start(payload: bytes) -> bool:
    """True when the packet starts a VP8 keyframe (RFC 7741 payload descriptor, then frame tag)."""
    if not payload:
        return False
    first = payload[0]
    start_of_partition = first & 0x10
    partition_id = first & 0x07
    if not start_of_partition or partition_id != 0:
        return False
    pos = 1
    if first & 0x80:  # X: extended control bits
        if len(payload) < 2:
            return False
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture id
            if len(payload) <= pos:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            pos += 1
    if len(payload) <= pos:
        return False
    return payload[pos] & 0x01 == 0  # P bit of the frame tag: 0 is a keyframe


_H264_KEY_NALS = frozenset((5, 7))  # IDR slice, SPS


def is_h264_keyframe_start(payload: bytes) -> bool:
    """True when the packet carries an IDR slice or SPS (single NAL, STAP-A or FU-A start)."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in _H264_KEY_NALS:
        return True
    if nal_type == 24:  # STAP-A
        pos = 1
        while pos + 2 < len(payload):
            size = (payload[pos] << 8) | payload[pos + 1]
            if payload[pos + 2] & 0x1F in _H264_KEY_NALS:
                return True
            pos += 2 + size
        return False
    if nal_type == 28 and len(payload) > 1:  # FU-A
        return bool(payload[1] & 0x80) and (payload[1] & 0x1F) in _H264_KEY_NALS
    return False


def is_keyframe_start(codec_name: str, payload: bytes) -> bool:
    """Keyframe detection by codec name (`VP8`, `H264`); other codecs never gate."""
    name = codec_name.upper()
    if name == "VP8":
        return is_vp8_keyframe_start(payload)
    if name == "H264":
        return is_h264_keyframe_start(payload)
    return True


class SequenceRewriter:
    """Maps a publisher's sequence numbers and timestamps into one subscriber's continuous space.

    The first packet forwarded fixes the offsets; after a source switch (`rebase`), the next
    packet continues one step after the last forwarded one, so the decoder never sees a jump.
    """

    __slots__ = ("_seq_offset", "_ts_offset", "_last_seq", "_last_ts", "_based", "_ts_step")

    def __init__(self, ts_step: int = 3000) -> None:
        self._seq_offset = 0
        self._ts_offset = 0
        self._last_seq = random.randint(0, 0xFFFF)
        self._last_ts = random.randint(0, 0xFFFFFFFF)
        self._based = False
        self._ts_step = ts_step

    def rebase(self, skip: int = 0) -> None:
        """Forget the current source; the next packet continues the output sequence, `skip`
        sequence numbers on (one tells the decoder that the frame before was left incomplete)."""
        self._based = False
        self._last_seq = (self._last_seq + skip) & 0xFFFF

    def rewrite(self, seq: int, ts: int) -> tuple[int, int]:
        """Output (sequence number, timestamp) for an input packet."""
        if not self._based:
            self._seq_offset = (self._last_seq + 1 - seq) & 0xFFFF
            self._ts_offset = (self._last_ts + self._ts_step - ts) & 0xFFFFFFFF
            self._based = True
        out_seq = (seq + self._seq_offset) & 0xFFFF
        out_ts = (ts + self._ts_offset) & 0xFFFFFFFF
        # Track the newest output; retransmissions and reordering must not move it back.
        if ((out_seq - self._last_seq) & 0xFFFF) < 0x8000:
            self._last_seq = out_seq
            self._last_ts = out_ts
        return out_seq, out_ts

    @property
    def last_timestamp(self) -> int:
        """The newest output timestamp."""
        return self._last_ts

    def output_timestamp(self, ts: int) -> int:
        """The output timestamp for an input timestamp of the current source."""
        return (ts + self._ts_offset) & 0xFFFFFFFF

    def input_seq(self, out_seq: int) -> int:
        """The input sequence number that produced `out_seq` (for answering NACKs)."""
        return (out_seq - self._seq_offset) & 0xFFFF


class NackSchedule:
    """Which missing sequence numbers to NACK now: each at once, then again while still missing, up
    to `tries` times in all (a NACK or its retransmission can be lost too).

    Asked again only once a retransmission could have come back: every `interval` seconds, or every
    round trip and a quarter once retransmissions have measured it (a field unit over 4G or
    satellite answers in 300 ms or more; asking every 30 ms there spent every try before the first
    answer could arrive, and multiplied the retransmissions). The round trip is measured from a
    packet's first NACK to its first retransmission (a publisher answers every NACK, so the first
    answer is the first NACK's; if that NACK was lost the sample is long, which errs on the patient side)."""

    __slots__ = ("base_interval", "tries", "rtt", "_sent")

    def __init__(self, interval: float = 0.03, tries: int = 4) -> None:
        self.base_interval = interval
        self.tries = tries
        self.rtt: float | None = None  # smoothed, from retransmissions
        self._sent: dict[int, tuple[int, float, float]] = {}  # seq -> (times NACKed, last NACK, first NACK)

    @property
    def interval(self) -> float:
        """Seconds between two NACKs of the same packet."""
        rtt = self.rtt
        return self.base_interval if rtt is None else max(self.base_interval, rtt * 1.25)

    def repaired(self, seq: int, now: float) -> None:
        """A retransmission of `seq` arrived at `now` (the first one: the packet is still missing)."""
        entry = self._sent.get(seq)
        if entry is None:
            return
        sample = now - entry[2]
        self.rtt = sample if self.rtt is None else 0.875 * self.rtt + 0.125 * sample

    def due(self, missing: set[int], now: float) -> list[int]:
        """The sequence numbers of `missing` to NACK at `now`, ascending; forgets the others."""
        sent = self._sent
        for seq in [s for s in sent if s not in missing]:
            del sent[seq]
        interval = self.interval
        due: list[int] = []
        for seq in missing:
            entry = sent.get(seq)
            if entry is None:
                sent[seq] = (1, now, now)
                due.append(seq)
            elif entry[0] < self.tries and now - entry[1] >= interval:
                sent[seq] = (entry[0] + 1, now, entry[2])
                due.append(seq)
        due.sort()
        return due
