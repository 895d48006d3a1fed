"""Speaker-perturbed copies of a training piece, for content augmentation of the decoder.

A voice model learns from its own singer's content units, which its encoder reads with
confidence. At conversion time the units come from somebody else: less certain, and where the
encoder is speaker-dependent, sometimes another phone. Re-encoding the singer's own audio after
moving its formants (a longer or shorter vocal tract), tilting its spectrum and shifting its
pitch gives units that look like another voice's, while the audio the decoder must produce stays
the singer's. Training on a share of those (``content_augment`` in the training config) teaches
the decoder to read such units back into the singer's words.

WORLD (pyworld) analyses the piece on the engine's 5 ms frame grid with the F0 that the
features stage has already tracked, changes envelope and F0, and resynthesises.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ranges of one perturbation (drawn log-uniformly where a ratio)
WARP_RANGE = (0.8, 1.25)       # formant frequencies x this (vocal-tract length ~ 1/warp)
F0_SEMITONES = 7.0             # pitch moved by up to this many semitones either way
TILT_DB_PER_OCTAVE = 3.0       # spectral tilt around 1 kHz, either way


@dataclass(frozen=True)
class Perturbation:
    """One drawn change of voice: formant warp (ratio), F0 shift (semitones), tilt (dB/octave)."""

    warp: float
    semitones: float
    tilt_db: float

    @staticmethod
    def draw(rng: np.random.Generator) -> "Perturbation":
        lo, hi = np.log(WARP_RANGE[0]), np.log(WARP_RANGE[1])
        return Perturbation(warp=float(np.exp(rng.uniform(lo, hi))),
                            semitones=float(rng.uniform(-F0_SEMITONES, F0_SEMITONES)),
                            tilt_db=float(rng.uniform(-TILT_DB_PER_OCTAVE, TILT_DB_PER_OCTAVE)))


def warp_envelope(sp: np.ndarray, warp: float) -> np.ndarray:
    """Spectral envelope (frames, bins) with formants moved by ``warp``: sp'(f) = sp(f / warp).

    Bins past the edge hold the edge value.
    """
    bins = np.arange(sp.shape[1], dtype=np.float64)
    src = np.clip(bins / warp, 0, sp.shape[1] - 1)
    return np.stack([np.interp(src, bins, row) for row in sp])


def perturb_voice(audio: np.ndarray, sample_rate: int, f0: np.ndarray, hop: int,
                  change: Perturbation, f0_range: tuple[float, float] = (50.0, 1100.0)) -> np.ndarray:
    """``audio`` (float (N,) at ``sample_rate``) sung by a different-sounding voice.

    ``f0``: Hz per engine frame (T,), frame j centred near sample (j+1)*hop, 0 where unvoiced
    (the features stage's F0). Returns float32 (N,), peak matched to the input's.
    """
    from svc_dsp.features.f0_world import load_pyworld

    pw = load_pyworld()
    x = np.ascontiguousarray(audio, dtype=np.float64)
    n_world = x.shape[0] // hop + 1
    # WORLD frame k sits at sample k*hop; engine frame j at (j+1)*hop
    f0w = np.concatenate([f0[:1], f0[:n_world - 1]]).astype(np.float64)
    f0w = np.pad(f0w, (0, max(0, n_world - f0w.shape[0])), mode="edge")[:n_world]
    t = np.arange(n_world, dtype=np.float64) * hop / sample_rate
    sp = pw.cheaptrick(x, f0w, t, sample_rate)
    ap = pw.d4c(x, f0w, t, sample_rate)
    sp = warp_envelope(sp, change.warp)
    freqs = np.maximum(np.linspace(0.0, sample_rate / 2.0, sp.shape[1]), 50.0)
    sp = sp * 10.0 ** (change.tilt_db * np.log2(freqs / 1000.0) / 10.0)  # power: dB/10
    new_f0 = np.where(f0w > 0, np.clip(f0w * 2.0 ** (change.semitones / 12.0), *f0_range), 0.0)
    y = pw.synthesize(new_f0, np.ascontiguousarray(sp), np.ascontiguousarray(ap), sample_rate,
                      1000.0 * hop / sample_rate)
    y = np.pad(y, (0, max(0, x.shape[0] - y.shape[0])))[: x.shape[0]]
    peak_in, peak_out = float(np.max(np.abs(x), initial=0.0)), float(np.max(np.abs(y), initial=0.0))
    if peak_out > 0.0:
        y *= min(0.99, peak_in) / peak_out
    return y.astype(np.float32)
