"""SIP requests and responses (RFC 3261 §7) as frozen dataclasses with `parse`/`__bytes__`.

Parsing is strict where a wrong guess would misroute a message (start line, CSeq, the
mandatory headers of §8.1.1, Content-Length longer than the datagram) and lenient where
RFC 4475 says a robust parser should be (header folding, compact names, case, white space
around the colon). Anything else raises `SipParseError`, which the transport logs and
drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ivrcast.sip.errors import SipParseError
from ivrcast.sip.headers import (
    LIST_HEADERS,
    TOKEN,
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    split_values,
)
from ivrcast.sip.uri import SipUri

SIP_VERSION = "SIP/2.0"
REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")  # RFC 3261 §8.1.1
MAX_MESSAGE = 65535

Headers = tuple[tuple[str, str], ...]


class _Message:
    """Header access shared by requests and responses (headers are in wire order)."""

    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header (name in canonical form), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        """All values of a header, comma-separated list headers split into entries."""
        out: list[str] = []
        for key, value in self.headers:
            if key == name:
                out.extend(split_values(value) if name in LIST_HEADERS else [value])
        return out

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self.header("CSeq") or "")

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self.header("From") or "")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self.header("To") or "")

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.header_values("Via")]

    @property
    def top_via(self) -> Via:
        return Via.parse(self.header_values("Via")[0])

    @property
    def content_type(self) -> str:
        value = self.header("Content-Type") or ""
        return value.split(";")[0].strip().lower()

    def _head_bytes(self, start_line: str) -> bytes:
        lines = [start_line]
        lines.extend(f"{k}: {v}" for k, v in self.headers if k != "Content-Length")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(frozen=True)
class Request(_Message):
    method: str
    uri: str
    headers: Headers = ()
    body: bytes = b""

    @property
    def request_uri(self) -> SipUri:
        return SipUri.parse(self.uri)

    def __bytes__(self) -> bytes:
        return self._head_bytes(f"{self.method} {self.uri} {SIP_VERSION}") + self.body

    @classmethod
    def parse(cls, data: bytes) -> Request:
        message = parse_message(data)
        if not isinstance(message, Request):
            raise SipParseError("expected a request, got a response")
        return message


@dataclass(frozen=True)
class Response(_Message):
    status: int
    reason: str
    headers: Headers = ()
    body: bytes = b""
    # When the transport read it (sippy's `rtime`); None for messages we build.
    received_at: float | None = field(default=None, compare=False)

    def __bytes__(self) -> bytes:
        return self._head_bytes(f"{SIP_VERSION} {self.status} {self.reason}") + self.body

    @classmethod
    def parse(cls, data: bytes) -> Response:
        message = parse_message(data)
        if not isinstance(message, Response):
            raise SipParseError("expected a response, got a request")
        return message

    def stamped(self, when: float) -> Response:
        return replace(self, received_at=when)


def _split_head(data: bytes) -> tuple[list[str], bytes]:
    # RFC 3261 §7.5: ignore empty lines before the start line (keep-alives, CRLF pings).
    data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        head, body = data[:end], data[end + 4 :]
    else:
        # Bare LF line ends are invalid but seen from broken peers; accept them.
        end = data.find(b"\n\n")
        if end < 0:
            # A message without a body may lack the empty line only at the very end.
            head, body = data.rstrip(b"\r\n"), b""
        else:
            head, body = data[:end], data[end + 2 :]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"message head is not UTF-8: {exc}") from exc
    return text.replace("\r\n", "\n").split("\n"), body


def _parse_headers(lines: list[str]) -> Headers:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            # RFC 3261 §7.3.1 line folding: a continuation of the previous value.
            if not headers:
                raise SipParseError("continuation line before any header")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not TOKEN.match(name):
            raise SipParseError(f"bad header line: {line!r}")
        headers.append((canonical_name(name), value.strip()))
    return tuple(headers)


def parse_message(data: bytes) -> Request | Response:
    """Parse one datagram. Raises `SipParseError` for anything malformed."""
    if len(data) > MAX_MESSAGE:
        raise SipParseError("message too large")
    lines, rest = _split_head(data)
    if not lines:
        raise SipParseError("empty message")
    start, header_lines = lines[0], lines[1:]
    headers = _parse_headers(header_lines)
    names = {name for name, _ in headers}
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise SipParseError(f"missing header(s): {', '.join(missing)}")
    body = _body(headers, rest)
    message: Request | Response
    if start.startswith(SIP_VERSION + " ") or start.upper().startswith("SIP/"):
        message = _parse_status_line(start, headers, body)
    else:
        message = _parse_request_line(start, headers, body)
    _check_common(message)
    return message


def _body(headers: Headers, rest: bytes) -> bytes:
    lengths = [v for k, v in headers if k == "Content-Length"]
    if not lengths:
        return rest  # RFC 3261 §18.3: over UDP the body runs to the end of the datagram
    if len(set(lengths)) > 1 or not lengths[0].isdigit():
        raise SipParseError(f"bad Content-Length: {lengths!r}")
    length = int(lengths[0])
    if length > len(rest):
        raise SipParseError(f"Content-Length {length} exceeds the {len(rest)} bytes received")
    # Extra bytes after the declared body are discarded (RFC 3261 §18.3).
    return rest[:length]


def _parse_status_line(start: str, headers: Headers, body: bytes) -> Response:
    version, _, rest = start.partition(" ")
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"unsupported SIP version: {version!r}")
    code, _, reason = rest.partition(" ")
    if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
        raise SipParseError(f"bad status code: {start!r}")
    return Response(status=int(code), reason=reason.strip(), headers=headers, body=body)


def _parse_request_line(start: str, headers: Headers, body: bytes) -> Request:
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(f"bad request line: {start!r}")
    method, uri, version = parts
    if not TOKEN.match(method):
        raise SipParseError(f"bad method: {method!r}")
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"unsupported SIP version: {version!r}")
    if ":" not in uri:
        raise SipParseError(f"bad Request-URI: {uri!r}")
    return Request(method=method, uri=uri, headers=headers, body=body)


def _check_common(message: Request | Response) -> None:
    cseq = message.cseq  # raises on a bad CSeq
    if isinstance(message, Request) and cseq.method != message.method:
        raise SipParseError(f"CSeq method {cseq.method} does not match {message.method}")
    for name in ("From", "To"):
        values = message.header_values(name)
        if len(values) != 1:
            raise SipParseError(f"{name} must appear exactly once")
        NameAddr.parse(values[0])
    Via.parse(message.header_values("Via")[0])
    if not message.call_id:
        raise SipParseError("empty Call-ID")


def make_response(
    request: Request,
    status: int,
    reason: str,
    *,
    source: tuple[str, int] | None = None,
    extra: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    to_tag: str | None = None,
) -> Response:
    """A response to `request` (RFC 3261 §8.2.6.2): Vias, From, To, Call-ID and CSeq
    copied; the top Via gets `received`/`rport` from `source` (RFC 3581 §4); a UAS
    passes `to_tag` to add its tag to a To that has none (§8.2.6.2)."""
    vias = request.header_values("Via")
    if source is not None and vias:
        top = Via.parse(vias[0])
        params = []
        for key, value in top.params:
            if key == "rport":
                value = str(source[1])
            if key != "received":
                params.append((key, value))
        if top.host != source[0] or top.param("rport") is not None:
            params.append(("received", source[0]))
        vias[0] = str(replace(top, params=tuple(params)))
    headers = [("Via", v) for v in vias]
    headers += [(k, request.header(k) or "") for k in ("From", "To", "Call-ID", "CSeq")]
    if to_tag is not None and request.to.tag is None:
        headers[-3] = ("To", str(request.to.with_tag(to_tag)))
    headers += extra
    return Response(status=status, reason=reason, headers=tuple(headers), body=body)


def response_address(request: Request, source: tuple[str, int]) -> tuple[str, int]:
    """Where a response to `request` goes over UDP (RFC 3261 §18.2.2, RFC 3581 §4).

    With `rport` in the top Via, back to the source address and port. Without it, to the
    `received` address at the sent-by port: `make_response` adds `received` whenever the
    source IP differs from the sent-by host, so that address is always the source IP."""
    via = request.top_via
    if via.param("rport") is not None:
        return source
    return source[0], via.port or 5060
