"""'hpnw': the 'hpn' decoder and synthesiser on Whisper content units, streamed in the windowed regime.

Whisper's encoder is non-causal (every frame attends to the whole input), so it cannot run hop
by hop inside a stateful graph as 'hpn' runs its causal encoder. An 'hpnw' voice converts a
bounded window at a time (:meth:`HpnwModel.convert_window`); the engine re-infers windows and
splices them with SOLA (:mod:`svc_dsp.engine.windowed`), offline it converts silence-bounded
slices with real context (:mod:`svc_dsp.engine.windowed_offline`).

One window, audio (N,) at the model rate:
1. :func:`grid_units`: resampled to 16 kHz, log-mel with a fixed ceiling (``mel_ceiling`` in
   model.json, so a window and the whole piece see the same floor), Whisper units at 50 frames/s,
   linearly interpolated onto the model grid (frame j describes the audio around sample
   (j+1)*hop; Whisper frame i is centred at i*20 ms). Training (``train features``) calls the same
   function on whole pieces.
2. Feature retrieval when the voice has an index and ``index_ratio`` > 0.
3. :func:`loudness_input`: the decoder's loudness input, frame loudness in dB / 20 (same in training).
4. The 'hpn' decoder (:meth:`svc_dsp.models.hpn.HpnNet.frame_params`, imported, not copied) from a
   fresh state over the window's frames, then harmonic-plus-noise synthesis.

The model adds no delay of its own; the engine's latency is the window geometry, which the voice
suggests in model.json (``window``: step, context, crossfade, search, lookahead in seconds;
:meth:`HpnwModel.window_settings`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from svc_dsp.errors import EncoderMismatchError, ModelFormatError
from svc_dsp.models.base import WindowedModel, register_family
from svc_dsp.models.catalog import resolve_encoder
from svc_dsp.models.encoders.whisper import WhisperEncoder
from svc_dsp.models.folder import check_shapes, load_tensors, write_model_folder
from svc_dsp.models.hpn import ARCH_DEFAULTS, HpnNet

FAMILY = "hpnw"
UNIT_RATE = 16000
UNIT_SECONDS = 0.02
FRAME_SECONDS = 0.005  # the model grid (hop 120 at 24 kHz), as for 'hpn'
#: log10 mel power taken as the top of the 8-decade range (Whisper takes each input's maximum;
#: a fixed value makes a 1 s window and the whole piece agree). Speech at -18 LUFS peaks near 0.5.
MEL_CEILING = 0.5
#: window geometry in seconds (engine's WindowSettings); Whisper needs about 1 s of context
WINDOW_DEFAULTS: dict[str, float] = {"step": 0.12, "context": 1.0, "crossfade": 0.03, "search": 0.02,
                                     "lookahead": 0.06}


class _NoEncoder(nn.Module):
    """Stands in for HpnNet's in-graph encoder: units arrive from outside, no state."""

    def init_state(self, batch: int) -> list[torch.Tensor]:
        return []

    def state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        return []


class _ExternalUnits:
    """What HpnNet reads from its encoder (dim, delay, net) when the units are computed outside it."""

    delay_frames = 0

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)

    def net(self, sample_rate: int) -> nn.Module:
        return _NoEncoder()


def decoder_net(config: Mapping[str, Any], dim: int) -> HpnNet:
    """The 'hpn' decoder + synthesiser for ``dim``-dim external units (training builds the same)."""
    return HpnNet(config, _ExternalUnits(dim))  # type: ignore[arg-type]


def grid_units(encoder: WhisperEncoder, audio: np.ndarray, sample_rate: int, hop: int, n_frames: int,
               mel_ceiling: float = MEL_CEILING) -> np.ndarray:
    """audio float32 (N,) at ``sample_rate`` -> Whisper units on the model grid, float32 (n_frames, D).

    Frame j (around sample (j+1)*hop) interpolates Whisper frames linearly at position
    (j+1)*hop/sample_rate / 20 ms (held at the ends). Inputs longer than 30 s are encoded in the
    encoder's overlapping windows."""
    from svc_dsp.models.encoders.registry import mono_at
    from svc_dsp.models.encoders.whisper_net import normalize_log_mel

    x16 = mono_at(audio, sample_rate, UNIT_RATE)
    if x16.shape[0] < 2 * 160 or n_frames == 0:
        return np.zeros((n_frames, encoder.dim), np.float32)
    with torch.no_grad():
        mel = normalize_log_mel(encoder.frontend(torch.from_numpy(np.ascontiguousarray(x16))[None]), mel_ceiling)
    u = encoder.encode_mel(mel)  # (T, D), frame i at i * 20 ms
    pos = np.clip((np.arange(1, n_frames + 1) * hop / sample_rate) / UNIT_SECONDS, 0.0, u.shape[0] - 1.0)
    i0 = np.minimum(np.floor(pos).astype(np.int64), max(u.shape[0] - 2, 0))
    i1 = np.minimum(i0 + 1, u.shape[0] - 1)
    w = (pos - i0)[:, None].astype(np.float32)
    return (u[i0] * (1.0 - w) + u[i1] * w).astype(np.float32)


def loudness_input(audio: np.ndarray, sample_rate: int, hop: int, n_frames: int) -> np.ndarray:
    """The decoder's loudness input on the model grid: frame loudness (dB, Hann 3 hops) / 20, (n_frames,)."""
    from svc_dsp.features.loudness import frame_loudness_db

    return (np.asarray(frame_loudness_db(audio, sample_rate, hop, n_frames), np.float32) / 20.0)


class GridFeatures:
    """Whisper units + loudness input on an hpnw model grid, with the face of a causal encoder that
    ``train features`` uses (``hop``, ``encode_with_energy``): training sees exactly what
    :meth:`HpnwModel.features` computes for a window."""

    kind = "whisper"
    frame_seconds = FRAME_SECONDS

    def __init__(self, encoder: WhisperEncoder, mel_ceiling: float = MEL_CEILING) -> None:
        self.encoder, self.mel_ceiling = encoder, float(mel_ceiling)
        self.dim, self.config = encoder.dim, encoder.config

    def describe(self) -> str:
        return self.encoder.describe()

    def hop(self, sample_rate: int) -> int:
        return round(FRAME_SECONDS * sample_rate)

    def encode_with_energy(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """audio (N,) -> (units (ceil(N/hop), D), loudness input (ceil(N/hop),)) on the grid of this rate."""
        hop = self.hop(sample_rate)
        n = -(-audio.shape[-1] // hop)
        return (grid_units(self.encoder, audio, sample_rate, hop, n, self.mel_ceiling),
                loudness_input(audio, sample_rate, hop, n))


class HpnwModel(WindowedModel):
    """Loaded 'hpnw' voice: config + Whisper encoder + 'hpn' decoder weights."""

    family = FAMILY

    def __init__(self, config: dict[str, Any], encoder: WhisperEncoder,
                 decoder_weights: Mapping[str, np.ndarray] | None = None, folder: Path | None = None) -> None:
        self.config, self.folder, self.encoder = config, folder, encoder
        if not isinstance(encoder, WhisperEncoder):
            raise EncoderMismatchError(f"model '{self.name}' (family hpnw) needs a 'whisper' content encoder; "
                                       f"{encoder.describe()} is not one")
        want_dim = int(config.get("content_encoder", {}).get("dim", encoder.dim))
        if want_dim != encoder.dim:
            raise EncoderMismatchError(
                f"model '{self.name}' expects {want_dim}-dim content units, encoder {encoder.describe()} gives "
                f"{encoder.dim}; use the encoder named in its model.json")
        self.mel_ceiling = float(config.get("mel_ceiling", MEL_CEILING))
        self.net = decoder_net(config, encoder.dim)
        if decoder_weights is not None:
            self.net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in decoder_weights.items()})
        self.net.eval()
        self.feature_index: Any = None

    @staticmethod
    def expected_tensors(config: Mapping[str, Any], dim: int) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in decoder_net(config, dim).state_dict().items()}

    def decoder_tensors(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    def window_settings(self) -> dict[str, float]:
        """The window geometry (seconds) this voice was tuned for: model.json ``window`` over the defaults."""
        return {**WINDOW_DEFAULTS, **{k: float(v) for k, v in dict(self.config.get("window", {})).items()
                                      if k in WINDOW_DEFAULTS}}

    def features(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """audio (N,) at the model rate -> (units (ceil(N/hop), D), loudness input (ceil(N/hop),))."""
        n = -(-audio.shape[0] // self.hop_size)
        return (grid_units(self.encoder, audio, self.sample_rate, self.hop_size, n, self.mel_ceiling),
                loudness_input(audio, self.sample_rate, self.hop_size, n))

    @torch.inference_mode()
    def decode(self, units: np.ndarray, f0: np.ndarray, loud: np.ndarray, spk: np.ndarray) -> np.ndarray:
        """units (k, D), f0 (k,) Hz (0 unvoiced), loud (k,), spk (S,) or (S, k) -> wave (k*hop,) from a fresh state."""
        k = f0.shape[0]
        sp = np.asarray(spk, np.float32)
        sp = np.repeat(sp[:, None], k, axis=1) if sp.ndim == 1 else sp
        n = self.net
        dec = [torch.zeros(s) for s in n.decoder_state_shapes(1)]
        amps, noise, _ = n.frame_params(torch.from_numpy(np.ascontiguousarray(units.T))[None],
                                        torch.from_numpy(np.ascontiguousarray(f0, np.float32))[None],
                                        torch.from_numpy(np.ascontiguousarray(loud, np.float32))[None, None],
                                        torch.from_numpy(np.ascontiguousarray(sp))[None], dec)
        wave, _ = n.synth(amps, noise, torch.from_numpy(np.ascontiguousarray(f0, np.float32))[None],
                          n.synth.init_state(1))
        return wave[0].numpy()

    def convert_window(self, audio: np.ndarray, f0: np.ndarray, spk: np.ndarray, *, uv: np.ndarray | None = None,
                       noise_scale: float = 0.4, seed: int = 52468, cluster_ratio: float | None = None,
                       index_ratio: float = 0.0, keep: tuple[int, int] | None = None) -> np.ndarray:
        """See :meth:`WindowedModel.convert_window`. noise_scale, seed, cluster_ratio: unused (the noise
        is the synthesiser's fixed tables). keep: (s0, s1) the samples the caller keeps (the stream);
        Whisper still encodes the whole window, but retrieval and the decoder run only on the frames
        covering them plus the decoder's receptive field (a later start: same levels, another
        oscillator phase, which the SOLA splice absorbs); other samples come back as zeros."""
        x = np.asarray(audio, np.float32)
        n, hop = x.shape[0], self.hop_size
        k = -(-n // hop)
        f0 = np.asarray(f0, np.float32)[:k]
        if uv is not None:
            f0 = np.where(np.asarray(uv)[:k] > 0, f0, 0.0).astype(np.float32)
        units, loud = self.features(x)
        sp = np.asarray(spk, np.float32)
        a, b = 0, k
        if keep is not None:
            rf = self.net.stack.receptive_field + self.net.conv_in.pad
            a, b = max(0, int(keep[0]) // hop - rf), min(k, -(-int(keep[1]) // hop))
            units, f0, loud = units[a:b], f0[a:b], loud[a:b]
            sp = sp[:, a:b] if sp.ndim == 2 else sp
        if self.feature_index is not None and index_ratio > 0:
            units = self.feature_index.apply_np(units, sp, self.speakers, float(index_ratio))
        wave = self.decode(units, f0, loud, sp)
        if keep is None:
            return wave[:n]
        out = np.zeros(n, np.float32)
        m = min(wave.shape[0], n - a * hop)
        out[a * hop:a * hop + m] = wave[:m]
        return out


def build_random(sample_rate: int = 24000, hop: int = 120, speakers: list[str] | None = None, seed: int = 0,
                 encoder: WhisperEncoder | None = None, **arch: Any) -> HpnwModel:
    """A randomly initialised decoder on the bundled (or given) Whisper encoder, for tests and benchmarks."""
    if encoder is None:
        from svc_dsp.models.catalog import find_in_catalog
        from svc_dsp.models.encoders.registry import load_content_encoder

        encoder = load_content_encoder(find_in_catalog("encoders", "whisper-base-l4"))  # type: ignore[assignment]
    assert isinstance(encoder, WhisperEncoder)
    cfg = {"family": FAMILY, "family_version": 1, "name": f"random-hpnw-{seed}", "sample_rate": sample_rate,
           "hop_size": hop, "speakers": speakers or ["alto", "tenor"], "f0_range": [50.0, 1100.0],
           "content_encoder": {"kind": encoder.kind, "name": encoder.config.get("name"), "dim": encoder.dim},
           "mel_ceiling": MEL_CEILING, "window": dict(WINDOW_DEFAULTS), "architecture": {**ARCH_DEFAULTS, **arch}}
    torch.manual_seed(seed)
    m = HpnwModel(cfg, encoder)
    with torch.no_grad():  # audible: voiced frames at a sensible level
        m.net.head.bias[:m.net.n_amp] = 3.0
    return m


def _load(folder: Path, cfg: dict[str, Any]) -> HpnwModel:
    enc_ref = cfg.get("content_encoder")
    if not isinstance(enc_ref, dict):
        raise ModelFormatError(f"'{folder}/model.json' lacks 'content_encoder' (a mapping naming the encoder)")
    encoder = resolve_encoder(folder, enc_ref)
    if not isinstance(encoder, WhisperEncoder):
        raise EncoderMismatchError(f"model '{folder}' (family hpnw) needs a 'whisper' content encoder; "
                                   f"{encoder.describe()} is not one")
    tensors = load_tensors(folder / "model.safetensors")
    check_shapes(tensors, HpnwModel.expected_tensors(cfg, encoder.dim), f"model '{folder}'")
    return HpnwModel(cfg, encoder, tensors, folder)


register_family(FAMILY, _load)


def save_model_folder(model: HpnwModel, folder: Path | str, *, overwrite: bool = False) -> Path:
    """Write ``model`` as a model folder; the encoder is referenced by catalog name + sha256 of its weights."""
    enc_folder = model.encoder.config.get("name")
    from svc_dsp.models.catalog import find_in_catalog

    weights = sorted(find_in_catalog("encoders", str(enc_folder)).glob("*.safetensors"))[0]
    cfg = dict(model.config)
    cfg["content_encoder"] = {"kind": model.encoder.kind, "name": enc_folder, "dim": model.encoder.dim,
                              "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    return write_model_folder(folder, cfg, {"model.safetensors": model.decoder_tensors()}, overwrite=overwrite)
