"""Call recordings at rest: where their files live, how long they are kept, and the
signed links that let a customer's system fetch one without credentials
(docs/recordings.md). Writing them is the media path's (`ivrcast.rtp.recording`)."""

from __future__ import annotations

from ivrcast.recordings.files import recording_path, sweep_recordings
from ivrcast.recordings.links import RecordingLinks

__all__ = ["RecordingLinks", "recording_path", "sweep_recordings"]
