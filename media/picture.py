"""A keyframe's picture size, read from its header (VP8) or its SPS (H.264), else by decoding it:
WebM and Matroska want the size in the file's header before the first frame."""

from __future__ import annotations

from typing import cast

import av
from av.video.codeccontext import VideoCodecContext


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]  # IndexError past the end: the caller gives up
        value = (byte >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def _unescape(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _nal_units(annex_b: bytes) -> list[bytes]:
    return [unit.lstrip(b"\x00") for unit in annex_b.split(b"\x00\x00\x01") if unit.strip(b"\x00")]


def h264_size(annex_b: bytes) -> tuple[int, int] | None:
    """Width and height from the first SPS of an Annex B access unit; None if it has none or it is unreadable."""
    for nal in _nal_units(annex_b):
        if nal[0] & 0x1F != 7:
            continue
        try:
            return _sps_size(_Bits(_unescape(nal[1:])))
        except (IndexError, ValueError):
            return None
    return None


def _sps_size(r: _Bits) -> tuple[int, int]:
    profile = r.bits(8)
    r.bits(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma_format = r.ue()
        if chroma_format == 3:
            r.bit()
        r.ue()
        r.ue()
        r.bit()
        if r.bit():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format != 3 else 12):
                if r.bit():
                    last = following = 8
                    for _ in range(16 if index < 6 else 64):
                        if following:
                            following = (last + r.se() + 256) % 256
                        last = following or last
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.bit()
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bit()
    width_mbs = r.ue() + 1
    height_units = r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()
    r.bit()
    width, height = width_mbs * 16, (2 - frame_mbs_only) * height_units * 16
    if r.bit():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        unit_x = 1 if chroma_format in (0, 3) else 2
        unit_y = (1 if chroma_format in (0, 2, 3) else 2) * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise ValueError("bad picture size")
    return width, height


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height of a VP8 keyframe (its uncompressed header); None for an interframe."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    return int.from_bytes(frame[6:8], "little") & 0x3FFF, int.from_bytes(frame[8:10], "little") & 0x3FFF


def _decoded_size(codec: str, frame: bytes) -> tuple[int, int] | None:
    """The picture size by decoding the keyframe (when its header could not be read)."""
    try:
        context = cast(VideoCodecContext, av.CodecContext.create({"VP8": "libvpx", "H264": "h264"}[codec], "r"))
        frames = list(context.decode(av.Packet(frame)))
    except (KeyError, ValueError, av.FFmpegError):
        return None
    return (frames[0].width, frames[0].height) if frames else None


def picture_size(codec: str, keyframe: bytes) -> tuple[int, int] | None:
    """The size of a VP8 or H.264 keyframe (`codec` as CodecInfo.name, upper case); None if unknown."""
    if codec == "VP8":
        return vp8_size(keyframe) or _decoded_size("VP8", keyframe)
    if codec == "H264":
        return h264_size(keyframe) or _decoded_size("H264", keyframe)
    return None
