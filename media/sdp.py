"""Small edits of session descriptions that aiortc does not make itself."""

from __future__ import annotations

# Opus parameters the server's answer gives a publisher (RFC 7587 §6.1): in-band FEC makes every packet
# carry a low-bitrate copy of the one before, so a field unit's lost packet is decoded from the next;
# DTX lets a silent microphone send almost nothing. The sender turns them on only when the receiver's
# description asks for them; aiortc answers Opus with no parameters at all.
OPUS_ANSWER: dict[str, str] = {"minptime": "10", "useinbandfec": "1", "usedtx": "1"}


def sections(sdp: str) -> list[list[str]]:
    """The description's lines: the session part first, then one list per m-section."""
    parts: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            parts.append([])
        parts[-1].append(line)
    return parts


def joined(parts: list[list[str]], newline: str) -> str:
    """The description again from its parts (as `sections` split it)."""
    return newline.join(newline.join(part) for part in parts if part) + newline


def answer_opus(answer_sdp: str) -> str:
    """The answer with every accepted Opus payload type carrying `OPUS_ANSWER` (kept beside any
    parameter the answer already has)."""
    newline = "\r\n" if "\r\n" in answer_sdp else "\n"
    parts = sections(answer_sdp)
    for part in parts[1:]:
        if not part[0].startswith("m=audio ") or part[0].split(" ")[1] == "0":
            continue
        types = [line[9:].split(" ", 1)[0] for line in part
                 if line.startswith("a=rtpmap:") and line.split(" ", 1)[-1].lower().startswith("opus/")]
        for pt in types:
            at = next((i for i, line in enumerate(part) if line.startswith(f"a=fmtp:{pt} ")), None)
            params: dict[str, str] = {}
            if at is not None:
                for item in part[at].split(" ", 1)[1].split(";"):
                    key, _, value = item.strip().partition("=")
                    if key:
                        params[key] = value
            params = {**OPUS_ANSWER, **{k: v for k, v in params.items() if k not in OPUS_ANSWER}}
            line = f"a=fmtp:{pt} " + ";".join(f"{k}={v}" for k, v in params.items())
            if at is not None:
                part[at] = line
            else:
                rtpmap = next(i for i, l in enumerate(part) if l.startswith(f"a=rtpmap:{pt} "))
                part.insert(rtpmap + 1, line)
    return joined(parts, newline)
