"""Stage 2: per prepared piece, content units + energy + F0 + loudness, cached.

For ``audio/<speaker>/<n>.wav`` this writes ``features/<speaker>/<n>.npz`` holding float32
arrays on the engine's frame grid (frame j describes the audio around sample (j+1)*hop):

    units     (T, D)  content units of the frozen encoder (delay removed); for a Whisper encoder
                      its units on the 'hpnw' grid (:class:`svc_dsp.models.hpnw.GridFeatures`)
    energy    (T,)    the decoder's loudness input: log mel-power sum ('hpn'), or frame
                      loudness dB / 20 ('hpnw')
    f0        (T,)    Hz, 0 where unvoiced
    loudness  (T,)    dB (Hann-weighted RMS), for reports and loudness statistics
    units_perturbed (K, T, D) float16, only with ``content_variants`` K > 0: the units of K
                      speaker-perturbed copies of the piece (:mod:`training.content_perturb`),
                      for the training config's ``content_augment``

and a sidecar ``<n>.json`` (written last; it marks the npz complete) recording the encoder's
sha256, the F0 method and range, and the audio's size, mtime and sha256. A re-run redoes
only what is missing or stale; when only the encoder changed, the (slow) F0 is kept.
``features/features.json`` records the encoder reference that training and export use.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.fileops import write_atomic
from svc_dsp.models.folder import sha256_file as sha256_of
from svc_dsp.errors import TrainingError
from training.prepare import read_filelist, read_prepared

FEATURES_VERSION = 1
DEFAULT_F0_RANGE = (50.0, 1100.0)
MAX_CONTENT_VARIANTS = 16
# sidecar keys that older sidecars lack, and the value their absence means
_ABSENT_MEANS = {"content_variants": 0}
# settings the F0 and loudness arrays depend on (the rest may change without re-tracking F0)
_F0_KEYS = ("f0_method", "f0_range", "sample_rate", "hop", "version")
#: encoder kinds a voice can be trained on: 'causal-mel' -> family 'hpn', 'whisper' -> family 'hpnw'
TRAINABLE_KINDS = ("causal-mel", "whisper")


@dataclass
class FeatureReport:
    """What :func:`extract_features` did; ``failed``: [(audio path, reason)]."""

    computed: int = 0
    up_to_date: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds_of_audio: float = 0.0
    wall_seconds: float = 0.0
    encoder: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"features: {self.computed} computed ({self.seconds_of_audio:.0f} s of audio in "
                 f"{self.wall_seconds:.1f} s), {self.up_to_date} already up to date; encoder "
                 f"'{self.encoder.get('name')}' ({self.encoder.get('dim')}-dim)"]
        lines += [f"  failed '{p}': {why}" for p, why in self.failed]
        return "\n".join(lines)


def resolve_encoder_folder(encoder_folder_or_name: str | os.PathLike) -> Path:
    """A content-encoder folder from a path or a catalog name (``encoders/<name>``)."""
    from svc_dsp.models.catalog import find_in_catalog

    p = Path(encoder_folder_or_name)
    if p.is_dir():
        return p.resolve()
    return find_in_catalog("encoders", str(encoder_folder_or_name)).resolve()


def encoder_reference(folder: Path) -> dict[str, Any]:
    """{"kind", "name", "dim", "sha256", "path"} of a content-encoder folder (path is absolute)."""
    from svc_dsp.models.encoders.registry import load_content_encoder

    enc = load_content_encoder(folder)
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise TrainingError(f"content encoder '{folder}' has no *.safetensors weights")
    return {"kind": enc.kind, "name": str(enc.config.get("name", folder.name)), "dim": int(enc.dim),
            "sha256": sha256_of(weights[0]), "path": str(folder)}


def features_path(prep_dir: Path, rel_audio: str) -> Path:
    """``audio/<spk>/<n>.wav`` -> ``prep_dir/features/<spk>/<n>.npz``."""
    parts = Path(rel_audio).parts
    return Path(prep_dir, "features", *parts[1:]).with_suffix(".npz")


def _is_fresh(sidecar: Path, audio: Path, want: dict[str, Any]) -> bool:
    """True when the sidecar matches the settings and the audio (size+mtime, else sha256)."""
    if not sidecar.is_file() or not sidecar.with_suffix(".npz").is_file():
        return False
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    for k, v in want.items():
        if meta.get(k, _ABSENT_MEANS.get(k)) != v:
            return False
    st = audio.stat()
    if meta.get("audio_size") == st.st_size and meta.get("audio_mtime_ns") == st.st_mtime_ns:
        return True
    if meta.get("audio_sha256") == sha256_of(audio):  # touched but unchanged: refresh the sidecar
        meta.update(audio_size=st.st_size, audio_mtime_ns=st.st_mtime_ns)
        write_atomic(sidecar, json.dumps(meta, indent=1).encode())
        return True
    return False


_WORKER: dict[str, Any] = {}


def _init_worker(encoder_folder: str, threads: int | None) -> None:
    import torch

    from svc_dsp.models.encoders.registry import load_content_encoder

    if threads is not None:  # worker processes only; the caller's setting is left alone
        torch.set_num_threads(threads)
    enc = load_content_encoder(encoder_folder)
    if enc.kind == "whisper":  # the 'hpnw' grid: the same functions its convert_window runs
        from svc_dsp.models.hpnw import GridFeatures

        enc = GridFeatures(enc)
    _WORKER["encoder"] = enc
    _WORKER["folder"] = encoder_folder


def compute_features(audio: np.ndarray, sample_rate: int, encoder: Any, f0_method: str,
                     f0_range: tuple[float, float] = DEFAULT_F0_RANGE,
                     reuse: dict[str, np.ndarray] | None = None, content_variants: int = 0,
                     variant_seed: int = 0) -> dict[str, np.ndarray]:
    """Feature arrays of one mono float32 signal (see the module docstring).

    ``reuse``: earlier 'f0' and 'loudness' arrays of the same audio and F0 settings (only the
    encoder changed), taken as they are instead of re-tracking F0.
    ``content_variants``: how many speaker-perturbed copies to encode into 'units_perturbed',
    their changes drawn from ``variant_seed``.
    """
    import svc_dsp.features  # noqa: F401  (registers the F0 trackers)
    from svc_dsp.features.f0 import get_f0_tracker
    from svc_dsp.features.loudness import frame_loudness_db

    hop = encoder.hop(sample_rate)
    units, energy = encoder.encode_with_energy(audio, sample_rate)
    n = units.shape[0]
    if reuse is not None and reuse["f0"].shape[0] == n:
        f0, loud = reuse["f0"], reuse["loudness"]
    else:
        f0 = get_f0_tracker(f0_method).track(audio, sample_rate, hop, n, f0_range[0], f0_range[1])
        loud = frame_loudness_db(audio, sample_rate, hop, n)
    out = {"units": units.astype(np.float32), "energy": energy.astype(np.float32),
           "f0": np.asarray(f0, np.float32), "loudness": np.asarray(loud, np.float32)}
    if content_variants > 0:
        out["units_perturbed"] = _perturbed_units(audio, sample_rate, encoder, out["f0"], hop, n,
                                                  content_variants, variant_seed, f0_range)
    return out


def _perturbed_units(audio: np.ndarray, sample_rate: int, encoder: Any, f0: np.ndarray, hop: int, n: int,
                     k: int, seed: int, f0_range: tuple[float, float]) -> np.ndarray:
    """(k, n, D) float16 units of ``k`` speaker-perturbed copies of ``audio``."""
    from training.content_perturb import Perturbation, perturb_voice

    rng = np.random.default_rng(seed)
    out = np.empty((k, n, encoder.dim), np.float16)
    for i in range(k):
        y = perturb_voice(audio, sample_rate, f0, hop, Perturbation.draw(rng), f0_range)
        out[i] = encoder.encode_with_energy(y, sample_rate)[0][:n]
    return out


def _extract_one(prep_dir: str, rel: str, want: dict[str, Any]) -> tuple[str, float, str | None]:
    """Compute and write one file's features; returns (rel, seconds of audio, error or None)."""
    from svc_dsp.audio.io import load_audio

    audio_path = Path(prep_dir) / rel
    out = features_path(Path(prep_dir), rel)
    try:
        x, sr, _ = load_audio(audio_path)
        if sr != want["sample_rate"]:
            return rel, 0.0, f"sample rate {sr} Hz, the prepared set says {want['sample_rate']}; re-run prepare"
        mono = x.mean(axis=0).astype(np.float32)
        reuse = None
        same_f0 = {k: v for k, v in {**want, "version": FEATURES_VERSION}.items() if k in _F0_KEYS}
        if _is_fresh(out.with_suffix(".json"), audio_path, same_f0):
            with np.load(out) as z:  # only the encoder or the variants changed: keep the (slow) F0
                reuse = {"f0": z["f0"], "loudness": z["loudness"]}
        feats = compute_features(mono, sr, _WORKER["encoder"], want["f0_method"], tuple(want["f0_range"]), reuse,
                                 want["content_variants"], zlib.crc32(rel.encode("utf-8")))
        out.parent.mkdir(parents=True, exist_ok=True)
        buf = _npz_bytes(feats)
        write_atomic(out, buf)
        st = audio_path.stat()
        meta = {**want, "version": FEATURES_VERSION, "audio": rel, "audio_size": st.st_size,
                "audio_mtime_ns": st.st_mtime_ns, "audio_sha256": sha256_of(audio_path),
                "n_frames": int(feats["units"].shape[0])}
        write_atomic(out.with_suffix(".json"), json.dumps(meta, indent=1, ensure_ascii=False).encode())
        return rel, mono.shape[0] / sr, None
    except Exception as e:  # noqa: BLE001 - reported per file
        return rel, 0.0, f"{type(e).__name__}: {e}"


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    b = io.BytesIO()
    np.savez(b, **arrays)
    return b.getvalue()


def extract_features(prep_dir: Path, *, encoder_folder_or_name: str | os.PathLike, f0_method: str = "harvest",
                     jobs: int = 1, f0_range: tuple[float, float] = DEFAULT_F0_RANGE,
                     content_variants: int = 0) -> FeatureReport:
    """Extract features for every piece in ``prep_dir``'s file lists (train and val).

    ``encoder_folder_or_name``: a content-encoder folder or a catalog name (e.g. 'svc-phone-v1').
    ``f0_method``: a registered F0 tracker ('harvest' recommended for training data, 'yin' fast).
    ``content_variants``: also encode this many speaker-perturbed copies of each piece (for the
    training config's ``content_augment``; 0 = none). Their changes are a pure function of the
    piece's path, so a re-run reproduces them.
    Only missing or stale features are computed; ``jobs`` > 1 uses a process pool.
    """
    import svc_dsp.features  # noqa: F401
    from svc_dsp.features.f0 import get_f0_tracker

    t0 = time.monotonic()
    prep_dir = Path(prep_dir)
    meta = read_prepared(prep_dir)
    get_f0_tracker(f0_method)  # unknown names fail here, listing the registered ones
    if isinstance(content_variants, bool) or not isinstance(content_variants, int) or \
            not 0 <= content_variants <= MAX_CONTENT_VARIANTS:
        raise TrainingError(f"content_variants = {content_variants!r}; allowed: an integer 0..{MAX_CONTENT_VARIANTS} "
                            f"(e.g. 4 for content augmentation, 0 for none)")
    sr = int(meta["sample_rate"])
    enc_folder = resolve_encoder_folder(encoder_folder_or_name)
    ref = encoder_reference(enc_folder)
    if ref["kind"] not in TRAINABLE_KINDS:  # hpn streams a causal-mel encoder in its graph; hpnw is windowed
        raise TrainingError(f"content encoder '{ref['name']}' is of kind '{ref['kind']}'; 'train features' takes "
                            f"{' or '.join(TRAINABLE_KINDS)} encoders (svc-phone-v1 for 'hpn' voices, "
                            f"whisper-base-l4 for 'hpnw' voices). HuBERT encoders serve imported so-vits voices")
    _init_worker(str(enc_folder), None)
    enc = _WORKER["encoder"]
    hop = enc.hop(sr)
    if abs(enc.frame_seconds * sr - hop) > 1e-6:
        raise TrainingError(f"encoder {enc.describe()} has {enc.frame_seconds * 1000:g} ms frames, not a whole "
                            f"number of samples at {sr} Hz; prepare at a rate where it is (e.g. 24000, 48000)")
    if ref["kind"] == "whisper":
        ref["mel_ceiling"] = enc.mel_ceiling
    want = {"encoder_sha256": ref["sha256"], "f0_method": f0_method,
            "f0_range": [float(f0_range[0]), float(f0_range[1])], "sample_rate": sr, "hop": hop,
            "content_variants": content_variants}
    if ref["kind"] == "whisper":
        want["mel_ceiling"] = enc.mel_ceiling
    rels = read_filelist(prep_dir, "train") + read_filelist(prep_dir, "val")
    report = FeatureReport(encoder=ref)
    todo = []
    for rel in rels:
        sidecar = features_path(prep_dir, rel).with_suffix(".json")
        if _is_fresh(sidecar, prep_dir / rel, {**want, "version": FEATURES_VERSION}):
            report.up_to_date += 1
        else:
            todo.append(rel)
    if jobs > 1 and len(todo) > 1:
        # spawn, not fork: forking a process that has started torch's thread pools can hang
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker,
                                 initargs=(str(enc_folder), _threads_for(jobs))) as pool:
            results = list(pool.map(_extract_one, [str(prep_dir)] * len(todo), todo, [want] * len(todo)))
    else:
        results = [_extract_one(str(prep_dir), rel, want) for rel in todo]
    for rel, secs, err in results:
        if err:
            report.failed.append((rel, err))
        else:
            report.computed += 1
            report.seconds_of_audio += secs
    (prep_dir / "features").mkdir(exist_ok=True)
    write_atomic(prep_dir / "features" / "features.json",
                  json.dumps({"version": FEATURES_VERSION, "encoder": ref, **want}, indent=1,
                             ensure_ascii=False).encode())
    report.wall_seconds = time.monotonic() - t0
    return report


def _threads_for(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def read_features_meta(prep_dir: Path) -> dict[str, Any]:
    """features/features.json of a prepared folder (encoder reference, F0 settings)."""
    p = Path(prep_dir) / "features" / "features.json"
    if not p.is_file():
        raise TrainingError(f"'{prep_dir}' has no extracted features; run 'svc-host train features {prep_dir} "
                            f"--encoder NAME' first")
    return json.loads(p.read_text(encoding="utf-8"))
