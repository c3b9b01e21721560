"""SIP URIs (RFC 3261 §19.1): `sip:user:password@host:port;params?headers`."""

from __future__ import annotations

from dataclasses import dataclass

from ivrcast.sip.errors import SipParseError

DEFAULT_PORTS = {"sip": 5060, "sips": 5061}


def parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """`;a=1;b` → (("a", "1"), ("b", None)); names lower-cased (RFC 3261 §7.3.1)."""
    params: list[tuple[str, str | None]] = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        params.append((name.strip().lower(), value.strip() if sep else None))
    return tuple(params)


def format_params(params: tuple[tuple[str, str | None], ...]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


@dataclass(frozen=True)
class SipUri:
    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    password: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: str = ""

    @classmethod
    def parse(cls, text: str) -> SipUri:
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or scheme not in DEFAULT_PORTS:
            raise SipParseError(f"not a SIP URI: {text!r}")
        rest, _, headers = rest.partition("?")
        userinfo, at, hostpart = rest.rpartition("@")
        user: str | None = None
        password: str | None = None
        if at:
            user, colon, pw = userinfo.partition(":")
            password = pw if colon else None
        hostport, _, paramtext = hostpart.partition(";")
        host, port = split_hostport(hostport)
        if not host:
            raise SipParseError(f"SIP URI without a host: {text!r}")
        return cls(
            host=host,
            user=user,
            port=port,
            scheme=scheme,
            password=password,
            params=parse_params(paramtext),
            headers=headers,
        )

    def param(self, name: str) -> str | None:
        return next((v or "" for k, v in self.params if k == name), None)

    def has_param(self, name: str) -> bool:
        return any(k == name for k, _ in self.params)

    @property
    def address(self) -> tuple[str, int]:
        """Where to send a request for this URI (no DNS SRV: trunks are host:port)."""
        return self.host, self.port or DEFAULT_PORTS[self.scheme]

    def __str__(self) -> str:
        out = f"{self.scheme}:"
        if self.user is not None:
            out += self.user
            if self.password is not None:
                out += f":{self.password}"
            out += "@"
        out += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            out += f":{self.port}"
        out += format_params(self.params)
        if self.headers:
            out += f"?{self.headers}"
        return out


def split_hostport(text: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` → (host without brackets, port)."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"unterminated IPv6 reference: {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"junk after IPv6 reference: {text!r}")
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SipParseError(f"bad port in {text!r}")
    return host, int(port_text)
