"""A dialog (RFC 3261 §12): identifiers, CSeq, remote target, route set, and how
in-dialog requests are built and where they go. The UAC builds it from the 2xx to its
INVITE (`from_response`), a UAS from the INVITE it answers (`from_request`)."""

from __future__ import annotations

from dataclasses import dataclass

from ivrcast.sip.errors import SipParseError
from ivrcast.sip.headers import NameAddr
from ivrcast.sip.message import Request, Response
from ivrcast.sip.uri import SipUri


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local: str  # our From value (with tag)
    remote: str  # the To value (with the remote tag)
    remote_target: str  # the Contact URI of the 2xx
    route_set: tuple[str, ...]  # Record-Route of the 2xx, reversed (§12.1.2)
    local_cseq: int
    remote_cseq: int | None = None

    @classmethod
    def from_response(cls, invite: Request, response: Response) -> Dialog:
        """§12.1.2: the UAC's dialog state from a 2xx to its INVITE."""
        to = response.to
        if to.tag is None:
            raise SipParseError("2xx without a To tag")
        contacts = response.header_values("Contact")
        target = NameAddr.parse(contacts[0]).raw_uri if contacts else invite.uri
        routes = tuple(reversed(response.header_values("Record-Route")))
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_.tag or "",
            remote_tag=to.tag,
            local=invite.header("From") or "",
            remote=response.header("To") or "",
            remote_target=target,
            route_set=routes,
            local_cseq=invite.cseq.seq,
        )

    @classmethod
    def from_request(cls, invite: Request, local_tag: str) -> Dialog:
        """§12.1.1: the UAS's dialog state from the INVITE it answers with `local_tag`."""
        from_tag = invite.from_.tag
        if from_tag is None:
            raise SipParseError("INVITE without a From tag")
        contacts = invite.header_values("Contact")
        target = NameAddr.parse(contacts[0]).raw_uri if contacts else invite.uri
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=from_tag,
            local=str(invite.to.with_tag(local_tag)),
            remote=invite.header("From") or "",
            remote_target=target,
            route_set=tuple(invite.header_values("Record-Route")),
            local_cseq=0,
            remote_cseq=invite.cseq.seq,
        )

    def _uri_and_routes(self) -> tuple[str, list[str]]:
        """§12.2.1.1: loose routing keeps the target in the Request-URI; a strict router
        (no `lr`) takes the Request-URI and the target goes last in Route."""
        if not self.route_set:
            return self.remote_target, []
        first = NameAddr.parse(self.route_set[0])
        if first.uri.has_param("lr"):
            return self.remote_target, list(self.route_set)
        return first.raw_uri, [*self.route_set[1:], f"<{self.remote_target}>"]

    def next_hop(self) -> tuple[str, int]:
        if self.route_set:
            return NameAddr.parse(self.route_set[0]).uri.address
        return SipUri.parse(self.remote_target).address

    def request(
        self,
        method: str,
        *,
        via: str,
        contact: str,
        extra: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        cseq: int | None = None,
    ) -> Request:
        """A new in-dialog request. ACK passes the INVITE's `cseq`; others take the next."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        uri, routes = self._uri_and_routes()
        headers: list[tuple[str, str]] = [("Via", via)]
        headers += [("Route", r) for r in routes]
        headers += [
            ("Max-Forwards", "70"),
            ("From", self.local),
            ("To", self.remote),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", contact),
        ]
        headers += extra
        return Request(method=method, uri=uri, headers=tuple(headers), body=body)

    def matches(self, request: Request) -> bool:
        """An incoming request belongs to this dialog: their From tag, our To tag."""
        return (
            request.call_id == self.call_id
            and request.to.tag == self.local_tag
            and request.from_.tag == self.remote_tag
        )
