"""The console's voice upload refuses hostile audio with the API's words."""

from __future__ import annotations

from console_client import Console

from hostile_audio import EIGHT_CHANNELS_192K


async def test_an_eight_channel_upload_is_refused_naming_the_file(console: Console) -> None:
    async with console.signed_in() as client:
        csrf = await console.csrf(client, "/console/voices")
        refused = await client.post(
            "/console/voices",
            data={"csrf": csrf, "name": "surround"},
            files={"file": ("surround.flac", EIGHT_CHANNELS_192K, "audio/flac")},
        )
        listing = await client.get("/console/voices")
    assert refused.status_code == 400
    assert "file: the audio has 8 channels; at most 2 are accepted" in refused.text
    assert listing.status_code == 200
    assert "welcome" in listing.text
    assert "surround" not in listing.text
