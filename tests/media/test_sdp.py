"""The publisher's answer asks Opus senders for in-band FEC and DTX (aiortc answers Opus bare)."""

from __future__ import annotations

from pathlib import Path

from media.router import RoomRouter
from media.sdp import answer_opus

CORPUS = Path(__file__).parent.parent / "fuzz" / "corpus"


def _fmtp(sdp: str, pt: str) -> dict[str, str]:
    line = next(line for line in sdp.splitlines() if line.startswith(f"a=fmtp:{pt} "))
    return dict(item.split("=", 1) for item in line.split(" ", 1)[1].split(";"))


async def test_a_browser_and_an_encoder_are_answered_opus_with_fec_and_dtx(router: RoomRouter) -> None:
    for name in ("chromium-156-publish-simulcast.sdp", "ffmpeg-9.0.2-whip.sdp"):
        offer = (CORPUS / name).read_text().replace("\r\n", "\n").replace("\n", "\r\n")
        peer = router.new_publisher(f"unit-{name[:6]}", on_publication=lambda p: None)
        answer = await peer.answer(offer, {})
        assert _fmtp(answer, "111") == {"minptime": "10", "useinbandfec": "1", "usedtx": "1"}, name
        assert answer.count("a=fmtp:111 ") == 1 and "\r\n" in answer and "\n\n" not in answer
        await peer.close()


def test_parameters_already_answered_are_kept_and_other_sections_untouched() -> None:
    answer = "\r\n".join([
        "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 109 0", "a=mid:0", "a=rtpmap:109 OPUS/48000/2", "a=fmtp:109 stereo=1;usedtx=0",
        "a=rtpmap:0 PCMU/8000",
        "m=audio 0 UDP/TLS/RTP/SAVPF 111", "a=mid:1", "a=rtpmap:111 opus/48000/2",  # rejected: left alone
        "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:2", "a=rtpmap:96 VP8/90000",
    ]) + "\r\n"
    edited = answer_opus(answer)
    assert _fmtp(edited, "109") == {"minptime": "10", "useinbandfec": "1", "usedtx": "1", "stereo": "1"}
    assert "a=fmtp:111" not in edited and "a=fmtp:96" not in edited and "a=fmtp:0" not in edited
    assert edited.replace("a=fmtp:109 minptime=10;useinbandfec=1;usedtx=1;stereo=1", "a=fmtp:109 stereo=1;usedtx=0") == answer
