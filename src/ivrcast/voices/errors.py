"""Why a voice could not be used.

Every message is written for the API customer who sent the file or URL, so the API can
pass it through unchanged.

    VoiceError (ivrcast.errors)
    ├── NotAudio            the bytes are not a media file ivrcast can decode
    ├── NoAudioStream       a media file, but with no audio in it (video, image)
    ├── EmptyVoice          the audio holds no samples at all
    ├── VoiceTooLong        longer than the configured limit
    ├── TooManyChannels     more channels than the configured limit (from the headers)
    ├── SampleRateTooHigh   a higher sample rate than the configured limit (headers)
    ├── VoiceTooLarge       more bytes than the upload or download limit
    ├── VoiceFetchFailed    the voice URL could not be downloaded
    ├── UrlNotAllowed       (ivrcast.netguard) the URL may not be fetched
    └── UnresolvableHost    (ivrcast.netguard) the URL's host has no address
    ValidationError (ivrcast.errors)
    └── InvalidVoiceName    param "name"
"""

from __future__ import annotations

from ivrcast.errors import ValidationError, VoiceError


class NotAudio(VoiceError):
    """The file is not audio that ivrcast can decode."""


class NoAudioStream(VoiceError):
    """The file holds no audio stream."""


class EmptyVoice(VoiceError):
    """The audio is empty: it holds no sound at all."""


class VoiceTooLong(VoiceError):
    """The audio is longer than allowed."""

    def __init__(self, max_duration: float, *, declared: float | None = None) -> None:
        self.max_duration = max_duration
        self.declared = declared
        if declared is None:
            super().__init__(f"the audio is longer than the limit of {max_duration:g} seconds")
        else:
            super().__init__(
                f"the file declares {declared:.1f} seconds of audio, "
                f"longer than the limit of {max_duration:g} seconds"
            )


class TooManyChannels(VoiceError):
    """The audio has more channels than allowed."""

    def __init__(self, channels: int, max_channels: int) -> None:
        self.channels = channels
        self.max_channels = max_channels
        super().__init__(f"the audio has {channels} channels; at most {max_channels} are accepted")


class SampleRateTooHigh(VoiceError):
    """The audio's sample rate is higher than allowed."""

    def __init__(self, rate: int, max_rate: int) -> None:
        self.rate = rate
        self.max_rate = max_rate
        super().__init__(f"the audio is sampled at {rate} Hz; at most {max_rate} Hz is accepted")


class VoiceTooLarge(VoiceError):
    """The file is larger than allowed."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        super().__init__(f"the file is larger than the limit of {max_bytes} bytes")


class VoiceFetchFailed(VoiceError):
    """The voice URL could not be downloaded."""

    def __init__(self, url: str, reason: str, *, status: int | None = None) -> None:
        self.url = url
        self.reason = reason
        self.status = status
        # The URL stays out of the message: signed URLs carry secrets in the query,
        # and messages end up in logs.
        super().__init__(f"could not download the voice URL: {reason}")


class InvalidVoiceName(ValidationError):
    """The voice name is not allowed."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__("name", f"{name!r}: {reason}")
