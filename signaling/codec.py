"""One parser for everything that arrives on `/ws`, and one encoder for what leaves."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from signaling.base import Message
from signaling.messages import ClientMessage, ServerMessage

MAX_MESSAGE_BYTES = 64 * 1024


class ProtocolError(Exception):
    """A message that cannot be accepted; `code` is the wire error code."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


class _IdOnly(msgspec.Struct):
    id: str | None = None


_client_decoder = msgspec.json.Decoder(ClientMessage)
_server_decoder = msgspec.json.Decoder(ServerMessage)
_id_decoder = msgspec.json.Decoder(_IdOnly)
_encoder = msgspec.json.Encoder()


def request_id(raw: str | bytes) -> str | None:
    """The `id` of a message that is not parsed (refused before it, or not parseable), if it has one:
    every refusal carries the id of what it refuses, so the client's request does not hang."""
    try:
        data = raw.encode() if isinstance(raw, str) else raw
        return _id_decoder.decode(data).id
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeEncodeError):
        return None


T = TypeVar("T")


def _decode(decoder: msgspec.json.Decoder[T], raw: str | bytes) -> T:
    try:
        data = raw.encode() if isinstance(raw, str) else raw
    except UnicodeEncodeError:  # a lone surrogate: only a Python caller can make such a str
        raise ProtocolError("malformed_json", "not valid JSON: the text is not valid Unicode") from None
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        code = "unknown_type" if "`$.type`" in text or "missing required field `type`" in text else "invalid_field"
        raise ProtocolError(code, text, request_id(data)) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError("malformed_json", f"not valid JSON: {exc}") from None
    except RecursionError:  # msgspec's nesting limit is Python's recursion limit (found by fuzzing)
        raise ProtocolError("malformed_json", "not valid JSON: nested too deeply") from None


def parse_client(raw: str | bytes) -> ClientMessage:
    """Validate one client message: size, JSON, type, fields and their types, no unknown fields."""
    return _decode(_client_decoder, raw)


def parse_server(raw: str | bytes) -> ServerMessage:
    """Validate one server message (used by Python clients)."""
    return _decode(_server_decoder, raw)


def encode(message: Message) -> str:
    """Serialize a message to its JSON text."""
    return _encoder.encode(message).decode()
