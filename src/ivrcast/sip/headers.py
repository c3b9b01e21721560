"""Structured SIP header values: Via, name-addr (From/To/Contact/Route), CSeq, Reason.

Each is a frozen dataclass with `parse(str)` and `__str__`, like the messages. Header
names are canonicalised once when a message is parsed (`canonical_name`), so the rest
of the engine compares names with `==`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ivrcast.sip.errors import SipParseError
from ivrcast.sip.uri import SipUri, format_params, parse_params, split_hostport

# RFC 3261 §7.3.3 compact forms, plus the RFC 3515/3891 ones a trunk might send.
COMPACT_FORMS = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "r": "Refer-To",
    "o": "Event",
}
KNOWN_NAMES = {
    name.lower(): name
    for name in (
        "Accept",
        "Allow",
        "Authorization",
        "Call-ID",
        "Contact",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Expires",
        "From",
        "Max-Forwards",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Reason",
        "Record-Route",
        "Require",
        "Route",
        "Server",
        "Supported",
        "To",
        "User-Agent",
        "Via",
        "WWW-Authenticate",
        "Warning",
    )
}
# Headers whose comma-separated values are separate entries (RFC 3261 §7.3.1); the
# others (notably the authentication ones) contain commas inside a single value.
LIST_HEADERS = frozenset({"Via", "Route", "Record-Route", "Contact", "Allow", "Supported"})
VIA_PROTOCOL = re.compile(r"^\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9-]+)\s+(\S+)\s*$", re.IGNORECASE)
TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")  # RFC 3261 §25.1


def canonical_name(name: str) -> str:
    name = name.strip()
    lower = name.lower()
    if lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return KNOWN_NAMES.get(lower, name)


def split_values(value: str) -> list[str]:
    """Split a header value at commas that are outside quotes and angle brackets."""
    parts: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    start = 0
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def _split_params_outside_quotes(text: str) -> tuple[str, str]:
    """'value;a=1;b="x;y"' → ('value', ';a=1;b="x;y"') — params start at the first
    unquoted semicolon."""
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            return text[:i], text[i:]
    return text, ""


@dataclass(frozen=True)
class Via:
    """RFC 3261 §20.42, with the `rport`/`received` of RFC 3581."""

    host: str
    port: int | None = None
    transport: str = "UDP"
    params: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Via:
        head, params = _split_params_outside_quotes(text.strip())
        # RFC 4475 §3.1.1.1: white space may surround each "/" of the protocol.
        match = VIA_PROTOCOL.match(head)
        if match is None:
            raise SipParseError(f"bad Via: {text!r}")
        host, port = split_hostport(match.group(2))
        return cls(
            host=host, port=port, transport=match.group(1).upper(), params=parse_params(params)
        )

    def param(self, name: str) -> str | None:
        return next((v or "" for k, v in self.params if k == name), None)

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {host}{port}{format_params(self.params)}"


@dataclass(frozen=True)
class NameAddr:
    """From, To, Contact, Route and Record-Route values (RFC 3261 §20.10, §25.1)."""

    uri: SipUri
    display: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    raw_uri: str = ""  # the URI exactly as received, echoed back in Route headers

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        display: str | None = None
        if "<" in text:
            lt = text.index("<")
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError(f"unterminated <URI> in {text!r}")
            display = text[:lt].strip().strip('"') or None
            raw_uri = text[lt + 1 : gt]
            params = text[gt + 1 :]
        else:
            # RFC 3261 §20: without <>, parameters after the URI belong to the header.
            raw_uri, params = _split_params_outside_quotes(text)
        return cls(
            uri=SipUri.parse(raw_uri),
            display=display,
            params=parse_params(params),
            raw_uri=raw_uri.strip(),
        )

    @property
    def tag(self) -> str | None:
        return next((v for k, v in self.params if k == "tag"), None)

    def with_tag(self, tag: str) -> NameAddr:
        others = tuple((k, v) for k, v in self.params if k != "tag")
        return replace(self, params=(*others, ("tag", tag)))

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        uri = self.raw_uri or str(self.uri)
        return f"{display}<{uri}>{format_params(self.params)}"


@dataclass(frozen=True)
class CSeq:
    """RFC 3261 §20.16."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or not TOKEN.match(parts[1]):
            raise SipParseError(f"bad CSeq: {text!r}")
        seq = int(parts[0])
        if seq >= 2**31:  # RFC 3261 §8.1.1.5
            raise SipParseError(f"CSeq number too large: {text!r}")
        return cls(seq=seq, method=parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@dataclass(frozen=True)
class Reason:
    """RFC 3326: `Q.850;cause=16;text="Normal call clearing"`."""

    protocol: str
    cause: int | None
    text: str | None

    @classmethod
    def parse(cls, text: str) -> Reason:
        head, params = _split_params_outside_quotes(text.strip())
        values = dict(parse_params(params))
        cause_text = values.get("cause")
        cause = int(cause_text) if cause_text and cause_text.isdigit() else None
        reason_text = values.get("text")
        return cls(
            protocol=head.strip(),
            cause=cause,
            text=reason_text.strip('"') if reason_text else None,
        )


def q850_cause(reason_values: list[str]) -> int | None:
    """The Q.850 cause among a message's Reason header values, if any."""
    for value in reason_values:
        try:
            reason = Reason.parse(value)
        except (SipParseError, ValueError):
            continue
        if reason.protocol.upper() == "Q.850" and reason.cause is not None:
            return reason.cause
    return None
