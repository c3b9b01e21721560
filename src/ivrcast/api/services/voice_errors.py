"""Voice errors say what went wrong with the audio; here they learn which parameter held it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ivrcast.errors import ValidationError, VoiceError
from ivrcast.voices import UnresolvableHost, VoiceFetchFailed


class VoiceUnavailable(VoiceError):
    """The voice URL could not be downloaded."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


@contextlib.contextmanager
def voice_errors_for(param: str) -> Iterator[None]:
    """A download failure stays a voice error (vendor 1029: file does not exist); a file
    that is not usable audio, or a URL that may not be fetched, is a bad parameter."""
    try:
        yield
    except (VoiceFetchFailed, UnresolvableHost) as exc:
        raise VoiceUnavailable(param, exc.message) from exc
    except VoiceError as exc:
        raise ValidationError(param, exc.message) from exc
