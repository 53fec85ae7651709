"""The wire contract of `/ws`: every message as a frozen struct in one tagged union.

Each message carries `type` (the tag) and may carry `id`; a reply to a request carries the
request's `id`. Unknown fields are refused, so a typo in a client is an error, not a silent no-op.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# Re-exported: callers (server/session.py) import them from here.
from signaling.base import PROTOCOL_VERSION as PROTOCOL_VERSION, Message as Message


Pixels = Annotated[int, msgspec.Meta(ge=0, le=16384)]


# --- shared shapes -------------------------------------------------------------------------------


class ParticipantInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A participant as other participants see it.

    `state` is "connected", or "reconnecting" while its connections are lost and the server waits
    out the grace period: its tiles stay (saying so) and the same identity coming back takes them over.
    """

    identity: str
    site: str
    name: str
    role: str = "participant"
    state: Literal["connected", "reconnecting"] = "connected"
    # A camera the server pulls (role "camera"): "connecting", "live", "failed: <reason>", "unsupported: <reason>".
    status: str = ""


class PublicationInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One published track as subscribers see it."""

    publication_id: str
    identity: str
    kind: Literal["audio", "video"]
    source: Literal["camera", "microphone", "screen", "rtsp", "whip"]
    codec: str
    muted: bool = False


# --- client to server ----------------------------------------------------------------------------


class Hello(Message, tag="hello", kw_only=True, frozen=True):
    """First message of a session: protocol version, room, and (for devices) a token."""

    version: int = PROTOCOL_VERSION
    room: str
    token: str | None = None


class PublishOffer(Message, tag="publish_offer", kw_only=True, frozen=True):
    """The client's offer on its publisher connection; `sources` names each m-line's source by mid."""

    sdp: str
    sources: dict[str, str] = {}


class SubscribeAnswer(Message, tag="subscribe_answer", kw_only=True, frozen=True):
    """The client's answer to the server's offer on the subscriber connection."""

    sdp: str


class Ping(Message, tag="ping", kw_only=True, frozen=True):
    """Keep-alive; answered by `pong`."""


class Leave(Message, tag="leave", kw_only=True, frozen=True):
    """The client leaves the room on purpose."""


class SetMuted(Message, tag="set_muted", kw_only=True, frozen=True):
    """The client turned its own camera or microphone off or on."""

    kind: Literal["audio", "video"]
    muted: bool


class TileSizes(Message, tag="tile_sizes", kw_only=True, frozen=True):
    """How large the client shows each video it receives, in device pixels (publication id ->
    [width, height]; 0 x 0: hidden): a simulcast publication is sent in the layer that fills it."""

    sizes: Annotated[dict[str, tuple[Pixels, Pixels]], msgspec.Meta(max_length=256)]


# --- server to client ----------------------------------------------------------------------------


class Welcome(Message, tag="welcome", kw_only=True, frozen=True):
    """Reply to `hello`: who you are and what the room holds now."""

    version: int = PROTOCOL_VERSION
    room: str
    room_name: str
    you: ParticipantInfo
    grants: list[str] = []
    participants: list[ParticipantInfo] = []
    publications: list[PublicationInfo] = []
    # Seconds the server keeps a lost participant's tiles: a client that loses its connection
    # retries fast for this long (and takes its tiles over), then backs off.
    reconnect_grace: float = 30.0
    # The live nodes' public base URLs: a client that cannot reach its node any more tries the others.
    nodes: list[str] = []


class PublishAnswer(Message, tag="publish_answer", kw_only=True, frozen=True):
    """The server's answer on the publisher connection."""

    sdp: str


class SubscribeOffer(Message, tag="subscribe_offer", kw_only=True, frozen=True):
    """The server's (re)offer on the subscriber connection; `tracks` maps mid to publication id."""

    sdp: str
    tracks: dict[str, str] = {}


class ParticipantJoined(Message, tag="participant_joined", kw_only=True, frozen=True):
    """Someone entered the room."""

    participant: ParticipantInfo


class ParticipantLeft(Message, tag="participant_left", kw_only=True, frozen=True):
    """Someone left the room."""

    identity: str


class PublicationAdded(Message, tag="publication_added", kw_only=True, frozen=True):
    """A new track is available in the room."""

    publication: PublicationInfo


class PublicationRemoved(Message, tag="publication_removed", kw_only=True, frozen=True):
    """A track ended."""

    publication_id: str


class PublicationMuted(Message, tag="publication_muted", kw_only=True, frozen=True):
    """A track was muted or unmuted by its publisher."""

    publication_id: str
    muted: bool = False


class PublicationPaused(Message, tag="publication_paused", kw_only=True, frozen=True):
    """A video this client receives is paused (or resumed) because its link cannot carry it:
    the tile says "带宽不足已暂停 Paused: bandwidth" until it resumes."""

    publication_id: str
    paused: bool
    reason: Literal["bandwidth"] = "bandwidth"


class ParticipantUpdated(Message, tag="participant_updated", kw_only=True, frozen=True):
    """A participant's state changed ("reconnecting" while lost, "connected" when back)."""

    participant: ParticipantInfo


class SessionReplaced(Message, tag="session_replaced", kw_only=True, frozen=True):
    """This session is closed because the same identity joined again (another tab or device).

    The client must not reconnect by itself, or the two would replace each other for ever; it
    offers the user to continue here instead.
    """

    message: str


class Pong(Message, tag="pong", kw_only=True, frozen=True):
    """Reply to `ping`."""


class Error(Message, tag="error", kw_only=True, frozen=True):
    """A request failed; the session stays up."""

    code: str
    message: str


from signaling import control as _control  # noqa: E402 - the room-control messages join the unions
from signaling import rollcall as _rollcall  # noqa: E402 - the roll-call messages join the unions
from signaling import command as _command  # noqa: E402 - the command-channel messages join the unions
from signaling import recording as _recording  # noqa: E402 - the recording messages join the unions

ClientMessage = (
    Hello | PublishOffer | SubscribeAnswer | Ping | Leave | SetMuted | TileSizes
    | _control.Spotlight | _control.MuteParticipant | _control.AllowSelfUnmute | _control.MuteAll
    | _control.RemoveParticipant | _control.LockRoom | _control.EndRoom | _control.RaiseHand
    | _control.GrantFloor | _control.HandOverChair | _control.SetLayout | _control.RoomHistory
    | _rollcall.RollCallStart | _rollcall.RollCallAnswer | _rollcall.RollCallExcuse | _rollcall.RollCallClose
    | _rollcall.RollCallSync
    | _command.CommandSubscribe | _command.DirectiveIssue | _command.DirectiveUpdate | _command.DirectiveCancel
    | _command.DirectiveRead | _command.DirectiveAcknowledge | _command.DirectiveFeedback | _command.ReportFile
    | _command.IncidentClose
    | _command.IncidentReopen
    | _command.DirectiveRemind
    | _recording.RecordingStart | _recording.RecordingStop
)
ServerMessage = (
    Welcome
    | PublishAnswer
    | SubscribeOffer
    | ParticipantJoined
    | ParticipantLeft
    | PublicationAdded
    | PublicationRemoved
    | PublicationMuted
    | PublicationPaused
    | ParticipantUpdated
    | SessionReplaced
    | Pong
    | Error
    | _control.ControlAck | _control.ControlState | _control.ActiveSpeaker | _control.ControlNotice
    | _control.RoomEnded | _control.YouWereRemoved | _control.RoomHistoryEvents
    | _rollcall.RollCallStarted | _rollcall.RollCallCall | _rollcall.RollCallCallEnded
    | _rollcall.RollCallAnswerResult | _rollcall.RollCallSpotlight | _rollcall.RollCallUpdate
    | _rollcall.RollCallEscalation
    | _command.CommandOk | _command.CommandEvent | _command.CommandSynced
    | _recording.RecordingState
)
