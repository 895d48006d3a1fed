"""Reading a file in blocks while counting what the decoder really delivers.

A truncated compressed file (FLAC, MP3) announces its full length in the header and then ends
early, with a decoder error or a short read; a reader that pads the gap with silence renders it
as "ok". :class:`BlockReader` reports the shortfall instead: ``read`` returns fewer samples than
asked, and ``ended_early`` / ``frames_read`` tell by how much.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import soundfile as sf

__all__ = ["BlockReader"]


class BlockReader:
    """Reads ``(C, n)`` float32 blocks from ``path``.

    libsndfile reads every format it knows; pedalboard's decoder is the fallback for the rest.
    ``frames``: samples per channel the header declares. ``read(n)`` returns ``(C, k)`` with
    ``k == n`` while the file delivers, ``k < n`` once it ends (or its decoder fails) before
    ``frames``; after that ``ended_early`` is True and ``frames_read`` is the number of samples
    per channel that exist. Use as a context manager or call ``close()``.
    """

    def __init__(self, path: str | os.PathLike[str], channels: int, frames: int) -> None:
        self.channels = int(channels)
        self.frames = int(frames)
        self.frames_read = 0
        self.ended_early = False
        self.decoder_error = ""
        self._pb: Any = None
        self._sf: Any = None
        try:
            self._sf = sf.SoundFile(os.fsencode(path))  # bytes: non-UTF-8 names work too
        except (sf.SoundFileError, RuntimeError):
            from pedalboard.io import AudioFile

            self._pb = AudioFile(os.fspath(path))

    def read(self, n: int) -> np.ndarray:
        """Up to ``n`` samples per channel as float32 ``(C, k)``; ``k < n`` only at the real end."""
        want = max(0, min(int(n), self.frames - self.frames_read))
        x = np.zeros((self.channels, 0), np.float32)
        if want and not self.ended_early:
            try:
                if self._sf is not None:
                    x = self._sf.read(want, dtype="float32", always_2d=True).T
                else:
                    x = self._pb.read(want)
            except (sf.SoundFileError, RuntimeError) as exc:  # e.g. "flac decoder lost sync"
                self.decoder_error = str(getattr(exc, "error_string", None) or exc).strip()
                x = self._salvage(want)
            x = np.ascontiguousarray(x, dtype=np.float32)
        self.frames_read += x.shape[1]
        if x.shape[1] < min(int(n), self.frames - self.frames_read + x.shape[1]):
            self.ended_early = True
        return x

    def _salvage(self, want: int) -> np.ndarray:
        """After a decoder error: what of the failed block still decodes, in small steps."""
        parts: list[np.ndarray] = []
        got = 0
        if self._sf is None:
            return np.zeros((self.channels, 0), np.float32)
        try:
            self._sf.seek(self.frames_read)
            while got < want:
                y = self._sf.read(min(1024, want - got), dtype="float32", always_2d=True).T
                if y.shape[1] == 0:
                    break
                parts.append(y)
                got += y.shape[1]
        except (sf.SoundFileError, RuntimeError):
            pass
        return np.concatenate(parts, axis=1) if parts else np.zeros((self.channels, 0), np.float32)

    @property
    def missing_frames(self) -> int:
        """Samples per channel the header declares but the file did not deliver (0 when whole)."""
        return self.frames - self.frames_read if self.ended_early else 0

    def close(self) -> None:
        """Close the underlying file."""
        (self._sf if self._sf is not None else self._pb).close()

    def __enter__(self) -> "BlockReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
