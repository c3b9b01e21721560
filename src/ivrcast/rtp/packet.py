"""RTP fixed header (RFC 3550 §5.1) as a frozen dataclass with `parse`/`__bytes__`.

The send path of the media clock does not build `RtpPacket` objects (it packs headers
straight into a buffer, see `stream.py`); this class is for the receive path, tests and
anyone (a UAS, a test peer) that wants a readable packet.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ivrcast.rtp.errors import RtpParseError

RTP_VERSION = 2  # RFC 3550 §5.1
HEADER = struct.Struct("!BBHII")
HEADER_SIZE = HEADER.size  # 12 bytes without CSRCs or extension


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None  # (profile, data), RFC 3550 §5.3.1

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < HEADER_SIZE:
            raise RtpParseError(f"RTP packet too short: {len(data)} bytes")
        first, second, seq, ts, ssrc = HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpParseError(f"RTP version {first >> 6} is not 2")
        padding = bool(first & 0x20)
        has_extension = bool(first & 0x10)
        cc = first & 0x0F
        pos = HEADER_SIZE
        if len(data) < pos + 4 * cc:
            raise RtpParseError("RTP packet truncated in the CSRC list")
        csrc = struct.unpack_from(f"!{cc}I", data, pos) if cc else ()
        pos += 4 * cc
        extension = None
        if has_extension:
            if len(data) < pos + 4:
                raise RtpParseError("RTP packet truncated in the extension header")
            profile, words = struct.unpack_from("!HH", data, pos)
            pos += 4
            if len(data) < pos + 4 * words:
                raise RtpParseError("RTP packet truncated in the extension")
            extension = (profile, bytes(data[pos : pos + 4 * words]))
            pos += 4 * words
        end = len(data)
        if padding:
            # RFC 3550 §5.1: the last octet counts the padding octets, itself included.
            pad = data[-1]
            if pad == 0 or end - pad < pos:
                raise RtpParseError("RTP padding length is invalid")
            end -= pad
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension=extension,
        )

    def __bytes__(self) -> bytes:
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.extension is not None:
            first |= 0x10
        second = (0x80 if self.marker else 0) | self.payload_type
        out = bytearray(HEADER.pack(first, second, self.sequence_number, self.timestamp, self.ssrc))
        for csrc in self.csrc:
            out += struct.pack("!I", csrc)
        if self.extension is not None:
            profile, data = self.extension
            if len(data) % 4:
                raise ValueError("RTP header extension must be a multiple of 4 bytes")
            out += struct.pack("!HH", profile, len(data) // 4) + data
        out += self.payload
        return bytes(out)
