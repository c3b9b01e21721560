"""Keeping host names' checked addresses between attempts: the real resolver and guard
(`localhost` from the hosts file), counted, on an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivrcast.callbacks.resolutions import KEEP_SECONDS, Resolutions
from ivrcast.clock import FrozenClock
from ivrcast.netguard import ResolvedUrl, UrlNotAllowed, UrlTarget, check_url, resolve_checked


class Counted:
    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.calls = 0

    async def __call__(self, target: UrlTarget) -> ResolvedUrl:
        self.calls += 1
        return await resolve_checked(target, allow_private=self.allow_private)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))


async def test_a_host_name_is_resolved_once_while_kept(clock: FrozenClock) -> None:
    resolve = Counted(allow_private=True)
    resolutions = Resolutions(allow_private=True, monotonic=clock.monotonic, resolve=resolve)
    target = check_url("http://localhost:8080/cb")
    first = await resolutions.resolve(target)
    clock.advance(KEEP_SECONDS - 1)
    assert await resolutions.resolve(target) == first
    assert resolve.calls == 1
    clock.advance(1)
    await resolutions.resolve(target)
    assert resolve.calls == 2


async def test_a_failed_attempt_forgets_the_addresses(clock: FrozenClock) -> None:
    resolve = Counted(allow_private=True)
    resolutions = Resolutions(allow_private=True, monotonic=clock.monotonic, resolve=resolve)
    target = check_url("http://localhost:8080/cb")
    await resolutions.resolve(target)
    resolutions.forget(target)
    await resolutions.resolve(target)
    assert resolve.calls == 2


async def test_a_refusal_is_never_kept(clock: FrozenClock) -> None:
    resolve = Counted(allow_private=False)
    resolutions = Resolutions(allow_private=False, monotonic=clock.monotonic, resolve=resolve)
    target = check_url("http://localhost:8080/cb")
    for _ in range(2):
        with pytest.raises(UrlNotAllowed):
            await resolutions.resolve(target)
    assert resolve.calls == 2


async def test_an_address_is_not_kept(clock: FrozenClock) -> None:
    resolve = Counted(allow_private=True)
    resolutions = Resolutions(allow_private=True, monotonic=clock.monotonic, resolve=resolve)
    target = check_url("http://127.0.0.1:8080/cb")
    await resolutions.resolve(target)
    await resolutions.resolve(target)
    assert resolve.calls == 2
