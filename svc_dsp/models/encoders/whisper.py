"""Kind "whisper": Whisper's audio encoder as a content encoder (pure PyTorch, 16 kHz in, 50 frames/s out).

Folder (written by ``svc-host import encoder`` from a CTranslate2 Whisper model.bin): ``model.json``
{"family": "content-encoder", "kind": "whisper", "name", "size", "dim", "heads", "n_layers" (blocks
held), "output_layer", "final_norm", ...} + ``encoder.safetensors`` (OpenAI tensor names without the
``encoder.`` prefix; float16 as published, computed in float32 or bfloat16) + the MIT notice.

Any length without 30 s padding: the positional table is sliced to the input. Inputs longer than the
table (30 s) are encoded in overlapping windows that all see real audio on both sides of the frames
they keep (``margin_seconds``) and are cross-faded over ``crossfade_seconds``; the log-mel floor is
taken over the whole input, as one pass would, so windows agree. ``pad_30s`` reproduces
so-vits-svc's whisper-ppg (each window padded to the full table).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from svc_dsp.errors import ModelFormatError, ParameterError
from svc_dsp.models.encoders.registry import ContentEncoder, mono_at, register_content_encoder
from svc_dsp.models.encoders.whisper_net import (HOP, SAMPLE_RATE, WhisperEncoderNet, WhisperLogMel, build_net,
                                                 expected_shapes, normalize_log_mel)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
#: so-vits-svc speech_encoder ids built on Whisper -> (OpenAI size, unit dimension); every block + ln_post,
#: each input padded to 30 s
SOVITS_WHISPER = {"whisper-ppg": ("medium", 1024), "whisper-ppg-large": ("large-v2", 1280)}
BUNDLED = "whisper-base-l4"


def sovits_encoder_hint(name: str) -> str | None:
    """For a so-vits voice whose ``speech_encoder`` is Whisper-based: what it needs and how to get it."""
    if name not in SOVITS_WHISPER:
        return None
    size, dim = SOVITS_WHISPER[name]
    return (f"'{name}' is Whisper {size} ({dim}-dim units); svc-host bundles Whisper base only ('{BUNDLED}', "
            f"512-dim) and Whisper {size} does not install from PyPI here. Import a CTranslate2 Whisper {size} "
            f"model.bin once: 'svc-host import encoder model.bin --layout {name} -o <catalog root>/encoders/{name}'")


def n_frames(n_samples: int) -> int:
    """Output frames for n 16 kHz samples: ceil((n // 160) / 2)."""
    return (n_samples // HOP + 1) // 2


def window_plan(total: int, window: int, margin: int, crossfade: int) -> list[tuple[int, np.ndarray]]:
    """(start, weights over the window's frames) covering ``total`` output frames; weights sum to 1 per frame.

    Each window keeps its frames from ``margin`` after its start to ``margin`` before its end (the
    input's own edges excepted) and hands over to the next window with a linear cross-fade of at
    least ``crossfade`` frames.
    """
    if total <= window:
        return [(0, np.ones(total, dtype=np.float64))]
    step = max(1, window - 2 * margin - crossfade)
    starts = [0]
    while starts[-1] + window < total:
        starts.append(starts[-1] + step)
    starts[-1] = total - window
    keep = [(s + (margin if i else 0), s + window - (margin if i < len(starts) - 1 else 0))
            for i, s in enumerate(starts)]
    acc = np.zeros(total)
    plans = []
    for i, (s, (a, b)) in enumerate(zip(starts, keep)):
        t = np.arange(s, s + window, dtype=np.float64)
        w = ((t >= a) & (t < b)).astype(np.float64)
        if i > 0:
            ov = keep[i - 1][1] - a
            if ov > 0:
                w = np.minimum(w, np.clip((t - a + 0.5) / ov, 0.0, 1.0))
        if i < len(starts) - 1:
            ov = b - keep[i + 1][0]
            if ov > 0:
                w = np.minimum(w, np.clip((b - t - 0.5) / ov, 0.0, 1.0))
        acc[s:s + window] += w
        plans.append((s, w))
    return [(s, w / acc[s:s + window]) for s, w in plans]


class WhisperEncoder(ContentEncoder):
    """Units of Whisper block ``output_layer`` (1-based; ``ln_post`` applied when it is the model's last
    block and the folder says ``final_norm``). ``dtype``: "float32" or "bfloat16" (computation only;
    units come out float32)."""

    kind = "whisper"
    causal = False
    frame_seconds = 0.02

    def __init__(self, config: Mapping[str, Any], tensors: Mapping[str, np.ndarray], *,
                 output_layer: int | None = None, dtype: str | None = None) -> None:
        from svc_dsp.models.folder import check_shapes

        self.config = dict(config)
        name = self.config.get("name", "whisper")
        held = int(self.config["n_layers"])
        layer = int(output_layer if output_layer is not None else self.config.get("output_layer", held))
        if not 1 <= layer <= held:
            raise ParameterError(f"Whisper encoder '{name}': output_layer {layer}; this folder holds blocks 1..{held}")
        final_norm = bool(self.config.get("final_norm", False))
        n_ctx = int(tensors["positional_embedding"].shape[0]) if "positional_embedding" in tensors else 0
        d = int(self.config["dim"])
        check_shapes(tensors, expected_shapes(d, held, final_norm, n_ctx), f"content encoder '{name}'")
        kept = {k: v for k, v in tensors.items()
                if not k.startswith("blocks.") or int(k.split(".")[1]) < layer}
        use_norm = final_norm and layer == held
        if not use_norm:
            kept = {k: v for k, v in kept.items() if not k.startswith("ln_post.")}
        self.output_layer, self.dim, self.n_ctx = layer, d, n_ctx
        self.config["output_layer"] = layer
        self.net: WhisperEncoderNet = build_net(kept, int(self.config["heads"]), layer, use_norm)
        self.frontend = WhisperLogMel()
        self.ceiling = self.config.get("mel_ceiling")
        self.pad_30s = bool(self.config.get("pad_30s", False))
        self.margin = int(round(float(self.config.get("margin_seconds", 2.0)) / self.frame_seconds))
        self.crossfade = int(round(float(self.config.get("crossfade_seconds", 2.0)) / self.frame_seconds))
        if 4 * (2 * self.margin + self.crossfade) > 3 * n_ctx:
            raise ModelFormatError(f"Whisper encoder '{name}': 2 x margin_seconds + crossfade_seconds take more than "
                                   f"three quarters of the {n_ctx * self.frame_seconds:g} s window; lower them in "
                                   f"model.json")
        self.session: Any = None
        self.set_dtype(dtype or str(self.config.get("compute_dtype", "float32")))

    def set_dtype(self, dtype: str) -> None:
        """Compute in "float32" or "bfloat16" from now on."""
        if dtype not in DTYPES:
            raise ParameterError(f"Whisper encoder dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
        self.dtype = DTYPES[dtype]
        self.net = self.net.to(self.dtype)

    def describe(self) -> str:
        return (f"'{self.config.get('name', 'whisper')}' (kind whisper, {self.config.get('size', '?')} block "
                f"{self.output_layer}, {self.dim}-dim units)")

    def log_mel(self, x16: np.ndarray) -> torch.Tensor:
        """float32 (N,) 16 kHz -> normalised log-mel (1, 80, N // 160) with the floor of the whole input."""
        with torch.no_grad():
            return normalize_log_mel(self.frontend(torch.from_numpy(np.ascontiguousarray(x16))[None]), self.ceiling)

    def _run(self, mel: torch.Tensor, floor: float) -> np.ndarray:
        """(1, 80, L) -> (ceil(L / 2), dim) float32, one pass (L <= 2 * n_ctx); ``floor``: silence's value."""
        frames = (mel.shape[-1] + 1) // 2
        if self.pad_30s and mel.shape[-1] < 2 * self.n_ctx:
            mel = F.pad(mel, (0, 2 * self.n_ctx - mel.shape[-1]), value=floor)
        if self.session is not None:
            out = self.session.run(None, {"mel": mel.numpy().astype(np.float32)})[0][0]
            return np.asarray(out[:frames], dtype=np.float32)
        with torch.no_grad():
            out = self.net(mel.to(self.dtype))[0, :frames]
        return out.float().numpy()

    def encode_mel(self, mel: torch.Tensor) -> np.ndarray:
        """Normalised log-mel (1, 80, L) -> units (ceil(L / 2), dim), windowed beyond the positional table."""
        total = (mel.shape[-1] + 1) // 2
        if total == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        plan = window_plan(total, self.n_ctx, self.margin, self.crossfade)
        # what zeros would read as: the floor, 8 decades under the loudest frame (or the fixed ceiling)
        floor = float(mel.amax()) - 2.0 if self.ceiling is None else (float(self.ceiling) - 4.0) / 4.0
        if len(plan) == 1:
            return self._run(mel, floor)
        out = np.zeros((total, self.dim), dtype=np.float64)
        for start, w in plan:
            out[start:start + len(w)] += w[:, None] * self._run(mel[..., 2 * start:2 * (start + len(w))], floor)
        return out.astype(np.float32)

    def encode(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """audio float32 (N,) mono (resampled to 16 kHz if needed) -> units float32 (n_frames(N16), dim)."""
        x = mono_at(audio, sample_rate, SAMPLE_RATE)
        if x.shape[0] < HOP:
            return np.zeros((0, self.dim), dtype=np.float32)
        if not np.all(np.isfinite(x)):
            raise ParameterError("audio holds NaN or inf samples; the Whisper encoder takes finite samples")
        return self.encode_mel(self.log_mel(x))

    def export_onnx(self, path: str | Path, opset: int = 17) -> Path:
        """Write the network (input ``mel`` (1, 80, L) normalised log-mel, output ``units`` (1, ceil(L/2),
        dim)) as ONNX with a dynamic L; float32 whatever the compute dtype."""
        path = Path(path)
        net = build_net({k: v.float().numpy() for k, v in self.net.state_dict().items()},
                        int(self.config["heads"]), self.output_layer, self.net.ln_post is not None)
        example = torch.zeros(1, 80, 200)
        tmp = path.with_name(f".{path.name}.partial")
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (example,), str(tmp), input_names=["mel"], output_names=["units"],
                              dynamic_axes={"mel": {2: "mel_frames"}, "units": {1: "frames"}}, opset_version=opset,
                              dynamo=False)
        tmp.replace(path)
        return path

    def use_onnx(self, path: str | Path | None) -> None:
        """Run the network under onnxruntime (CUDA first when available) from ``path``; None: back to torch."""
        if path is None:
            self.session = None
            return
        from svc_dsp.nn.onnx import make_session

        self.session = make_session(path)


def _load(folder: Path, cfg: dict[str, Any]) -> WhisperEncoder:
    from svc_dsp.models.folder import load_tensors

    return WhisperEncoder(cfg, load_tensors(folder / "encoder.safetensors"))


register_content_encoder("whisper", _load)
