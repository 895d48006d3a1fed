"""'sovits': imported so-vits-svc 4.x voices, run by our own implementation (regime "windowed").

The model folder (written by ``svc-host import sovits``) holds ``model.json`` (our fields plus
the complete so-vits config under "sovits") and ``model.safetensors`` with the inference tensors
under their so-vits names (weight-norm pairs kept as ``weight_g``/``weight_v``; a shared flow
once as ``flow.wn.*``). Weight norm is folded at load time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from svc_dsp.errors import CatalogError, EncoderMismatchError, ModelFormatError, ParameterError, UnknownSpeakerError
from svc_dsp.models.encoders.registry import ContentEncoder
from svc_dsp.models.base import WindowedModel
from svc_dsp.models.folder import check_shapes, load_tensors
from svc_dsp.models.sovits.frames import stretch_units, volume
from svc_dsp.models.sovits.layout import inference_shapes
from svc_dsp.models.sovits.net import SovitsNet
from svc_dsp.models.catalog import resolve_encoder
from svc_dsp.features.pitch import interpolate_unvoiced
from svc_dsp.audio.resample import resample
from svc_dsp.models.sovits.fast_decoder import FastDecoder
from svc_dsp.models.encoders.whisper import sovits_encoder_hint

FAMILY = "sovits"
CONTENT_RATE = 16000
DEFAULT_NOISE_SCALE, DEFAULT_SEED = 0.4, 52468


def fold_weight_norm(tensors: Mapping[str, np.ndarray], dim: int = 0) -> dict[str, torch.Tensor]:
    """{x.weight_g, x.weight_v} -> x.weight = v * (g / |v|) (norm over all axes but ``dim``), float32."""
    out: dict[str, torch.Tensor] = {}
    for k, v in tensors.items():
        if k.endswith(".weight_g"):
            continue
        t = torch.from_numpy(np.array(v, dtype=np.float32))
        if k.endswith(".weight_v"):
            base = k[: -len("_v")]
            g = torch.from_numpy(np.array(tensors[base + "_g"], dtype=np.float32))
            out[base] = torch._weight_norm(t, g, dim)
        else:
            out[k] = t
    return out


def _to_sovits_grid(x: np.ndarray, n: int) -> np.ndarray:
    """Our frame j (around sample (j+1)*hop) is so-vits frame j+1 (centred on (j+1)*hop)."""
    x = np.asarray(x)
    if x.shape[-1] == 0:
        return np.zeros(x.shape[:-1] + (n,), dtype=np.float32)
    shifted = np.concatenate([x[..., :1], x[..., :-1]], axis=-1)
    if shifted.shape[-1] < n:
        pad = [(0, 0)] * (x.ndim - 1) + [(0, n - shifted.shape[-1])]
        shifted = np.pad(shifted, pad, mode="edge")
    return shifted[..., :n]


class SovitsModel(WindowedModel):
    """An imported so-vits-svc voice. Offline and windowed: :meth:`convert_window` converts one
    window of audio; :meth:`synthesize` runs the generator on frame-rate features."""

    family = FAMILY
    regime = "windowed"

    def __init__(self, config: dict[str, Any], tensors: Mapping[str, np.ndarray], encoder: ContentEncoder | None,
                 folder: Path | None = None, *, exact: bool = False) -> None:
        self.config, self.folder, self.encoder = config, folder, encoder
        #: True: every synthesis runs the plain fp32 torch decoder (the reference, for checks);
        #: False (default): the fast decoder (same output within 1e-4, see fast_decoder.py)
        self.exact = bool(exact)
        self._fast: Any = None
        self._spk_cache: dict[Any, torch.Tensor] = {}
        #: k-means centres per speaker name (imported kmeans_10000.pt) and so-vits's -cr ratio
        self.cluster: dict[str, np.ndarray] = {}
        self.cluster_ratio = 0.0
        sv = config["sovits"]
        self.m = sv["model"]
        self.unit_mode = sv["unit_interpolate_mode"]
        self.speaker_ids = [int(i) for i in config.get("speaker_ids", range(len(self.speakers)))]
        check_shapes(tensors, self.expected_tensors(config), f"model '{self.name}' (model.safetensors)")
        want = int(self.m["ssl_dim"])
        if encoder is not None and encoder.dim != want:
            raise EncoderMismatchError(
                f"model '{self.name}' expects {want}-dim content units, encoder {encoder.describe()} gives "
                f"{encoder.dim}; install the '{config['content_encoder'].get('name')}' encoder (svc-host import "
                f"encoder ...) or re-import the voice with the config.json it was trained with")
        with torch.device("meta"):  # no random init: every parameter comes from the file
            self.net = SovitsNet(self.m, self.sample_rate)
        sd = fold_weight_norm(tensors)
        missing, unexpected = self.net.load_state_dict(sd, strict=False, assign=True)
        if missing or unexpected:
            raise ModelFormatError(f"model '{self.name}': internal layout mismatch (missing {missing[:3]}, "
                                   f"unexpected {unexpected[:3]}); please report this")
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    # -- interface ---------------------------------------------------------------------
    @staticmethod
    def expected_tensors(cfg: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        """Tensor name -> shape that model.safetensors must hold for this config."""
        return inference_shapes(cfg["sovits"]["model"])

    def latency_samples(self) -> int:
        return 0  # offline; the streaming engine adds its own window latency

    @property
    def has_volume(self) -> bool:
        return bool(self.m["vol_embedding"])

    def speaker_embedding(self, spk: Any) -> torch.Tensor:
        """spk: name, emb_g row id, weights (S,) over :attr:`speakers`, or (S, T) per frame
        -> g (1, gin, 1) or (1, gin, T)."""
        if isinstance(spk, (str, int, np.integer)):
            key: Any = spk
        elif isinstance(spk, np.ndarray) and spk.ndim == 1:
            key = ("weights", spk.astype(np.float32).tobytes())
        else:
            key = None  # per-frame mixes change with every window
        if key is not None and key in self._spk_cache:
            return self._spk_cache[key]
        g = self._speaker_embedding(spk)
        if key is not None:
            if len(self._spk_cache) >= 64:  # a mix automated over time: keep the newest ones
                self._spk_cache.pop(next(iter(self._spk_cache)))
            self._spk_cache[key] = g
        return g

    def _speaker_embedding(self, spk: Any) -> torch.Tensor:
        table = self.net.emb_g.weight
        if isinstance(spk, str):
            if spk not in self.speakers:
                raise UnknownSpeakerError(f"speaker '{spk}' is not in model '{self.name}'; its speakers: "
                                          f"{', '.join(self.speakers)}")
            spk = self.speaker_ids[self.speakers.index(spk)]
        if isinstance(spk, (int, np.integer)):
            if not 0 <= int(spk) < table.shape[0]:
                raise ParameterError(f"speaker id {spk} is outside 0..{table.shape[0] - 1}")
            return table[int(spk)][None, :, None]
        w = torch.from_numpy(np.asarray(spk, dtype=np.float32))
        if w.shape[0] != len(self.speakers) or w.ndim not in (1, 2):
            raise ParameterError(f"speaker weights of shape {tuple(w.shape)}; expected ({len(self.speakers)},) or "
                                 f"({len(self.speakers)}, n_frames) for speakers {', '.join(self.speakers)}")
        rows = table[torch.tensor(self.speaker_ids)]  # (S, gin)
        if w.ndim == 1:
            nz = torch.nonzero(w).flatten()
            if nz.numel() == 1 and float(w[nz[0]]) == 1.0:  # exactly so-vits's emb_g(sid)
                return rows[nz[0]][None, :, None]
            return (w @ rows)[None, :, None]
        return (w.T @ rows).T[None]

    @torch.no_grad()
    def synthesize(self, units: np.ndarray, f0: np.ndarray, uv: np.ndarray, speaker: Any,
                   volume: np.ndarray | None = None, noise_scale: float = DEFAULT_NOISE_SCALE,
                   seed: int = DEFAULT_SEED, predict_f0: bool = False, *, exact: bool | None = None,
                   frames: tuple[int, int] | None = None) -> np.ndarray:
        """Frame-rate features on the so-vits grid (frame k centred on sample k*hop) -> audio.

        units (T, ssl_dim) already stretched to frames; f0 (T,) Hz, interpolated over unvoiced
        frames; uv (T,) 1 = voiced; speaker: see :meth:`speaker_embedding`; volume (T,) RMS (used
        if the model has a volume embedding). Returns float32 (T*hop,).
        exact: the plain fp32 torch decoder (default: :attr:`exact`, normally False: the fast
        decoder, equal within 1e-4). frames (a, b): only output frames a..b-1 are wanted; the
        decoder computes just those plus its receptive field; returns ((b-a)*hop,).
        """
        t = int(np.asarray(f0).shape[0])
        if t == 0:
            return np.zeros(0, dtype=np.float32)
        if units.shape != (t, int(self.m["ssl_dim"])):
            raise ParameterError(f"units of shape {units.shape}; expected ({t}, {self.m['ssl_dim']}) (one "
                                 f"{self.m['ssl_dim']}-dim vector per frame)")
        c = torch.from_numpy(np.ascontiguousarray(units.T, dtype=np.float32))[None]
        f0_t = torch.from_numpy(np.asarray(f0, dtype=np.float32))[None]
        uv_t = torch.from_numpy(np.asarray(uv, dtype=np.float32))[None]
        vol_t = None
        if self.has_volume:
            if volume is None:
                raise ParameterError(f"model '{self.name}' has a volume embedding; pass volume (T,)")
            vol_t = torch.from_numpy(np.asarray(volume, dtype=np.float32))[None]
        g = self.speaker_embedding(speaker)
        a, b = (0, t) if frames is None else (int(frames[0]), int(frames[1]))
        if not 0 <= a <= b <= t:
            raise ParameterError(f"frames {frames}; expected (a, b) with 0 <= a <= b <= {t}")
        if self.exact if exact is None else exact:
            o, _ = self.net.infer_seeded(c, f0_t, uv_t, g, vol_t, noise_scale, seed, predict_f0)
            o = o[..., a * self.hop_size:b * self.hop_size]
        else:
            dec = self.fast_decoder
            o, _ = self.net.infer_seeded(c, f0_t, uv_t, g, vol_t, noise_scale, seed, predict_f0,
                                         dec=lambda *args: dec(*args, frames=(a, b)))
        return o[0, 0].numpy().astype(np.float32)

    @property
    def fast_decoder(self) -> Any:
        """The fast decoder (:mod:`fast_decoder`), built on first use (it transforms some
        kernels once)."""
        if self._fast is None:
            self._fast = FastDecoder(self.net.dec)
        return self._fast

    def content_units(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        """audio (N,) at the model rate -> units stretched to ``n_frames`` (n_frames, ssl_dim)."""
        if self.encoder is None:
            raise ModelFormatError(f"model '{self.name}' was loaded without its content encoder")
        wav16 = resample(np.asarray(audio, dtype=np.float32), self.sample_rate, CONTENT_RATE)
        units = self.encoder.encode(wav16, CONTENT_RATE)
        return stretch_units(units, n_frames, self.unit_mode)

    def convert_window(self, audio: np.ndarray, f0: np.ndarray, spk: np.ndarray, *, uv: np.ndarray | None = None,
                       noise_scale: float = DEFAULT_NOISE_SCALE, seed: int = DEFAULT_SEED,
                       cluster_ratio: float | None = None, index_ratio: float = 0.0,
                       keep: tuple[int, int] | None = None) -> np.ndarray:
        """Convert one window. audio float32 (N,) at :attr:`sample_rate`; f0 (ceil(N/hop),) Hz on OUR
        grid (0 = unvoiced; interpolated here unless ``uv`` (same grid, 1 = voiced) is given);
        spk (S,) or (S, ceil(N/hop)) weights; cluster_ratio: k-means mixing 0..1 (None: the model's
        own ``cluster_ratio`` attribute). Returns (N,) float32 (the last N % hop samples are 0).
        keep (s0, s1): only output samples s0..s1-1 are wanted (a stream's kept part of the window):
        the decoder runs on the frames covering them (plus its receptive field) and the rest of the
        result is 0; the kept samples equal those of a whole-window call (within 1e-4)."""
        hop = self.hop_size
        n = int(audio.shape[0])
        t = n // hop
        out = np.zeros(n, dtype=np.float32)
        if t == 0:
            return out
        f0_sv = _to_sovits_grid(np.asarray(f0, dtype=np.float32), t)
        if uv is None:
            f0_sv, voiced = interpolate_unvoiced(f0_sv)
            uv_sv = voiced.astype(np.float32)
        else:
            uv_sv = _to_sovits_grid(np.asarray(uv, dtype=np.float32), t)
        spk = np.asarray(spk, dtype=np.float32)
        if spk.ndim == 2:
            spk = _to_sovits_grid(spk, t)
        units = self.content_units(audio, t)
        ratio = self.cluster_ratio if cluster_ratio is None else float(cluster_ratio)
        if ratio > 0 and spk.ndim == 1 and np.count_nonzero(spk) == 1:
            units = self.apply_cluster(units, self.speakers[int(np.flatnonzero(spk)[0])], ratio)
        index = getattr(self, "feature_index", None)
        if index is not None and index_ratio > 0:  # feature retrieval (svc_dsp.models.retrieval)
            units = index.apply_np(units, spk, self.speakers, float(index_ratio))
        vol = volume(audio, hop) if self.has_volume else None
        if keep is None:
            wave = self.synthesize(units, f0_sv, uv_sv, spk, vol, noise_scale, seed)
            out[: wave.shape[0]] = wave[:n]
            return out
        s0, s1 = max(0, int(keep[0])), min(n, int(keep[1]))
        if s1 <= s0:
            return out
        a, b = s0 // hop, min(t, -(-s1 // hop))
        if b > a:
            wave = self.synthesize(units, f0_sv, uv_sv, spk, vol, noise_scale, seed, frames=(a, b))
            out[a * hop:a * hop + wave.shape[0]] = wave[:n - a * hop]
        return out


    def apply_cluster(self, units: np.ndarray, speaker: str, ratio: float) -> np.ndarray:
        """so-vits cluster mixing: each frame moves ``ratio`` of the way to its nearest k-means
        centre of ``speaker`` (unchanged if the voice has no centres for that speaker)."""
        centres = self.cluster.get(speaker)
        if centres is None or ratio <= 0:
            return units
        c = torch.from_numpy(centres)
        u = torch.from_numpy(np.ascontiguousarray(units, dtype=np.float32))
        idx = torch.cdist(u, c).argmin(dim=1)
        return (ratio * c[idx] + (1.0 - ratio) * u).numpy()


def load(folder: Path, cfg: dict[str, Any]) -> SovitsModel:
    """Family loader: tensors + the content encoder named in model.json (checked for its dim)."""
    if "sovits" not in cfg:
        raise ModelFormatError(f"'{folder}/model.json' has family 'sovits' but no 'sovits' section; re-import the "
                               f"voice with 'svc-host import sovits G.pth config.json -o DIR'")
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelFormatError(f"'{folder}' holds no .safetensors weights")
    tensors = load_tensors(folder / "model.safetensors")
    ref = cfg.get("content_encoder") or {}
    try:
        enc = resolve_encoder(folder, ref)
    except CatalogError as e:
        hint = sovits_encoder_hint(str(ref.get("name")))
        if hint:
            raise CatalogError(f"{e}. so-vits voice '{cfg.get('name', folder.name)}' needs the content encoder "
                               f"{hint}") from None
        raise CatalogError(f"{e}. so-vits voice '{cfg.get('name', folder.name)}' needs the content encoder "
                           f"'{ref.get('name')}' ({ref.get('dim')}-dim units): import it once with 'svc-host import "
                           f"encoder checkpoint_best_legacy_500.pt --layout {ref.get('name')} -o "
                           f"<catalog root>/encoders/{ref.get('name')}'") from None
    model = SovitsModel(cfg, tensors, enc, folder)
    if cfg.get("cluster"):
        model.cluster = load_tensors(folder / str(cfg["cluster"]["file"]))
    return model
