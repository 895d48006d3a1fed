"""Reading and writing audio files (anything libsndfile handles).

Conventions: audio is ``float32`` numpy of shape ``(C, N)`` — channels first, ``N`` samples at
``sample_rate`` Hz, full scale = 1.0. Mono helpers also accept ``(N,)``.

Reading refuses, with :class:`~svc_dsp.errors.UnsupportedAudioError` naming the file, anything
that is not audio, is truncated, has a sample rate outside 8000..192000 Hz or has 0 channels;
an empty file is refused with :class:`~svc_dsp.errors.AudioError`.

Writing never leaves a partial file: :class:`AtomicAudioWriter` writes to a hidden temporary file
beside the target (``.<name>.<pid>.<random>.partial``, see :mod:`svc_dsp.fileops`) and renames it onto the target only when the
``with`` block exits without an exception. Samples outside [-1, 1] written to a non-float subtype
are counted and clipped explicitly; ``FLOAT``/``DOUBLE`` subtypes keep them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Iterator, Union

import numpy as np
import soundfile as sf

from svc_dsp.errors import AudioError, UnsupportedAudioError
from svc_dsp.audio.truncation import declared_size, missing_frames, truncation_detail, truncation_message
from svc_dsp.fileops import open_temp_beside

PathLike = Union[str, "os.PathLike[str]"]

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
#: Subtypes written without clipping (everything else is clipped to [-1, 1] and counted).
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
_EXT_ALIASES = {"AIF": "AIFF", "AIFC": "AIFF", "OGA": "OGG", "OPUS": "OGG"}

__all__ = [
    "AudioInfo", "read_info", "load_audio", "iter_blocks", "sanitize", "replace_non_finite", "non_finite_warning",
    "AtomicAudioWriter", "save_audio", "format_from_path", "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE",
    "declared_size", "truncation_message", "truncation_detail",
]


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, as reported by libsndfile.

    ``frames`` is the number of samples per channel; ``format`` the libsndfile major format
    ('WAV', 'FLAC', 'AIFF', 'OGG', 'MP3', ...); ``subtype`` e.g. 'PCM_16', 'PCM_24', 'FLOAT'.
    """

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str
    missing_frames: int = 0

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


# --------------------------------------------------------------------------------------- reading

def _libsndfile_text(exc: Exception) -> str:
    text = getattr(exc, "error_string", None) or str(exc)
    return str(text).strip()


def _open_info(path: PathLike, allow_truncated: bool = False) -> AudioInfo:
    p = os.fspath(path)
    if not os.path.exists(p):
        raise AudioError(f"file '{p}': no such file — check the path")
    if os.path.isdir(p):
        raise AudioError(f"file '{p}': is a directory, expected an audio file — pass a file path")
    if os.path.getsize(p) == 0:
        raise AudioError(f"file '{p}': 0 bytes; the file is empty — re-export it from your DAW")
    try:
        raw = sf.info(os.fsencode(p))  # bytes: soundfile cannot encode non-UTF-8 names held as str
    except (sf.SoundFileError, RuntimeError) as exc:
        raise UnsupportedAudioError(
            f"file '{p}': not readable as audio (libsndfile: {_libsndfile_text(exc)}); "
            "allowed: formats libsndfile reads (WAV, FLAC, AIFF, OGG, MP3, ...) — "
            "check that it is an audio file and not truncated, or re-export it as WAV/FLAC"
        ) from exc
    info = AudioInfo(path=p, sample_rate=int(raw.samplerate), channels=int(raw.channels),
                     frames=int(raw.frames), format=str(raw.format), subtype=str(raw.subtype))
    _validate_info(info)
    missing = missing_frames(p, info.subtype, info.channels)
    if missing:
        if not allow_truncated:
            raise UnsupportedAudioError(truncation_message(p, info.sample_rate, info.frames, missing))
        info = AudioInfo(**{**info.__dict__, "missing_frames": missing})
    return info


def _validate_info(info: AudioInfo) -> None:
    if info.channels < 1:
        raise UnsupportedAudioError(
            f"file '{info.path}': {info.channels} channels; allowed: 1 or more — re-export it "
            "as mono or stereo"
        )
    if not MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE:
        raise UnsupportedAudioError(
            f"file '{info.path}': sample rate {info.sample_rate} Hz; allowed: "
            f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz — resample it (e.g. to 44100 or 48000 Hz) "
            "in your DAW or with sox"
        )
    if info.frames <= 0:
        raise AudioError(
            f"file '{info.path}': 0 samples; the file is empty — re-export it from your DAW"
        )


def read_info(path: PathLike, *, allow_truncated: bool = False) -> AudioInfo:
    """Return the :class:`AudioInfo` of ``path`` after the same checks as :func:`load_audio`.
    A WAV/RF64/W64/AIFF file holding fewer bytes than its header declares is refused unless
    ``allow_truncated``; then ``frames`` counts the samples present and ``missing_frames`` the rest.
    Compressed containers (FLAC, MP3) show truncation only while decoding: see :class:`BlockReader`."""
    return _open_info(path, allow_truncated)


def load_audio(path: PathLike, *, start: int = 0,
               frames: int = -1) -> tuple[np.ndarray, int, AudioInfo]:
    """Read ``frames`` samples per channel from ``start`` (``-1`` = to the end).

    Returns ``(audio, sample_rate, info)`` with ``audio`` float32 of shape ``(C, n)``.
    NaN/inf are returned as stored; pass the result through :func:`sanitize` if needed.
    """
    info = _open_info(path)
    if start < 0 or start > info.frames:
        raise AudioError(
            f"file '{info.path}': start={start}; allowed: 0..{info.frames} (the file has "
            f"{info.frames} samples) — pass a start inside the file"
        )
    if frames < -1:
        raise AudioError(f"file '{info.path}': frames={frames}; allowed: -1 (to the end) or >= 0")
    try:
        data = sf.read(os.fsencode(info.path), start=start, frames=frames, dtype="float32", always_2d=True)[0]
    except (sf.SoundFileError, RuntimeError) as exc:
        raise UnsupportedAudioError(
            f"file '{info.path}': decoding failed (libsndfile: {_libsndfile_text(exc)}); "
            "the file is damaged or truncated — export or copy it again"
        ) from exc
    return np.ascontiguousarray(data.T), info.sample_rate, info


def iter_blocks(path: PathLike, block_frames: int) -> Iterator[np.ndarray]:
    """Yield float32 blocks of shape ``(C, n)`` with ``n == block_frames`` (the last may be
    shorter), reading the file with constant memory. The file is checked (as by
    :func:`load_audio`) when this is called, not at the first ``next()``."""
    if block_frames < 1:
        raise AudioError(f"block_frames={block_frames}; allowed: >= 1")
    info = _open_info(path)
    return _blocks(info, int(block_frames))


def _blocks(info: AudioInfo, block_frames: int) -> Iterator[np.ndarray]:
    try:
        with sf.SoundFile(os.fsencode(info.path)) as fh:
            while True:
                data = fh.read(block_frames, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    return
                yield np.ascontiguousarray(data.T)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise UnsupportedAudioError(
            f"file '{info.path}': decoding failed (libsndfile: {_libsndfile_text(exc)}); "
            "the file is damaged or truncated — export or copy it again"
        ) from exc


def replace_non_finite(audio: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Replace NaN and ±inf by 0; returns ``(audio, n_nan, n_inf)``.

    ``audio`` is the input object itself (no copy) when every sample is finite or the array
    is not floating point, else a fixed copy.
    """
    arr = np.asarray(audio)
    if arr.dtype.kind != "f":
        return audio, 0, 0
    finite = np.isfinite(arr)
    if finite.all():
        return audio, 0, 0
    n_nan = int(np.count_nonzero(np.isnan(arr)))
    n_inf = int(arr.size - np.count_nonzero(finite) - n_nan)
    return np.where(finite, arr, arr.dtype.type(0)), n_nan, n_inf


def non_finite_warning(n_nan: int, n_inf: int) -> list[str]:
    """The warning :func:`sanitize` gives for these counts (empty when both are 0)."""
    return [f"{n_nan} NaN and {n_inf} inf samples replaced by 0"] if n_nan or n_inf else []


def sanitize(audio: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Replace NaN and ±inf by 0.

    Returns ``(audio, warnings)``; ``audio`` is the input object itself (no copy) when every
    sample is finite, else a fixed copy, and ``warnings`` is e.g.
    ``["3 NaN and 1 inf samples replaced by 0"]`` (empty when nothing was replaced).
    """
    fixed, n_nan, n_inf = replace_non_finite(audio)
    return fixed, non_finite_warning(n_nan, n_inf)


# --------------------------------------------------------------------------------------- writing

def format_from_path(path: PathLike) -> str:
    """libsndfile major format for a file name's extension ('x.wav' -> 'WAV')."""
    p = os.fspath(path)
    ext = Path(p).suffix.lstrip(".").upper()
    fmt = _EXT_ALIASES.get(ext, ext)
    if fmt not in sf.available_formats():
        allowed = ", ".join("." + f.lower() for f in ("WAV", "FLAC", "AIFF", "OGG", "MP3", "W64",
                                                      "RF64", "CAF"))
        raise UnsupportedAudioError(
            f"file '{p}': cannot tell the audio format from the extension '.{ext.lower()}'; "
            f"allowed: {allowed} (or any libsndfile format) — use one of these extensions or "
            "pass format='WAV'"
        )
    return fmt


def _no_peak_chunk(fh: sf.SoundFile) -> None:
    """libsndfile stamps float WAV/AIFF files with a PEAK chunk holding the current time, so two
    renders of the same audio would differ in their bytes; switch it off before any data is
    written (SFC_SET_ADD_PEAK_CHUNK = 0x1050, SF_FALSE). soundfile exposes no public call for it;
    if its internals ever move, only that header chunk differs and the audio is unchanged."""
    try:
        from soundfile import _ffi, _snd  # type: ignore[attr-defined]

        _snd.sf_command(fh._file, 0x1050, _ffi.NULL, 0)  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        pass


class AtomicAudioWriter:
    """Context manager writing ``(C, n)`` blocks to ``path`` atomically.

    Usage::

        with AtomicAudioWriter("out.wav", 48000, 2, subtype="PCM_24") as w:
            w.write(block)          # float (C, n), any float dtype
        print(w.clipped_samples)

    ``format``/``subtype`` default to the extension's format and libsndfile's default subtype for
    it (WAV -> PCM_16, FLAC -> PCM_16, ...). Attributes: ``frames_written`` (samples per channel),
    ``clipped_samples`` (samples outside [-1, 1] clipped for a non-float subtype, all channels
    counted), ``nonfinite_samples`` (NaN/inf written as 0).
    """

    def __init__(self, path: PathLike, sample_rate: int, channels: int, *,
                 format: str | None = None, subtype: str | None = None) -> None:
        self.path = os.fspath(path)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        fmt = (format or format_from_path(self.path)).upper()
        if fmt not in sf.available_formats():
            raise UnsupportedAudioError(
                f"file '{self.path}': format {fmt!r}; allowed: "
                f"{', '.join(sorted(sf.available_formats()))} — pass one of these"
            )
        sub = (subtype or sf.default_subtype(fmt) or "").upper()
        if not sub or not sf.check_format(fmt, sub):
            raise UnsupportedAudioError(
                f"file '{self.path}': subtype {sub!r} cannot be written as {fmt}; allowed: "
                f"{', '.join(sorted(sf.available_subtypes(fmt)))} — pick one of these"
            )
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise UnsupportedAudioError(
                f"file '{self.path}': sample rate {self.sample_rate} Hz; allowed: "
                f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz — resample before writing"
            )
        if self.channels < 1:
            raise UnsupportedAudioError(
                f"file '{self.path}': {self.channels} channels; allowed: 1 or more"
            )
        self.format = fmt
        self.subtype = sub
        self.clip = sub not in FLOAT_SUBTYPES
        self.frames_written = 0
        self.clipped_samples = 0
        self.nonfinite_samples = 0
        self.temp_path: str | None = None
        self._fh: sf.SoundFile | None = None

    def __enter__(self) -> "AtomicAudioWriter":
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise AudioError(
                f"file '{self.path}': folder '{directory}' does not exist — create it first"
            )
        fd, tmp = open_temp_beside(self.path)
        os.close(fd)
        self.temp_path = tmp
        try:
            self._fh = sf.SoundFile(os.fsencode(tmp), "w", samplerate=self.sample_rate,
                                    channels=self.channels, format=self.format,
                                    subtype=self.subtype)
            _no_peak_chunk(self._fh)
        except BaseException as exc:
            self._discard()
            if isinstance(exc, (sf.SoundFileError, RuntimeError)):
                raise AudioError(
                    f"file '{self.path}': cannot open for writing as {self.format}/"
                    f"{self.subtype} (libsndfile: {_libsndfile_text(exc)})"
                ) from exc
            raise
        return self

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` of shape ``(C, n)`` (or ``(n,)`` when mono), float, full scale 1.0."""
        if self._fh is None:
            raise AudioError(f"file '{self.path}': writer is not open — use it in a 'with' block")
        arr = np.asarray(block)
        if arr.ndim == 1 and self.channels == 1:
            arr = arr[np.newaxis, :]
        if arr.ndim != 2 or arr.shape[0] != self.channels:
            raise AudioError(
                f"file '{self.path}': block of shape {arr.shape}; allowed: ({self.channels}, n) "
                "(channels first) — transpose (n, C) arrays with .T"
            )
        if arr.dtype.kind != "f":
            raise AudioError(f"file '{self.path}': block dtype {arr.dtype}; allowed: float")
        if arr.shape[1] == 0:
            return
        data = arr.astype(np.float32 if self.subtype != "DOUBLE" else np.float64, copy=False)
        finite = np.isfinite(data)
        if not finite.all():
            self.nonfinite_samples += int(data.size - np.count_nonzero(finite))
            data = np.where(finite, data, data.dtype.type(0))
        if self.clip:
            over = int(np.count_nonzero(np.abs(data) > 1.0))
            if over:
                self.clipped_samples += over
                data = np.clip(data, -1.0, 1.0)
        self._fh.write(np.ascontiguousarray(data.T))
        self.frames_written += arr.shape[1]

    def _discard(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except Exception:  # noqa: BLE001 - we are already failing; remove the file anyway
                pass
            self._fh = None
        if self.temp_path is not None:
            try:
                os.unlink(self.temp_path)
            except FileNotFoundError:
                pass
            self.temp_path = None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._discard()
            return
        assert self._fh is not None and self.temp_path is not None
        try:
            self._fh.close()
            self._fh = None
            fd = os.open(self.temp_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.temp_path, self.path)
            self.temp_path = None
        except BaseException:
            self._discard()
            raise


def save_audio(path: PathLike, audio: np.ndarray, sample_rate: int, *,
               format: str | None = None, subtype: str | None = None) -> int:
    """Write ``audio`` (``(C, N)`` or mono ``(N,)``) atomically; return the clipped-sample count."""
    arr = np.asarray(audio)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise AudioError(f"file '{os.fspath(path)}': audio of shape {arr.shape}; "
                         "allowed: (C, N) or (N,)")
    with AtomicAudioWriter(path, sample_rate, arr.shape[0], format=format,
                           subtype=subtype) as writer:
        step = 1 << 16
        for i in range(0, max(arr.shape[1], 1), step):
            writer.write(arr[:, i:i + step])
    return writer.clipped_samples
