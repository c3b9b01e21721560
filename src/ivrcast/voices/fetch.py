"""Download an online voice (`voicetype=2`) without letting the URL reach inside.

Every URL, the first and each redirect target, passes `netguard.resolve_public`, and the
request goes to the address that was checked (see `netguard` on DNS rebinding). Redirects
are followed by hand for that reason. `total_timeout` bounds the whole download, DNS
and redirects included, so a server trickling one byte a second cannot hold a
submission for longer.

The size limit holds on the decoded body. We ask for `identity`, but a server may
compress anyway, and a few kilobytes of gzip inflate to gigabytes; httpx would inflate
each received chunk whole before we could count it. So the raw bytes are read and
inflated here, never more than one byte past the limit at a time (gzip and deflate; any
other encoding is refused).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from ivrcast.netguard import ResolvedUrl, UnresolvableHost, resolve_public, send_pinned
from ivrcast.voices.errors import VoiceFetchFailed, VoiceTooLarge

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HEADERS = {
    # Audio does not compress, and a compressed body could inflate past the size
    # limit inside a single chunk.
    "Accept-Encoding": "identity",
    # Pinned connections are keyed by address; never reuse one for another host name.
    "Connection": "close",
    "User-Agent": "ivrcast",
}
INFLATE_STEP = 64 << 10  # bytes asked of zlib at a time
# Content-Encoding → a fresh inflater (RFC 9110 §8.4.1: deflate means the zlib format).
_DECODERS: dict[str, Callable[[], zlib._Decompress]] = {
    "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "x-gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "deflate": zlib.decompressobj,
}


async def fetch_audio(
    url: str,
    *,
    allow_private: bool,
    max_bytes: int,
    connect_timeout: float = 5.0,
    total_timeout: float = 30.0,
    client: httpx.AsyncClient | None = None,
) -> bytes:
    """GET `url` and return the body, following at most three redirects.

    Raises `UrlNotAllowed` when the URL or a redirect target fails the SSRF guard,
    `VoiceTooLarge` as soon as the body exceeds `max_bytes`, and `VoiceFetchFailed` for
    a non-2xx answer (with its status), an unknown host, a connection failure, too many
    redirects, or no complete answer within `total_timeout` seconds. A given `client`
    must not use proxies (`trust_env=False`), which would connect on their own terms.
    """
    timeouts = httpx.Timeout(total_timeout, connect=connect_timeout)
    try:
        async with asyncio.timeout(total_timeout):
            if client is not None:
                return await _fetch(client, url, allow_private, max_bytes, timeouts)
            async with httpx.AsyncClient(trust_env=False, timeout=timeouts) as own:
                return await _fetch(own, url, allow_private, max_bytes, timeouts)
    except TimeoutError as exc:
        raise VoiceFetchFailed(url, f"no complete answer within {total_timeout:g} seconds") from exc


async def _fetch(
    client: httpx.AsyncClient,
    url: str,
    allow_private: bool,
    max_bytes: int,
    timeouts: httpx.Timeout,
) -> bytes:
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            resolved = await resolve_public(current, allow_private=allow_private)
        except UnresolvableHost as exc:
            raise VoiceFetchFailed(url, exc.message) from exc
        with _map_httpx_errors(url, timeouts):
            async with send_pinned(
                client, resolved, "GET", headers=_HEADERS, timeouts=timeouts
            ) as response:
                location = response.headers.get("Location")
                if response.status_code in _REDIRECT_STATUSES and location is not None:
                    current = _redirect_target(resolved, location)
                    continue
                if not response.is_success:
                    reason = f"the server answered {response.status_code} {response.reason_phrase}"
                    raise VoiceFetchFailed(url, reason.strip(), status=response.status_code)
                body = await _read_limited(response, url, max_bytes, timeouts)
        logger.debug(
            "voice fetched",
            extra={"event": "voice_fetched", "host": resolved.host, "bytes": len(body)},
        )
        return body
    raise VoiceFetchFailed(url, f"more than {MAX_REDIRECTS} redirects")


def _redirect_target(resolved: ResolvedUrl, location: str) -> str:
    # Relative to the URL as the customer named it, not to the pinned address. httpx
    # has already refused an unparsable Location (RemoteProtocolError) in `send`.
    return str(resolved.url.join(location))


async def _read_limited(
    response: httpx.Response, url: str, max_bytes: int, timeouts: httpx.Timeout
) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise VoiceTooLarge(max_bytes)
    if response.is_stream_consumed:
        # A transport that returned the body in memory (httpx's MockTransport) has had
        # it decoded already; there is nothing left to bound.
        if len(response.content) > max_bytes:
            raise VoiceTooLarge(max_bytes)
        return response.content
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    decoder: zlib._Decompress | None = None
    if encoding not in ("", "identity"):
        factory = _DECODERS.get(encoding)
        if factory is None:
            reason = f"the server sent the body as {encoding!r}, which ivrcast does not decode"
            raise VoiceFetchFailed(url, reason)
        decoder = factory()
    body = bytearray()
    with _map_httpx_errors(url, timeouts):
        async for chunk in response.aiter_raw():
            if decoder is None:
                body += chunk
                if len(body) > max_bytes:
                    raise VoiceTooLarge(max_bytes)
            else:
                _inflate(decoder, chunk, body, max_bytes, url)
    if decoder is not None and not decoder.eof:
        raise VoiceFetchFailed(url, f"the {encoding} body ended before its end")
    return bytes(body)


def _inflate(
    decoder: zlib._Decompress, data: bytes, body: bytearray, max_bytes: int, url: str
) -> None:
    """Append what `data` inflates to, `INFLATE_STEP` bytes at a time and never more than
    one byte past the limit, so a bomb costs `max_bytes` of memory, not its inflated size."""
    while data and not decoder.eof:
        try:
            body += decoder.decompress(data, min(INFLATE_STEP, max_bytes - len(body) + 1))
        except zlib.error as exc:
            raise VoiceFetchFailed(url, f"the compressed body is corrupt ({exc})") from exc
        if len(body) > max_bytes:
            raise VoiceTooLarge(max_bytes)
        data = decoder.unconsumed_tail


@contextmanager
def _map_httpx_errors(url: str, timeouts: httpx.Timeout) -> Iterator[None]:
    """Turn httpx's transport failures into `VoiceFetchFailed` with a plain reason."""
    try:
        yield
    except httpx.ConnectTimeout as exc:
        reason = f"could not connect to the server within {timeouts.connect:g} seconds"
        raise VoiceFetchFailed(url, reason) from exc
    except httpx.TimeoutException as exc:
        raise VoiceFetchFailed(url, "the server stopped answering") from exc
    except httpx.ConnectError as exc:
        raise VoiceFetchFailed(url, f"could not connect to the server ({exc})") from exc
    except httpx.HTTPError as exc:
        raise VoiceFetchFailed(url, f"the download failed ({exc or type(exc).__name__})") from exc
