"""Our side of the offer/answer exchange in one dialog (RFC 3264), for the UAC and a UAS.

`LocalDescription` builds what we send (`build_offer`, `build_answer`) and keeps the
origin's version right across the dialog: RFC 3264 §8 keeps the version of a description
that did not change and increments it for one that did (a hold answer, a moved port).
"""

from __future__ import annotations

from collections.abc import Callable

from ivrcast.sip.sdp import CODECS, MediaChoice, SessionDescription, build_answer, build_offer


class LocalDescription:
    def __init__(
        self, address: str, port: int, *, session_id: int, username: str = "ivrcast"
    ) -> None:
        self._address = address
        self._port = port
        self._session_id = session_id
        self._username = username
        self._version = 1
        self._last: bytes | None = None

    def offer(self, codecs: tuple[str, ...] = CODECS) -> bytes:
        return self._versioned(
            lambda version: build_offer(
                self._address,
                self._port,
                session_id=self._session_id,
                version=version,
                codecs=codecs,
                username=self._username,
            )
        )

    def answer(self, offer: SessionDescription, choice: MediaChoice) -> bytes:
        return self._versioned(
            lambda version: build_answer(
                offer,
                choice,
                self._address,
                self._port,
                session_id=self._session_id,
                version=version,
                username=self._username,
            )
        )

    def _versioned(self, build: Callable[[int], bytes]) -> bytes:
        body = build(self._version)
        if self._last is not None and body != self._last:
            self._version += 1
            body = build(self._version)
        self._last = body
        return body
