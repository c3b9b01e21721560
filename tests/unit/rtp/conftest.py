"""The RTP stream tests run on both media planes: the native pump and the pure-Python
streams it falls back to (docs/media.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ivrcast.rtp.media import Backend, MediaPlane, open_media_plane
from ivrcast.rtp.pump import NATIVE


@pytest.fixture(params=["native", "python"])
async def media(request: pytest.FixtureRequest) -> AsyncIterator[MediaPlane]:
    backend: Backend = request.param
    if backend == "native" and not NATIVE:
        pytest.skip("the media pump was not built (no C compiler at install)")
    plane = open_media_plane(interval=0.02, backend=backend)
    yield plane
    plane.close()
