"""SDP (RFC 4566) and the offer/answer rules of RFC 3264.

Our offer is one audio stream with PCMU/0, PCMA/8 and telephone-event/101. The model
covers what either side can say about audio: connection address, port, payload types
with their rtpmap and fmtp, and direction. `negotiate` reads the answer to our offer;
`answer_choice` and `build_answer` answer the far end's offer (a re-INVITE, or the demo
carrier's INVITE): its payload types, telephone-event only if offered, the direction
mirrored (RFC 3264 §6.1), and every other stream rejected with port 0 (§6).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ivrcast.sip.errors import SdpError

# RFC 3551 §6 static payload types we send, by encoding name.
STATIC_PAYLOADS = {0: "PCMU", 8: "PCMA"}
CODECS = ("PCMU", "PCMA")  # our preference order in the offer
DTMF_PAYLOAD = 101  # dynamic (RFC 3551 §6), the usual choice of carriers and SIPp
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# RFC 3264 §6.1: the answer's direction for each direction of the offer.
MIRRORED = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
# RFC 3264 §8.4: an older way to hold is a connection address of all zeros.
UNSPECIFIED = ("0.0.0.0", "::")


@dataclass(frozen=True)
class RtpMap:
    payload_type: int
    encoding: str  # upper-cased
    clock_rate: int
    channels: int = 1


@dataclass(frozen=True)
class Media:
    kind: str
    port: int
    proto: str
    formats: tuple[int, ...]
    format_tokens: tuple[str, ...] = ()  # the m= line's formats as written (non-RTP too)
    rtpmaps: tuple[RtpMap, ...] = ()
    connection: str | None = None  # c= inside the media section
    direction: str = "sendrecv"
    attributes: tuple[tuple[str, str | None], ...] = ()

    def encoding_of(self, payload_type: int) -> RtpMap | None:
        for rtpmap in self.rtpmaps:
            if rtpmap.payload_type == payload_type:
                return rtpmap
        if payload_type in STATIC_PAYLOADS:
            return RtpMap(payload_type, STATIC_PAYLOADS[payload_type], 8000)
        return None

    def fmtp_of(self, payload_type: int) -> str | None:
        prefix = f"{payload_type} "
        for name, value in self.attributes:
            if name == "fmtp" and value is not None and value.startswith(prefix):
                return value[len(prefix) :].strip()
        return None


@dataclass(frozen=True)
class SessionDescription:
    origin: str
    session_name: str
    connection: str | None
    media: tuple[Media, ...]
    direction: str = "sendrecv"
    raw_lines: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"SDP is not UTF-8: {exc}") from exc
        lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
        if not lines or not lines[0].startswith("v="):
            raise SdpError("SDP must start with v=")
        origin = ""
        session_name = ""
        connection: str | None = None
        direction = "sendrecv"
        media: list[dict[str, object]] = []
        for line in lines:
            kind, eq, value = line.partition("=")
            if not eq or len(kind) != 1:
                raise SdpError(f"bad SDP line: {line!r}")
            current = media[-1] if media else None
            if kind == "m":
                media.append(_parse_m_line(value))
            elif kind == "c":
                address = _parse_c_line(value)
                if current is None:
                    connection = address
                else:
                    current["connection"] = address
            elif kind == "o" and current is None:
                origin = value
            elif kind == "s" and current is None:
                session_name = value
            elif kind == "a":
                name, colon, attr = value.partition(":")
                if name in DIRECTIONS:
                    if current is None:
                        direction = name
                    else:
                        current["direction"] = name
                elif current is not None:
                    attrs = current.setdefault("attributes", [])
                    assert isinstance(attrs, list)
                    attrs.append((name, attr if colon else None))
        return cls(
            origin=origin,
            session_name=session_name,
            connection=connection,
            media=tuple(_build_media(m, direction) for m in media),
            direction=direction,
            raw_lines=tuple(lines),
        )

    def audio(self) -> Media | None:
        return next((m for m in self.media if m.kind == "audio" and m.port != 0), None)


def _parse_m_line(value: str) -> dict[str, object]:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"bad m= line: {value!r}")
    port_text = parts[1].split("/")[0]
    if not port_text.isdigit() or int(port_text) > 65535:
        raise SdpError(f"bad port in m= line: {value!r}")
    formats = []
    for fmt in parts[3:]:
        if fmt.isdigit() and int(fmt) < 128:
            formats.append(int(fmt))
    return {
        "kind": parts[0],
        "port": int(port_text),
        "proto": parts[2],
        "formats": formats,
        "format_tokens": tuple(parts[3:]),
    }


def _parse_c_line(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"bad c= line: {value!r}")
    return parts[2].split("/")[0]


def _parse_rtpmap(text: str) -> RtpMap | None:
    pt_text, _, rest = text.partition(" ")
    pieces = rest.strip().split("/")
    if not pt_text.isdigit() or len(pieces) < 2 or not pieces[1].isdigit():
        return None
    channels = int(pieces[2]) if len(pieces) > 2 and pieces[2].isdigit() else 1
    return RtpMap(int(pt_text), pieces[0].upper(), int(pieces[1]), channels)


def _build_media(raw: dict[str, object], session_direction: str) -> Media:
    attributes = raw.get("attributes", [])
    assert isinstance(attributes, list)
    rtpmaps = []
    for name, value in attributes:
        if name == "rtpmap" and value:
            rtpmap = _parse_rtpmap(value)
            if rtpmap is not None:
                rtpmaps.append(rtpmap)
    formats = raw["formats"]
    assert isinstance(formats, list)
    tokens = raw["format_tokens"]
    assert isinstance(tokens, tuple)
    connection = raw.get("connection")
    direction = raw.get("direction", session_direction)
    return Media(
        kind=str(raw["kind"]),
        port=int(str(raw["port"])),
        proto=str(raw["proto"]),
        formats=tuple(formats),
        format_tokens=tokens,
        rtpmaps=tuple(rtpmaps),
        connection=connection if isinstance(connection, str) else None,
        direction=str(direction),
        attributes=tuple(attributes),
    )


@dataclass(frozen=True)
class MediaChoice:
    """What offer and answer settled: where to send, which codec, which DTMF payload
    type, and the far end's direction, as its own SDP states it."""

    address: str
    port: int
    codec: str  # "PCMU" or "PCMA"
    payload_type: int
    dtmf_payload_type: int | None
    direction: str

    @property
    def far_end_receives(self) -> bool:
        """Send RTP only to a far end that wants it: not to one that holds the call
        (`sendonly`, `inactive`, or the all-zeros address of RFC 3264 §8.4)."""
        return self.direction in ("sendrecv", "recvonly") and self.address not in UNSPECIFIED

    @property
    def far_end_sends(self) -> bool:
        """Expect RTP (the no-RTP timer runs) only from a far end that says it sends
        and that is not holding the call."""
        return self.direction == "sendrecv" and self.address not in UNSPECIFIED


def build_offer(
    address: str,
    port: int,
    *,
    session_id: int,
    version: int = 1,
    codecs: tuple[str, ...] = CODECS,
    username: str = "ivrcast",
) -> bytes:
    """Our audio offer; the answer to a re-INVITE is the same with the same version
    (RFC 3264 §8: an unchanged description keeps its version)."""
    ip = "IP6" if ":" in address else "IP4"
    payloads = [pt for name in codecs for pt, enc in STATIC_PAYLOADS.items() if enc == name]
    formats = " ".join(str(pt) for pt in [*payloads, DTMF_PAYLOAD])
    lines = [
        "v=0",
        f"o={username} {session_id} {version} IN {ip} {address}",
        "s=ivrcast",
        f"c=IN {ip} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {formats}",
    ]
    lines += [f"a=rtpmap:{pt} {STATIC_PAYLOADS[pt]}/8000" for pt in payloads]
    lines += [
        f"a=rtpmap:{DTMF_PAYLOAD} telephone-event/8000",
        f"a=fmtp:{DTMF_PAYLOAD} 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def negotiate(answer: SessionDescription, codecs: tuple[str, ...] = CODECS) -> MediaChoice:
    """The media the far end's description settles, for an answer to our offer (RFC 3264
    §6/§7) or an offer we answer (§6.1): its first payload type that is one of `codecs`
    wins. Raises `SdpError` (488) when nothing fits."""
    audio = answer.audio()
    if audio is None:
        raise SdpError("the description has no active audio stream")
    if not audio.proto.upper().startswith("RTP/AVP"):
        raise SdpError(f"unsupported media transport {audio.proto}")
    address = audio.connection or answer.connection
    if address is None:
        raise SdpError("the description has no connection address")
    codec, dtmf = _choose(audio, codecs)
    if codec is None:
        offered = ", ".join(codecs)
        raise SdpError(f"no common codec: the far end offers {list(audio.formats)}, we {offered}")
    return MediaChoice(
        address=address,
        port=audio.port,
        codec=codec.encoding,
        payload_type=codec.payload_type,
        dtmf_payload_type=dtmf,
        direction=audio.direction,
    )


def _choose(audio: Media, codecs: tuple[str, ...]) -> tuple[RtpMap | None, int | None]:
    """The first payload type of `audio` that is one of `codecs`, and its
    telephone-event payload type, if any (both at 8 kHz)."""
    codec: RtpMap | None = None
    dtmf: int | None = None
    for pt in audio.formats:
        rtpmap = audio.encoding_of(pt)
        if rtpmap is None or rtpmap.clock_rate != 8000:
            continue
        if codec is None and rtpmap.encoding in codecs:
            codec = rtpmap
        elif dtmf is None and rtpmap.encoding == "TELEPHONE-EVENT":
            dtmf = pt
    return codec, dtmf


def build_answer(
    offer: SessionDescription,
    choice: MediaChoice,
    address: str,
    port: int,
    *,
    session_id: int,
    version: int = 1,
    username: str = "ivrcast",
) -> bytes:
    """Our answer to `offer` for the `choice` made from it (`negotiate`): the same
    m= lines in the same order (RFC 3264 §6), the chosen audio stream with the offer's
    payload type numbers and fmtp, telephone-event only when offered, the direction
    mirrored; every other stream rejected with port 0."""
    ip = "IP6" if ":" in address else "IP4"
    lines = [
        "v=0",
        f"o={username} {session_id} {version} IN {ip} {address}",
        f"s={username}",
        f"c=IN {ip} {address}",
        "t=0 0",
    ]
    chosen = offer.audio()
    for media in offer.media:
        if media is not chosen:
            # §6: a rejected stream keeps its place, with port 0 and the offer's formats.
            formats = " ".join(media.format_tokens) or "0"
            lines.append(f"m={media.kind} 0 {media.proto} {formats}")
            continue
        payloads = [choice.payload_type]
        if choice.dtmf_payload_type is not None:
            payloads.append(choice.dtmf_payload_type)
        lines.append(f"m=audio {port} {media.proto} {' '.join(map(str, payloads))}")
        lines.append(f"a=rtpmap:{choice.payload_type} {choice.codec}/8000")
        if choice.dtmf_payload_type is not None:
            pt = choice.dtmf_payload_type
            lines.append(f"a=rtpmap:{pt} telephone-event/8000")
            # RFC 4733 §7.1.1: answer with the events offered; none named means 0-15.
            fmtp = media.fmtp_of(pt)
            if fmtp is not None:
                lines.append(f"a=fmtp:{pt} {fmtp}")
        lines += ["a=ptime:20", f"a={MIRRORED.get(media.direction, 'sendrecv')}"]
    return ("\r\n".join(lines) + "\r\n").encode()
