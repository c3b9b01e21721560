"""The media plane: where a call's RTP stream lives, chosen once at start-up.

Two implementations with one surface (`MediaStream`): the native pump (`pump.py`, the
C extension `_pump`), used whenever it was built, and the pure-Python streams
(`stream.py` on `readers.SocketReaders`), used when it was not or when
`IVRCAST_MEDIA=python` forces them (docs/media.md).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from ivrcast.rtp.errors import RtpError
from ivrcast.rtp.pump import NATIVE, StreamPump
from ivrcast.rtp.readers import SocketReaders
from ivrcast.rtp.stream import Frame, MediaTap, RtpStream

ENVIRONMENT = "IVRCAST_MEDIA"  # "python" forces the fallback, "native" requires the pump
Backend = Literal["native", "python"]


class ReceiveCounts(Protocol):
    @property
    def packets_received(self) -> int: ...

    @property
    def packets_expected(self) -> int: ...

    @property
    def packets_lost(self) -> int: ...


class MediaStream(Protocol):
    """What the engine and `dtmf_send.KeyPress` use of a stream (see `RtpStream`)."""

    label: str
    local_address: tuple[str, int]
    ssrc: int
    closed: bool
    tap: MediaTap | None
    on_audio_done: Callable[[], None] | None
    on_key: Callable[[str], None] | None
    on_rtp_timeout: Callable[[], None] | None

    @property
    def stats(self) -> ReceiveCounts: ...

    @property
    def packets_sent(self) -> int: ...

    @property
    def rejected(self) -> int: ...

    @property
    def source(self) -> tuple[Any, ...] | None: ...

    @property
    def timestamp(self) -> int: ...

    def start(
        self,
        remote: tuple[str, int],
        *,
        frames: Sequence[Frame],
        silence: bytes,
        payload_type: int,
        dtmf_payload_type: int | None,
        no_rtp_timeout: float | None,
        hold_voice: bool = False,
    ) -> None: ...

    def release_voice(self) -> None: ...

    def set_remote(self, remote: tuple[str, int]) -> None: ...

    def watch_rtp(self, timeout: float | None) -> None: ...

    def tick(self) -> None: ...

    def send_event(self, payload: bytes, *, timestamp: int, marker: bool) -> None: ...

    def skip(self, samples: int) -> None: ...

    def check_rtp_timeout(self, now: float) -> None: ...

    def close(self) -> None: ...


class MediaPlane(Protocol):
    backend: Backend

    def stream(
        self, sock: socket.socket, *, label: str = "", monotonic: Callable[[], float]
    ) -> MediaStream: ...

    def read_ready(self) -> bool:
        """Read the datagrams waiting now (tests, which send over loopback and read at
        once); the event loop does this whenever a socket is readable."""
        ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class PythonMedia:
    """The pure-Python plane: an `RtpStream` per call, read through `SocketReaders`."""

    backend: Backend = "python"

    def __init__(self, *, interval: float) -> None:
        self.readers = SocketReaders(interval=interval)

    def stream(
        self, sock: socket.socket, *, label: str = "", monotonic: Callable[[], float]
    ) -> RtpStream:
        return RtpStream(sock, readers=self.readers, label=label, monotonic=monotonic)

    def read_ready(self) -> bool:
        return self.readers.read_all()

    def __len__(self) -> int:
        return len(self.readers)

    def close(self) -> None:
        self.readers.close()


class NativeMedia(StreamPump):
    backend: Backend = "native"


def choose_backend(environ: Mapping[str, str]) -> Backend:
    """The pump when it was built, unless `IVRCAST_MEDIA` says otherwise."""
    wanted = environ.get(ENVIRONMENT, "").strip().lower()
    if wanted == "python":
        return "python"
    if wanted == "native":
        if not NATIVE:
            raise RtpError(
                f"{ENVIRONMENT}=native, but the media pump was not built (no C compiler "
                "at install?); reinstall with gcc, or unset it for the Python streams"
            )
        return "native"
    if wanted not in ("", "auto"):
        raise RtpError(f"{ENVIRONMENT} must be native, python or auto; got {wanted!r}")
    return "native" if NATIVE else "python"


def open_media_plane(
    *, interval: float, backend: Backend | None = None, threaded: bool = True
) -> MediaPlane:
    """A media plane on the running event loop; `backend` None: `choose_backend`.
    `threaded`: the pump runs its own media thread (always, but in unit tests that
    drive it step by step)."""
    chosen = backend or choose_backend(os.environ)
    if chosen == "native":
        return NativeMedia(interval=interval, threaded=threaded)
    return PythonMedia(interval=interval)
