"""Host names' checked addresses, kept for a short while between attempts.

An attempt to a host name resolved it again every time: a hop through the event loop's
thread pool for `getaddrinfo`, and, where the host runs no caching resolver, a DNS query
per POST. `Resolutions` keeps what `netguard.resolve_checked` returned, for
`KEEP_SECONDS`.

This does not weaken the SSRF guard against DNS rebinding. Rebinding works by answering
one address to the check and another to the connection; here the check and the
connection both use the addresses kept, every one of which passed the check when it was
resolved, so no answer reaches a socket unchecked. What a cache can cost is staleness: a
receiver that moves is reached at its new address up to `KEEP_SECONDS` later, or at the
next attempt once an attempt to the old one fails (`forget`). Refusals and failures to
resolve are never kept: a fixed DNS record is used at once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from ivrcast.netguard import ResolvedUrl, UrlTarget, resolve_checked

KEEP_SECONDS = 30.0
"""Well under the usual DNS TTLs (minutes), which `getaddrinfo` does not report."""
KEPT = 1024
"""URLs kept at most (the whole cache is dropped when it is full)."""

Resolve = Callable[[UrlTarget], Awaitable[ResolvedUrl]]


class Resolutions:
    """`resolve(target)`: the checked addresses of `target`'s host, resolved at most once
    per `KEEP_SECONDS` (by `monotonic`'s clock) while attempts to them succeed."""

    def __init__(
        self,
        *,
        allow_private: bool,
        monotonic: Callable[[], float],
        resolve: Resolve | None = None,
    ) -> None:
        self._monotonic = monotonic
        self._resolve: Resolve = resolve or (
            lambda target: resolve_checked(target, allow_private=allow_private)
        )
        self._kept: dict[str, tuple[ResolvedUrl, float]] = {}

    async def resolve(self, target: UrlTarget) -> ResolvedUrl:
        key = str(target.url)
        kept = self._kept.get(key)
        now = self._monotonic()
        if kept is not None and now < kept[1]:
            return kept[0]
        resolved = await self._resolve(target)
        if not _is_address(target.host):
            if len(self._kept) >= KEPT:
                self._kept.clear()
            self._kept[key] = (resolved, now + KEEP_SECONDS)
        return resolved

    def forget(self, target: UrlTarget) -> None:
        """The attempt to `target` failed: its host is resolved again next time."""
        self._kept.pop(str(target.url), None)


def _is_address(host: str) -> bool:
    """An IP literal: nothing to resolve, nothing worth keeping."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
