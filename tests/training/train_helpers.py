"""Small helpers shared by the training tests (imported by file name; no package)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import soundfile as sf

TINY_ARCH = {"channels": 32, "n_harmonics": 24, "n_noise_bands": 12, "dilations": [1, 2, 4], "speaker_dim": 8}


def write_config(path: Path, prep_dir: Path, **overrides: object) -> Path:
    """A tiny, fast training config (JSON) for ``prep_dir``."""
    cfg = {"prep_dir": str(prep_dir), "max_steps": 6, "batch_size": 2, "segment_seconds": 0.3,
           "log_interval": 2, "eval_interval": 3, "keep_ckpts": 2, "seed": 7, "val_max_seconds": 1.0,
           "fft_sizes": [512, 256, 128], "architecture": TINY_ARCH}
    cfg.update(overrides)
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


SR_RAW = 22050
ENCODER_NAME = "random-test-encoder"


def sung_phrase(rng: np.random.Generator, seconds: float, sr: int, f0_base: float) -> np.ndarray:
    """A voice-like test signal: notes with vibrato and glides, formant-shaped harmonics,
    breath noise, and short pauses between phrases."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    note_len = int(0.4 * sr)
    notes = f0_base * 2.0 ** (rng.integers(-5, 8, size=n // note_len + 1) / 12.0)
    f0 = np.repeat(notes, note_len)[:n]
    f0 = np.convolve(f0, np.ones(400) / 400, mode="same")  # glides
    f0 *= 2.0 ** (0.3 / 12.0 * np.sin(2 * math.pi * 5.5 * t))  # vibrato
    phase = 2 * math.pi * np.cumsum(f0) / sr
    x = np.zeros(n)
    for k in range(1, 30):
        fk = k * f0
        gain = np.exp(-((fk - 700.0) / 500.0) ** 2) + 0.6 * np.exp(-((fk - 1900.0) / 700.0) ** 2) + 0.05
        x += np.where(fk < sr / 2 - 500, gain / k ** 0.5, 0.0) * np.sin(k * phase)
    x += 0.02 * rng.standard_normal(n)
    env = np.ones(n)
    for start in np.arange(0.9, seconds - 0.5, 1.3):  # 0.35 s pauses
        a = int(start * sr)
        env[a:a + int(0.35 * sr)] = 0.0
    env = np.convolve(env, np.ones(441) / 441, mode="same")
    y = 0.2 * x * env / np.max(np.abs(x))
    return y.astype(np.float32)


def make_dataset(root: Path, files_per_speaker: int = 2, seconds: float = 3.0, seed: int = 0) -> Path:
    """dataset_raw with two speakers ('alto', 'sängerin' — non-ASCII), 2-3 files each,
    a stereo file, a non-ASCII file name and one corrupt file."""
    rng = np.random.default_rng(seed)
    raw = root / "dataset_raw"
    for spk, base in (("alto", 220.0), ("sängerin", 330.0)):
        d = raw / spk
        d.mkdir(parents=True, exist_ok=True)
        for i in range(files_per_speaker):
            y = sung_phrase(rng, seconds, SR_RAW, base)
            name = f"take_{i}.wav" if i else "lied_ü_1.wav"
            if spk == "alto" and i == 1:
                y = np.stack([y, 0.8 * y])  # stereo: mixed down by prepare
            sf.write(d / name, y.T, SR_RAW, subtype="PCM_16")
    (raw / "alto" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    return raw


def write_random_encoder(root: Path, seed: int = 0) -> Path:
    """A random 'causal-mel' encoder folder under ``root/encoders/<name>`` (a catalog root)."""
    from svc_dsp.models.encoders.causal_mel import CausalMelEncoder
    from svc_dsp.models.folder import write_model_folder

    enc = CausalMelEncoder.random(seed, channels=32, dim=16, dilations=[1, 2, 4])
    folder = root / "encoders" / ENCODER_NAME
    write_model_folder(folder, enc.config, {"encoder.safetensors": enc.tensors()}, overwrite=True)
    return folder
