"""Audio I/O, resampling, levels and slicing for svc-host.

Convention everywhere: multichannel audio is float32 numpy of shape ``(C, N)`` (channels
first), ``N`` samples at ``sample_rate`` Hz, full scale 1.0; mono helpers accept ``(N,)``.
"""
from svc_dsp.audio.io import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    AtomicAudioWriter,
    AudioInfo,
    format_from_path,
    iter_blocks,
    load_audio,
    read_info,
    sanitize,
    save_audio,
)
from svc_dsp.audio.levels import (
    db_to_gain,
    gain_to_db,
    integrated_lufs,
    k_weighting_sos,
    normalize_loudness,
    peak_db,
    rms_db,
    true_peak_db,
)
from svc_dsp.audio.resample import QUALITIES, StreamResampler, output_length, resample
from svc_dsp.audio.slicing import energy_minimum_cuts, frame_rms, silence_slices, split_long

__all__ = [
    "AudioInfo", "read_info", "load_audio", "iter_blocks", "sanitize", "AtomicAudioWriter",
    "save_audio", "format_from_path", "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE",
    "resample", "StreamResampler", "output_length", "QUALITIES",
    "rms_db", "peak_db", "db_to_gain", "gain_to_db", "k_weighting_sos", "integrated_lufs",
    "true_peak_db", "normalize_loudness",
    "frame_rms", "silence_slices", "split_long", "energy_minimum_cuts",
]
