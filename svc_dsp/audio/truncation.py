"""Files shorter than their header says (an interrupted copy, download or export).

libsndfile reads what is there without a word, so a cut WAV loads as a shorter file. PCM
containers (RIFF/RF64/BW64 WAV, Sony Wave64, AIFF) declare their size in the header:
:func:`missing_frames` compares it with the bytes present. Compressed containers (FLAC, MP3)
show truncation only while decoding (:class:`svc_dsp.audio.block_reader.BlockReader`).
"""
from __future__ import annotations

import os
import struct

__all__ = ["declared_size", "missing_frames", "truncation_message", "truncation_detail"]

_W64_RIFF = bytes.fromhex("726966662e91cf11a5d628db04c10000")
_BYTES_PER_SAMPLE = {"PCM_S8": 1, "PCM_U8": 1, "ULAW": 1, "ALAW": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4,
                     "FLOAT": 4, "DOUBLE": 8}


def declared_size(path: str) -> tuple[int, int] | None:
    """``(bytes the container header declares, bytes the file holds)`` for RIFF/RF64 (WAV),
    Sony Wave64 and FORM (AIFF) files; None for other containers or unreadable headers."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(40)
    except OSError:
        return None
    if len(head) < 12:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return struct.unpack("<I", head[4:8])[0] + 8, size
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return struct.unpack(">I", head[4:8])[0] + 8, size
    if head[:4] in (b"RF64", b"BW64") and head[8:12] == b"WAVE" and head[12:16] == b"ds64" and len(head) >= 28:
        return struct.unpack("<Q", head[20:28])[0] + 8, size  # ds64: chunk size, then the 64-bit RIFF size
    if head[:16] == _W64_RIFF and len(head) >= 24:
        return struct.unpack("<Q", head[16:24])[0], size  # the size field counts the whole file
    return None


def truncation_message(path: str, sample_rate: int, present: int, missing: int) -> str:
    """The one line that names a truncated file, the missing duration and both ways out."""
    return f"file '{path}': " + truncation_detail(sample_rate, present, missing)


def truncation_detail(sample_rate: int, present: int, missing: int) -> str:
    """:func:`truncation_message` without the file name."""
    return (f"truncated: the header declares {(present + missing) / sample_rate:.3f} s, "
            f"the file holds {present / sample_rate:.3f} s ({missing / sample_rate:.3f} s = {missing} samples "
            f"missing at the end; an interrupted copy, download or export) — copy or export it again, "
            f"or accept the loss (svc-host render --allow-truncated renders the part that is there)")


def missing_frames(path: str, subtype: str, channels: int) -> int:
    """Frames the header declares beyond the bytes present (0 when whole or not a PCM container).
    libsndfile silently reads what is there, so an interrupted copy would otherwise load as a
    shorter file without any warning."""
    sizes = declared_size(path)
    if sizes is None:
        return 0
    declared, size = sizes
    if declared <= size + 1:  # +1: a missing odd-length pad byte is harmless
        return 0
    per_frame = _BYTES_PER_SAMPLE.get(subtype, 0) * channels
    return max(1, -(-(declared - size) // per_frame)) if per_frame else 1  # a cut frame counts as missing
