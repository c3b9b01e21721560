"""Hostile audio made with PyAV: small files whose headers promise costly decoding."""

from __future__ import annotations

import io

import av


def flac_silence(seconds: float, *, rate: int, layout: str) -> bytes:
    """A FLAC of digital silence: a few hundred bytes per second whatever its shape."""
    out = io.BytesIO()
    with av.open(out, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate)
        stream.codec_context.layout = layout
        total = int(seconds * rate)
        for start in range(0, total, 4096):
            frame = av.AudioFrame(format="s16", layout=layout, samples=min(4096, total - start))
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


EIGHT_CHANNELS_192K = flac_silence(0.05, rate=192_000, layout="7.1")
"""Issue 13's attack was 590 s of this shape in 241 KB; the headers are what matter."""
