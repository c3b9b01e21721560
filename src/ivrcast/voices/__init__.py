"""The voice library's media side: decode and transcode audio, fetch it from URLs safely.

Nothing here knows SIP, RTP or HTTP serving. URLs pass the SSRF guard of
`ivrcast.netguard`, which the callback sender shares.
"""

from __future__ import annotations

from ivrcast.netguard import ResolvedUrl, UnresolvableHost, UrlNotAllowed, resolve_public
from ivrcast.voices.errors import (
    EmptyVoice,
    InvalidVoiceName,
    NoAudioStream,
    NotAudio,
    SampleRateTooHigh,
    TooManyChannels,
    VoiceFetchFailed,
    VoiceTooLarge,
    VoiceTooLong,
)
from ivrcast.voices.fetch import fetch_audio
from ivrcast.voices.transcode import EncodedVoice, transcode, validate_voice_name

__all__ = [
    "EmptyVoice",
    "EncodedVoice",
    "InvalidVoiceName",
    "NoAudioStream",
    "NotAudio",
    "ResolvedUrl",
    "SampleRateTooHigh",
    "TooManyChannels",
    "UnresolvableHost",
    "UrlNotAllowed",
    "VoiceFetchFailed",
    "VoiceTooLarge",
    "VoiceTooLong",
    "fetch_audio",
    "resolve_public",
    "transcode",
    "validate_voice_name",
]
