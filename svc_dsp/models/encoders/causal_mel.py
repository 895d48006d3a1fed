"""'causal-mel': the default family's own content encoder.

log-mel frames -> causal running normalisation -> causal dilated conv stack ->
units. Every layer is cached, so it runs inside the streaming voice model. The
encoder is trained with its phone targets delayed by ``delay_frames``; that is its
lookahead, and it is read from the config, never assumed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from svc_dsp.models.encoders.registry import ContentEncoder, register_content_encoder
from svc_dsp.nn.mel import LogMelFrontend
from svc_dsp.nn.cached_conv import CausalConv1d, CausalStack
from svc_dsp.models.folder import check_shapes, load_tensors

DEFAULT_CONFIG: dict[str, Any] = {
    "family": "content-encoder", "kind": "causal-mel", "name": "random-test-encoder",
    "hop_seconds": 0.005, "win_seconds": 0.02, "n_mels": 80, "fmin": 40.0, "fmax": 8000.0,
    "channels": 192, "kernel_size": 3, "dilations": [1, 2, 4, 8, 1, 2, 4, 8], "dim": 64,
    "delay_frames": 1, "norm_prior_frames": 200.0, "norm_floor_db": -50.0,
    "output": "linear", "n_classes": 0,
}


class CausalMelEncoderNet(nn.Module):
    """Stateful network: audio hops -> units.

    forward(x: (B, k*hop), state: list[Tensor] | None) -> (units (B, dim, k), energy (B, 1, k), state')
    Output frame m of ``units`` describes analysis frame m - delay_frames; ``energy`` (log of the
    mel power sum, a loudness measure) describes analysis frame m itself.
    """

    def __init__(self, cfg: dict[str, Any], sample_rate: int) -> None:
        super().__init__()
        self.cfg = cfg
        hop = round(cfg["hop_seconds"] * sample_rate)
        win = round(cfg["win_seconds"] * sample_rate)
        self.frontend = LogMelFrontend(sample_rate, hop, win, cfg["n_mels"], cfg["fmin"], cfg["fmax"])
        n_mels, ch = cfg["n_mels"], cfg["channels"]
        self.register_buffer("norm_mean", torch.zeros(n_mels))
        self.register_buffer("norm_var", torch.ones(n_mels))
        self.conv_in = CausalConv1d(n_mels, ch, cfg["kernel_size"])
        self.stack = CausalStack(ch, cfg["kernel_size"], list(cfg["dilations"]))
        self.proj = nn.Conv1d(ch, cfg["dim"], 1)
        self.floor = float(np.log(10.0 ** (cfg["norm_floor_db"] / 10.0)))
        self.prior = float(cfg["norm_prior_frames"])

    def state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        n = self.cfg["n_mels"]
        return ([self.frontend.cache_shape(batch), (batch, n), (batch, n), (batch, 1),
                 self.conv_in.cache_shape(batch)] + self.stack.cache_shapes(batch))

    def init_state(self, batch: int = 1) -> list[torch.Tensor]:
        shapes = self.state_shapes(batch)
        st = [torch.zeros(s) for s in shapes]
        for i in (1, 2, 3):
            st[i] = st[i].double()
        return st

    def normalise(self, mel: torch.Tensor, s: torch.Tensor, ss: torch.Tensor, n: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Causal running mean/variance over past speech frames, started from a prior.

        mel: (B, n_mels, k). Frames whose mean log-mel is under the floor do not update
        the statistics (silence would otherwise pull the mean down).
        """
        m64 = mel.double()
        speech = (mel.mean(dim=1, keepdim=True) > self.floor).double()  # (B,1,k)
        cs = s.unsqueeze(-1) + torch.cumsum(m64 * speech, dim=-1)
        css = ss.unsqueeze(-1) + torch.cumsum(m64 * m64 * speech, dim=-1)
        cn = n.unsqueeze(-1) + torch.cumsum(speech, dim=-1)
        p = self.prior
        mu0 = self.norm_mean.double()[None, :, None]
        var0 = self.norm_var.double()[None, :, None]
        mean = (p * mu0 + cs) / (p + cn)
        ex2 = (p * (var0 + mu0 * mu0) + css) / (p + cn)
        var = (ex2 - mean * mean).clamp_min(1e-4)
        out = ((m64 - mean) / torch.sqrt(var)).float()
        return out, cs[..., -1], css[..., -1], cn[..., -1]

    def forward(self, x: torch.Tensor, state: list[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        if state is None:
            state = self.init_state(x.shape[0])
        mel, c_front = self.frontend(x, state[0])
        z, s, ss, n = self.normalise(mel, state[1], state[2], state[3])
        h, c_in = self.conv_in(z, state[4])
        h, c_stack = self.stack(h, state[5:])
        units = self.proj(h)
        if self.cfg.get("output") == "softmax":
            units = torch.softmax(units, dim=1)
        energy = torch.logsumexp(mel, dim=1, keepdim=True)
        return units, energy, [c_front, s, ss, n, c_in] + c_stack


class CausalMelEncoder(ContentEncoder):
    """Wrapper giving the registry interface; the net is rebuilt per sample rate."""

    kind = "causal-mel"
    causal = True

    def __init__(self, cfg: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None) -> None:
        self.config = dict(cfg)
        self.dim = int(cfg["dim"])
        self.frame_seconds = float(cfg["hop_seconds"])
        self.delay_frames = int(cfg["delay_frames"])
        self._state_dict = state_dict
        self._nets: dict[int, CausalMelEncoderNet] = {}

    @classmethod
    def random(cls, seed: int = 0, **overrides: Any) -> "CausalMelEncoder":
        """A randomly initialised encoder (tests only: its units carry no phonetic meaning)."""
        cfg = {**DEFAULT_CONFIG, **overrides}
        torch.manual_seed(seed)
        net = CausalMelEncoderNet(cfg, 16000)
        return cls(cfg, {k: v.detach().clone() for k, v in net.state_dict().items()})

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in CausalMelEncoderNet(self.config, 16000).state_dict().items()}

    def net(self, sample_rate: int) -> CausalMelEncoderNet:
        """The stateful net with this encoder's weights, framed for ``sample_rate``."""
        if sample_rate not in self._nets:
            net = CausalMelEncoderNet(self.config, sample_rate)
            if self._state_dict is not None:
                net.load_state_dict(self._state_dict)
            net.eval()
            self._nets[sample_rate] = net
        return self._nets[sample_rate]

    def hop(self, sample_rate: int) -> int:
        return round(self.frame_seconds * sample_rate)

    def encode(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Units for frames j = 0..ceil(N/hop)-1 on the engine grid (delay removed): (T, dim)."""
        return self.encode_with_energy(audio, sample_rate)[0]

    def encode_with_energy(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """(units (T, dim), energy (T,)) for frames j on the engine grid; ``energy`` is the
        log mel-power sum of the window centred on (j+1)*hop (if the encoder's delay allows;
        else one hop earlier), the loudness input of the 'hpn' decoder."""
        hop = self.hop(sample_rate)
        n = audio.shape[-1]
        n_frames = -(-n // hop)
        # frame j needs samples up to (j+1+a)*hop with a = lookahead hops of the window.
        total = (n_frames + 1 + self.delay_frames) * hop
        x = np.zeros(total, dtype=np.float32)
        x[:n] = audio
        with torch.inference_mode():
            u, e, _ = self.net(sample_rate)(torch.from_numpy(x)[None])
        start = 1 + self.delay_frames  # window lookahead (1 hop) + trained delay
        units = u[0, :, start:start + n_frames].T.numpy().copy()
        e_start = 1 + min(1, self.delay_frames)  # window centred on (j+1)*hop when lookahead allows
        energy = e[0, 0, e_start:e_start + n_frames].numpy().copy()
        return units, energy

    def tensors(self) -> dict[str, np.ndarray]:
        assert self._state_dict is not None
        return {k: v.detach().cpu().numpy() for k, v in self._state_dict.items()}


def _load(folder: Path, cfg: dict[str, Any]) -> CausalMelEncoder:
    enc = CausalMelEncoder(cfg)
    tensors = load_tensors(folder / "encoder.safetensors")
    check_shapes(tensors, enc.expected_shapes(), f"content encoder '{folder}'")
    enc._state_dict = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
    return enc


register_content_encoder("causal-mel", _load)
