"""Simulcast for one subscriber: which layer it gets, and one continuous stream across switches.

A simulcast publisher sends the same picture as several layers (rid-based, one SSRC each; the
lowest first). A subscription forwards one layer at a time: `LayerSelector` holds the layer it
sends and the one it wants, and switches only on a keyframe of the wanted layer. Each layer has
its own sequence numbers, timestamps and VP8 picture ids, so at a switch the output continues one
step after the last packet sent (`SequenceRewriter.rebase`, `Vp8PictureRewriter.rebase`): the
subscriber's decoder sees one stream that changes resolution at a keyframe. As mediasoup's
SimulcastConsumer does; pure, I/O-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from media.sdp import joined, sections

PICTURE_ID_SPACE = 0x8000  # 15 bits; a 7-bit picture id wraps at 0x80
TL0_SPACE = 0x100


@dataclass(frozen=True)
class Vp8Descriptor:
    """Where a VP8 payload descriptor (RFC 7741 4.2) keeps its picture id and TL0PICIDX."""

    picture_id: int | None
    picture_id_at: int  # offset of the picture id's first byte (meaningless when picture_id is None)
    long_picture_id: bool  # 15 bits (M set) rather than 7
    tl0: int | None
    tl0_at: int


def parse_vp8_descriptor(payload: bytes) -> Vp8Descriptor | None:
    """The picture id and TL0PICIDX fields of a VP8 payload, or None when it is too short."""
    if not payload:
        return None
    if not payload[0] & 0x80:  # X: no extension, no picture id
        return Vp8Descriptor(None, 0, False, None, 0)
    if len(payload) < 2:
        return None
    ext = payload[1]
    pos = 2
    picture_id: int | None = None
    picture_id_at = pos
    long_id = False
    if ext & 0x80:  # I
        if len(payload) <= pos:
            return None
        long_id = bool(payload[pos] & 0x80)
        if long_id:
            if len(payload) <= pos + 1:
                return None
            picture_id = ((payload[pos] & 0x7F) << 8) | payload[pos + 1]
            pos += 2
        else:
            picture_id = payload[pos] & 0x7F
            pos += 1
    tl0: int | None = None
    tl0_at = pos
    if ext & 0x40:  # L
        if len(payload) <= pos:
            return None
        tl0 = payload[pos]
    return Vp8Descriptor(picture_id, picture_id_at, long_id, tl0, tl0_at)


def _newer(a: int, b: int, space: int) -> bool:
    """True when `a` is at or after `b` in a wrapping counter of `space` values."""
    return (a - b) % space < space // 2


class Vp8PictureRewriter:
    """Maps the picture ids and TL0PICIDX of the layer being forwarded into one continuous output.

    After `rebase` (a layer switch), the next packet's picture continues one after the last
    picture sent, so a decoder that tracks picture ids sees no gap and no jump back.
    """

    __slots__ = ("_pid_offset", "_tl0_offset", "_last_pid", "_last_tl0", "_based")

    def __init__(self) -> None:
        self._pid_offset = 0
        self._tl0_offset = 0
        self._last_pid: int | None = None
        self._last_tl0: int | None = None
        self._based = False

    def rebase(self) -> None:
        """Forget the current layer; the next packet continues the output's picture ids."""
        self._based = False

    def rewrite(self, payload: bytes) -> bytes:
        """`payload` with its picture id and TL0PICIDX rewritten (the same object when it has neither)."""
        descriptor = parse_vp8_descriptor(payload)
        if descriptor is None or (descriptor.picture_id is None and descriptor.tl0 is None):
            return payload
        if not self._based:
            self._based = True
            if descriptor.picture_id is not None:
                last = self._last_pid
                self._pid_offset = 0 if last is None else (last + 1 - descriptor.picture_id) % PICTURE_ID_SPACE
            if descriptor.tl0 is not None:
                last = self._last_tl0
                self._tl0_offset = 0 if last is None else (last + 1 - descriptor.tl0) % TL0_SPACE
        out = bytearray(payload)
        if descriptor.picture_id is not None:
            pid = (descriptor.picture_id + self._pid_offset) % PICTURE_ID_SPACE
            at = descriptor.picture_id_at
            if descriptor.long_picture_id:
                out[at] = 0x80 | pid >> 8
                out[at + 1] = pid & 0xFF
            else:
                pid &= 0x7F
                out[at] = pid
            if self._last_pid is None or _newer(pid, self._last_pid, PICTURE_ID_SPACE):
                self._last_pid = pid
        if descriptor.tl0 is not None:
            tl0 = (descriptor.tl0 + self._tl0_offset) % TL0_SPACE
            out[descriptor.tl0_at] = tl0
            if self._last_tl0 is None or _newer(tl0, self._last_tl0, TL0_SPACE):
                self._last_tl0 = tl0
        return bytes(out)


class LayerSelector:
    """The layer a subscription sends and the one it wants; a switch waits for the wanted layer's keyframe."""

    __slots__ = ("current", "target")

    def __init__(self, target: int = 0) -> None:
        self.current: int | None = None
        self.target = target

    @property
    def switching(self) -> bool:
        """True while the wanted layer's keyframe has not come yet (ask the publisher for one)."""
        return self.current != self.target

    def accept(self, layer: int, keyframe: bool) -> tuple[bool, bool]:
        """(forward this packet, it starts a new layer: rebase the rewriters first)."""
        if layer == self.target and self.current != self.target:
            if not keyframe:
                return layer == self.current, False
            self.current = layer
            return True, True
        return layer == self.current, False


@dataclass(frozen=True)
class Layer:
    """One simulcast layer as the publisher announced it: its rid and the size it is scaled to."""

    rid: str
    width: int
    height: int


def layer_for_tile(layers: Sequence[Layer], width: int, height: int) -> int:
    """The index of the smallest layer that fills a tile of `width` x `height` device pixels
    (the largest when none does); `layers` from the lowest to the highest."""
    if not layers:
        raise ValueError("no layers")
    for index, layer in enumerate(layers):
        if layer.width >= width * 0.9 and layer.height >= height * 0.9:  # a tenth short shows no loss
            return index
    return len(layers) - 1


def simulcast_layers(width: int, height: int, rids: Sequence[str]) -> list[Layer]:
    """The layers a browser sends from a `width` x `height` capture, lowest first: each half the
    size of the next (scaleResolutionDownBy 4, 2, 1 for three)."""
    count = len(rids)
    return [
        Layer(rid, width >> (count - 1 - index), height >> (count - 1 - index)) for index, rid in enumerate(rids)
    ]


RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"


@dataclass(frozen=True)
class SimulcastOffer:
    """What one m-section of an offer says of simulcast: its rids (lowest layer first, as listed)
    and the header extension ids that carry rid and repaired rid."""

    mid: str
    rids: tuple[str, ...]
    rid_id: int | None
    repaired_rid_id: int | None


def simulcast_offers(offer_sdp: str) -> list[SimulcastOffer]:
    """The m-sections of an offer that send simulcast (`a=simulcast:send`), in order."""
    found: list[SimulcastOffer] = []
    for section in sections(offer_sdp)[1:]:
        mid: str | None = None
        rids: tuple[str, ...] = ()
        extensions: dict[str, int] = {}
        for line in section:
            if line.startswith("a=mid:"):
                mid = line[6:].strip()
            elif line.startswith("a=simulcast:send "):
                streams = line.split(" ", 1)[1].split(" ", 1)[0]
                rids = tuple(r.split(",")[0].lstrip("~") for r in streams.split(";") if r)
            elif line.startswith("a=extmap:"):
                ident, _, uri = line[9:].partition(" ")
                extensions[uri.split(" ")[0]] = int(ident.split("/")[0])
        if mid is not None and len(rids) > 1:
            found.append(SimulcastOffer(mid, rids, extensions.get(RID_URI), extensions.get(REPAIRED_RID_URI)))
    return found


def answer_simulcast(offer_sdp: str, answer_sdp: str) -> str:
    """The answer, with each m-section the offer sends as simulcast accepting every layer:
    `a=rid:<id> recv`, `a=simulcast:recv ...` and the rid / repaired-rid header extensions
    (without them the browser sends its lowest layer alone)."""
    offers = {offer.mid: offer for offer in simulcast_offers(offer_sdp)}
    if not offers:
        return answer_sdp
    newline = "\r\n" if "\r\n" in answer_sdp else "\n"
    parts = sections(answer_sdp)
    for section in parts[1:]:
        mid = next((line[6:].strip() for line in section if line.startswith("a=mid:")), None)
        offer = offers.get(mid) if mid is not None else None
        if offer is None or section[0].split(" ")[1] == "0":  # rejected m-section
            continue
        extra = [
            f"a=extmap:{ident} {uri}"
            for ident, uri in ((offer.rid_id, RID_URI), (offer.repaired_rid_id, REPAIRED_RID_URI))
            if ident is not None and not any(line.endswith(" " + uri) for line in section)
        ]
        extra += [f"a=rid:{rid} recv" for rid in offer.rids]
        extra.append("a=simulcast:recv " + ";".join(offer.rids))
        section.extend(extra)
    return joined(parts, newline)


def vp8_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """The width and height a VP8 keyframe's first packet announces (RFC 6386 9.1), or None."""
    descriptor = parse_vp8_descriptor(payload)
    if descriptor is None:
        return None
    pos = 1
    if payload[0] & 0x80:
        ext = payload[1]
        pos = 2 + (0 if not ext & 0x80 else 2 if descriptor.long_picture_id else 1)
        pos += 1 if ext & 0x40 else 0
        pos += 1 if ext & 0x30 else 0
    header = payload[pos : pos + 10]
    if len(header) < 10 or header[0] & 0x01 or header[3:6] != b"\x9d\x01\x2a":
        return None
    return (header[6] | header[7] << 8) & 0x3FFF, (header[8] | header[9] << 8) & 0x3FFF
