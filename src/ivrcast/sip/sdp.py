"""SDP (RFC 4566) and the offer/answer rules a UAC needs (RFC 3264).

We always offer one audio stream with PCMU/0, PCMA/8 and telephone-event/101 and never
accept an offer-less INVITE, so the model covers what an answer can say about audio:
connection address, port, payload types with their rtpmap, and direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ivrcast.sip.errors import SdpError

# RFC 3551 §6 static payload types we send, by encoding name.
STATIC_PAYLOADS = {0: "PCMU", 8: "PCMA"}
CODECS = ("PCMU", "PCMA")  # our preference order in the offer
DTMF_PAYLOAD = 101  # dynamic (RFC 3551 §6), the usual choice of carriers and SIPp
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


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
    return {"kind": parts[0], "port": int(port_text), "proto": parts[2], "formats": formats}


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
    connection = raw.get("connection")
    direction = raw.get("direction", session_direction)
    return Media(
        kind=str(raw["kind"]),
        port=int(str(raw["port"])),
        proto=str(raw["proto"]),
        formats=tuple(formats),
        rtpmaps=tuple(rtpmaps),
        connection=connection if isinstance(connection, str) else None,
        direction=str(direction),
        attributes=tuple(attributes),
    )


@dataclass(frozen=True)
class MediaChoice:
    """What the answer settled: where to send, which codec, which DTMF payload type."""

    address: str
    port: int
    codec: str  # "PCMU" or "PCMA"
    payload_type: int
    dtmf_payload_type: int | None
    direction: str


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
    """Apply RFC 3264 §6/§7 to an answer to our offer: the first payload type of the
    answer that is a codec we offered wins. Raises `SdpError` (488) when nothing fits."""
    audio = answer.audio()
    if audio is None:
        raise SdpError("the answer has no active audio stream")
    if not audio.proto.upper().startswith("RTP/AVP"):
        raise SdpError(f"unsupported media transport {audio.proto}")
    address = audio.connection or answer.connection
    if address is None:
        raise SdpError("the answer has no connection address")
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
    if codec is None:
        offered = ", ".join(codecs)
        raise SdpError(f"no common codec: the answer offers {list(audio.formats)}, we {offered}")
    return MediaChoice(
        address=address,
        port=audio.port,
        codec=codec.encoding,
        payload_type=codec.payload_type,
        dtmf_payload_type=dtmf,
        direction=audio.direction,
    )
