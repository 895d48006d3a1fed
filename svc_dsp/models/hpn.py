"""'hpn': the default voice-model family — small, causal, stateful, CPU real time.

content units (causal encoder) + F0 + loudness + speaker mix -> causal conv decoder ->
harmonic amplitudes and noise-band gains per frame -> harmonic-plus-noise synthesis.

Harmonic amplitudes come in one of two parameterisations (architecture key ``amplitudes``):
- ``envelope`` (default for new models): the decoder draws a log spectral envelope on a fixed
  mel-spaced frequency grid (``n_envelope`` points from 0 Hz to Nyquist) and harmonic k takes
  the envelope's value at k*F0. Formants stay where they are whatever the pitch, so a vowel
  learnt at A3 is the same vowel at E5 (source-filter model).
- ``distribution`` (DDSP style; folders written before the key existed): a global amplitude
  times a softmax over harmonic indices; the decoder must learn where each formant falls for
  every pitch.

Timing (all derived from the layers): the net consumes audio in hops; the output of
hop m is the waveform of frame o = m - (1 + L), where 1 is the analysis window's
lookahead in hops and L is the encoder's trained delay. Streaming therefore delays
the signal by (1 + L)*hop + hop - 1 samples at the model rate.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from svc_dsp.errors import EncoderMismatchError, ModelFormatError
from svc_dsp.models.encoders.causal_mel import CausalMelEncoder
from svc_dsp.nn.mel import hz_to_mel
from svc_dsp.models.base import StatefulModel, register_family
from svc_dsp.nn.cached_conv import CausalConv1d, CausalStack
from svc_dsp.models.synth import HarmonicNoiseSynth
from svc_dsp.models.folder import write_model_folder
from svc_dsp.models.folder import check_shapes, load_tensors
from svc_dsp.models.catalog import resolve_encoder

FAMILY = "hpn"
ARCH_DEFAULTS: dict[str, Any] = {
    "channels": 128, "kernel_size": 3, "dilations": [1, 2, 4, 8, 1, 2], "speaker_dim": 32,
    "n_harmonics": 64, "n_noise_bands": 24, "noise_seed": 1234,
    "amplitudes": "envelope", "n_envelope": 64,
}
AMPLITUDE_MODES = ("envelope", "distribution")
WINDOW_LOOKAHEAD_HOPS = 1  # the encoder's analysis window ends one hop after its frame


def _exp_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return 2.0 * torch.sigmoid(x) ** math.log(10.0) + 1e-7


class HpnNet(nn.Module):
    """Stateful generator: audio hops + F0 + speaker weights -> waveform hops.

    forward(x (B, k*hop), f0 (B, k) Hz for output frames, spk (B, S, k), state)
        -> (wave (B, k*hop), state')
    """

    def __init__(self, cfg: Mapping[str, Any], encoder: CausalMelEncoder) -> None:
        super().__init__()
        arch = {**ARCH_DEFAULTS, **cfg.get("architecture", {})}
        self.sample_rate, self.hop = int(cfg["sample_rate"]), int(cfg["hop_size"])
        self.n_speakers = len(cfg.get("speakers", ["default"]))
        self.encoder = encoder.net(self.sample_rate)
        self.delay = int(encoder.delay_frames)
        self.energy_delay = self.delay - min(1, self.delay)
        ch, K, Nb = arch["channels"], arch["n_harmonics"], arch["n_noise_bands"]
        self.n_harmonics, self.n_bands = K, Nb
        # folders written before 'amplitudes' existed use the harmonic distribution
        self.amp_mode = str(cfg.get("architecture", {}).get("amplitudes", "distribution"))
        if self.amp_mode not in AMPLITUDE_MODES:
            raise ModelFormatError(f"architecture 'amplitudes' is {self.amp_mode!r}; allowed: "
                                   f"{', '.join(AMPLITUDE_MODES)}")
        self.n_env = int(arch["n_envelope"])
        if self.amp_mode == "envelope" and self.n_env < 2:
            raise ModelFormatError(f"architecture 'n_envelope' is {self.n_env}; it must be at least 2")
        n_amp = self.n_env if self.amp_mode == "envelope" else 1 + K
        self.spk_table = nn.Parameter(torch.zeros(self.n_speakers, arch["speaker_dim"]))
        self.spk_proj = nn.Linear(arch["speaker_dim"], ch)
        self.conv_in = CausalConv1d(encoder.dim + 3, ch, arch["kernel_size"])
        self.stack = CausalStack(ch, arch["kernel_size"], list(arch["dilations"]))
        self.head = nn.Conv1d(ch, n_amp + Nb, 1)
        self.n_amp = n_amp
        self.mel_nyquist = float(hz_to_mel(self.sample_rate / 2.0))
        self.synth = HarmonicNoiseSynth(self.sample_rate, self.hop, K, Nb, seed=int(arch["noise_seed"]))
        nn.init.normal_(self.spk_table, std=0.5)

    # -- state ----------------------------------------------------------------
    def decoder_state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        return ([(batch, 1, max(1, self.energy_delay))] + [self.conv_in.cache_shape(batch)]
                + self.stack.cache_shapes(batch))

    def init_state(self, batch: int = 1) -> list[torch.Tensor]:
        return (self.encoder.init_state(batch) + [torch.zeros(s) for s in self.decoder_state_shapes(batch)]
                + self.synth.init_state(batch))

    def _split(self, state: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        ne = len(self.encoder.state_shapes(1))
        nd = len(self.decoder_state_shapes(1))
        return state[:ne], state[ne:ne + nd], state[ne + nd:]

    @property
    def delay_hops(self) -> int:
        """Hops between the input hop that completes and the frame it lets us synthesise."""
        return WINDOW_LOOKAHEAD_HOPS + self.delay

    # -- frames ---------------------------------------------------------------
    def frame_params(self, units: torch.Tensor, f0: torch.Tensor, loud: torch.Tensor, spk: torch.Tensor,
                     dec_state: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """units (B,D,k), f0 (B,k), loud (B,1,k), spk (B,S,k) -> amps (B,K,k), noise (B,Nb,k)."""
        voiced = (f0 > 0).float()
        lf0 = torch.where(f0 > 0, torch.log2(f0.clamp_min(1.0) / 220.0), torch.zeros_like(f0))
        loud_n = (loud + 5.0) / 10.0
        x = torch.cat([units, lf0[:, None], voiced[:, None], loud_n], dim=1)
        emb = torch.einsum("bsk,se->bke", spk, self.spk_table)
        cond = self.spk_proj(emb).transpose(1, 2)  # (B,C,k)
        h, c_in = self.conv_in(x, dec_state[1])
        h, c_stack = self.stack(h + cond, dec_state[2:], cond)
        out = self.head(F.leaky_relu(h, 0.1))
        K = self.n_harmonics
        k = torch.arange(1, K + 1, dtype=f0.dtype, device=f0.device)[None, :, None]
        freqs = k * f0[:, None, :]  # (B,K,k) Hz
        alias_ok = (freqs < 0.48 * self.sample_rate).float()
        noise = _exp_sigmoid(out[:, self.n_amp:] - 5.0)
        if self.amp_mode == "envelope":
            amps = _exp_sigmoid(self._sample_envelope(out[:, :self.n_amp], freqs) - 5.0)
            return amps * alias_ok * voiced[:, None], noise, [dec_state[0], c_in] + c_stack
        amp = F.softplus(out[:, :1]) * voiced[:, None]
        dist = torch.softmax(out[:, 1:1 + K], dim=1)
        dist = dist * alias_ok
        dist = dist / (dist.sum(dim=1, keepdim=True) + 1e-7)
        return amp * dist, noise, [dec_state[0], c_in] + c_stack

    def _sample_envelope(self, env: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        """env (B,E,k) values on the mel grid 0..Nyquist, freqs (B,K,k) Hz -> (B,K,k) by linear
        interpolation between the two nearest grid points (clamped at the ends)."""
        E = self.n_env
        pos = (hz_to_mel(freqs) / self.mel_nyquist * (E - 1)).clamp(0.0, E - 1.0)
        i0 = torch.floor(pos).clamp(max=E - 2).long()
        w = pos - i0.to(pos.dtype)
        v0 = torch.gather(env, 1, i0)
        v1 = torch.gather(env, 1, i0 + 1)
        return v0 + (v1 - v0) * w

    def forward(self, x: torch.Tensor, f0: torch.Tensor, spk: torch.Tensor, state: list[torch.Tensor],
                unit_map: Any = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """unit_map: optional ``(units (B,D,k), spk (B,S,k)) -> units`` (feature retrieval)."""
        enc_s, dec_s, syn_s = self._split(state)
        units, energy, enc_s = self.encoder(x, enc_s)
        if unit_map is not None:
            units = unit_map(units, spk)
        # loudness: the analysis window centred on the output frame's point (o+1)*hop is the
        # newest one when the encoder has >= 1 hop of delay; older ones wait in a delay line
        if self.energy_delay > 0:
            e_cat = torch.cat([dec_s[0], energy], dim=-1)
            loud, e_state = e_cat[..., :energy.shape[-1]], e_cat[..., e_cat.shape[-1] - self.energy_delay:]
        else:
            loud, e_state = energy, dec_s[0]
        amps, noise, dec_s = self.frame_params(units, f0, loud, spk, [e_state] + dec_s[1:])
        wave, syn_s = self.synth(amps, noise, f0, syn_s)
        return wave, enc_s + dec_s + syn_s


class HpnModel(StatefulModel):
    """Loaded 'hpn' voice model: config + encoder + decoder weights."""

    family = FAMILY
    regime = "stateful"

    def __init__(self, config: dict[str, Any], encoder: CausalMelEncoder,
                 decoder_weights: Mapping[str, np.ndarray] | None = None, folder: Path | None = None) -> None:
        self.config = config
        self.folder = folder
        self.encoder = encoder
        enc_hop = encoder.hop(self.sample_rate)
        if enc_hop != self.hop_size or abs(encoder.frame_seconds * self.sample_rate - self.hop_size) > 1e-6:
            raise EncoderMismatchError(
                f"model '{self.name}' uses hop {self.hop_size} at {self.sample_rate} Hz "
                f"({1000 * self.hop_size / self.sample_rate:.2f} ms) but content encoder {encoder.describe()} "
                f"has frames of {1000 * encoder.frame_seconds:.2f} ms; use the encoder the model was trained with")
        want_dim = int(config.get("content_encoder", {}).get("dim", encoder.dim))
        if want_dim != encoder.dim:
            raise EncoderMismatchError(
                f"model '{self.name}' expects {want_dim}-dim content units, encoder {encoder.describe()} gives "
                f"{encoder.dim}; use the encoder named in its model.json or re-run feature extraction and "
                f"training with this encoder")
        self.net = HpnNet(config, encoder)
        if decoder_weights is not None:
            sd = {k: torch.from_numpy(np.array(v)) for k, v in decoder_weights.items()}
            sd.update({f"encoder.{k}": v for k, v in self.net.encoder.state_dict().items()})
            self.net.load_state_dict(sd)
        self.net.eval()

    @staticmethod
    def expected_tensors(config: Mapping[str, Any], encoder: CausalMelEncoder) -> dict[str, tuple[int, ...]]:
        net = HpnNet(config, encoder)
        return {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.startswith("encoder.")}

    def decoder_tensors(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()
                if not k.startswith("encoder.")}

    @property
    def delay_hops(self) -> int:
        return int(self.net.delay_hops)

    def latency_samples(self) -> int:
        return self.net.delay_hops * self.hop_size + self.hop_size - 1

    def init_state(self) -> list[torch.Tensor]:
        return self.net.init_state(1)

    @torch.inference_mode()
    def process_hops(self, x: np.ndarray, f0: np.ndarray, spk: np.ndarray, state: list[torch.Tensor],
                     index_ratio: float = 0.0) -> tuple[np.ndarray, list[torch.Tensor]]:
        """One streaming step. x: (k*hop,) float32; f0: (k,) Hz for output frames; spk: (S,) or (S,k);
        index_ratio: feature retrieval 0..1 (used when the voice has an index)."""
        k = f0.shape[0]
        xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
        fs = torch.from_numpy(np.ascontiguousarray(f0, dtype=np.float32))[None]
        sp = np.asarray(spk, dtype=np.float32)
        if sp.ndim == 1:
            sp = np.repeat(sp[:, None], k, axis=1)
        index = getattr(self, "feature_index", None)
        unit_map = None
        if index is not None and index_ratio > 0:
            def unit_map(u: torch.Tensor, s: torch.Tensor) -> torch.Tensor:  # (1,D,k), (1,S,k); frames in step
                return index.apply(u[0].T, s[0], self.speakers, float(index_ratio)).T[None]
        wave, state = self.net(xs, fs, torch.from_numpy(np.ascontiguousarray(sp))[None], state, unit_map)
        return wave[0].numpy(), state

    def synthesize(self, audio: np.ndarray, f0: np.ndarray, spk: np.ndarray, chunk_hops: int = 400) -> np.ndarray:
        """Offline: audio (N,) at the model rate, f0 (ceil(N/hop),) Hz on the frame grid,
        spk (S,) or (S, n_frames) -> converted (N,), time-aligned with the input.

        Runs the streaming step over chunks (bounded memory) and removes the delay, so the
        result equals streaming output shifted by the streaming delay.
        """
        hop, d = self.hop_size, self.net.delay_hops
        n = audio.shape[0]
        n_frames = -(-n // hop)
        total_hops = n_frames + d
        x = np.zeros(total_hops * hop, dtype=np.float32)
        x[:n] = audio
        f0_al = np.zeros(total_hops, dtype=np.float32)
        f0_al[d:d + n_frames] = f0[:n_frames]
        sp = np.asarray(spk, dtype=np.float32)
        if sp.ndim == 2:
            sp_al = np.zeros((sp.shape[0], total_hops), dtype=np.float32)
            sp_al[:, d:d + n_frames] = sp[:, :n_frames]
            sp_al[:, :d] = sp[:, :1]
        state = self.init_state()
        out = np.empty(total_hops * hop, dtype=np.float32)
        for s in range(0, total_hops, chunk_hops):
            e = min(total_hops, s + chunk_hops)
            spc = sp_al[:, s:e] if sp.ndim == 2 else sp
            out[s * hop:e * hop], state = self.process_hops(x[s * hop:e * hop], f0_al[s:e], spc, state)
        return out[d * hop:d * hop + n]


def build_random(sample_rate: int = 24000, hop: int = 120, speakers: list[str] | None = None,
                 seed: int = 0, encoder: CausalMelEncoder | None = None, **arch: Any) -> HpnModel:
    """A randomly initialised model (for tests and benchmarks only)."""
    encoder = encoder or CausalMelEncoder.random(seed)
    cfg = {"family": FAMILY, "family_version": 1, "name": f"random-hpn-{seed}", "sample_rate": sample_rate,
           "hop_size": hop, "speakers": speakers or ["alto", "tenor"], "f0_range": [50.0, 1100.0],
           "content_encoder": {"kind": encoder.kind, "name": encoder.config.get("name"), "dim": encoder.dim},
           "architecture": {**ARCH_DEFAULTS, **arch}}
    torch.manual_seed(seed)
    m = HpnModel(cfg, encoder)
    with torch.no_grad():  # make the random model audible: voiced frames with a sensible level
        if m.net.amp_mode == "envelope":
            m.net.head.bias[:m.net.n_amp] = 3.0  # about 0.015 per harmonic
        else:
            m.net.head.bias[0] = 0.0
    return m


def _load(folder: Path, cfg: dict[str, Any]) -> HpnModel:
    enc_ref = cfg.get("content_encoder")
    if not isinstance(enc_ref, dict):
        raise ModelFormatError(f"'{folder}/model.json' lacks 'content_encoder' (a mapping naming the encoder)")
    encoder = resolve_encoder(folder, enc_ref)
    if not isinstance(encoder, CausalMelEncoder):
        raise EncoderMismatchError(
            f"model '{folder}' (family hpn) needs a causal 'causal-mel' content encoder; "
            f"{encoder.describe()} is not one")
    tensors = load_tensors(folder / "model.safetensors")
    check_shapes(tensors, HpnModel.expected_tensors(cfg, encoder), f"model '{folder}'")
    return HpnModel(cfg, encoder, tensors, folder)


register_family(FAMILY, _load)


def save_model_folder(model: HpnModel, folder: Path | str, *, bundle_encoder: bool = True,
                      overwrite: bool = False) -> Path:
    """Write ``model`` as a model folder.

    bundle_encoder: copy the encoder into ``folder/encoder/`` (self-contained); otherwise
    reference it by catalog name and sha256 of its weights.
    """
    import hashlib

    from safetensors.numpy import save as st_save

    folder = Path(folder)
    enc_tensors = model.encoder.tensors()
    enc_bytes = st_save({k: np.ascontiguousarray(v) for k, v in enc_tensors.items()})
    ref = {"kind": model.encoder.kind, "name": model.encoder.config.get("name"), "dim": model.encoder.dim,
           "sha256": hashlib.sha256(enc_bytes).hexdigest()}
    cfg = dict(model.config)
    if bundle_encoder:
        ref["folder"] = "encoder"
    cfg["content_encoder"] = ref
    out = write_model_folder(folder, cfg, {"model.safetensors": model.decoder_tensors()}, overwrite=overwrite)
    if bundle_encoder:
        enc_cfg = {k: v for k, v in model.encoder.config.items() if k not in ("format", "format_version")}
        tmp = out / ".encoder.partial"
        write_model_folder(tmp, enc_cfg, {}, {"encoder.safetensors": enc_bytes})
        tmp.rename(out / "encoder")
    return out
