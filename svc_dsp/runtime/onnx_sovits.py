"""ONNX export of an imported so-vits voice (state-free, one window per run) and an
onnxruntime runner with the same random draws as the torch path.

Inputs follow so-vits-svc's own export (spec §5.1) plus two for the sine source, so that the
graph holds no random operators and torch/ONNX agree to 1e-4:
  c        float32 (1, T_u, ssl_dim)  content units, un-stretched (time-major)
  f0       float32 (1, T)             Hz, interpolated over unvoiced frames
  mel2ph   int64   (1, T)             1-based unit index per frame (0 selects zeros)
  uv       float32 (1, T)             1 = voiced
  noise    float32 (1, inter, T)      N(0,1) * noise_scale
  sid      int64 (1,) speaker row, or float32 (T, S) per-frame mix over config speakers (S >= 2)
  vol      float32 (1, T)             only with a volume embedding
  rand_ini float32 (1, 9)             U(0,1) initial harmonic phases (ours; so-vits draws inside)
  source_noise float32 (1, T*hop, 9)  N(0,1) sine-source noise (ours)
Output: audio float32 (1, 1, T*hop).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.errors import ModelError
from svc_dsp.nn.onnx import make_session
from svc_dsp.models.sovits.frames import stretch_units

OPSET = 17


def mel2ph(n_units: int, n_frames: int, mode: str) -> np.ndarray:
    """(1, n_frames) int64 1-based unit indices equal to the model's unit stretching."""
    idx = stretch_units(np.arange(n_units, dtype=np.float32)[:, None], n_frames, mode)[:, 0]
    return (np.rint(idx).astype(np.int64) + 1)[None]


def _graph(model: Any) -> Any:
    import torch

    net = model.net
    mix = len(model.speakers) >= 2
    rows = net.emb_g.weight[torch.tensor(model.speaker_ids)].detach().clone()
    has_vol = model.has_volume

    class SovitsGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("rows", rows)

        def forward(self, c, f0, mel2ph, uv, noise, sid, *rest):  # type: ignore[no-untyped-def]
            vol = rest[0] if has_vol else None
            rand_ini, source_noise = rest[-2], rest[-1]
            c0 = torch.cat([torch.zeros_like(c[:, :1]), c], 1)
            cf = torch.gather(c0, 1, mel2ph[:, :, None].expand(-1, -1, c.shape[2])).transpose(1, 2)
            if mix:
                g = torch.matmul(sid, self.rows).transpose(0, 1)[None]
            else:
                g = self.net.emb_g(sid)[:, :, None]
            o, _ = self.net.infer(cf, f0, uv, g, vol, noise, rand_ini, source_noise, 1.0)
            return o

    return SovitsGraph().eval(), mix


def example_inputs(model: Any, n_frames: int = 24, seed: int = 0, noise_scale: float = 0.4) -> dict[str, np.ndarray]:
    """A random but valid input dict for ``model`` (tests, checks, benchmarks)."""
    rng = np.random.default_rng(seed)
    dim, inter, hop = int(model.m["ssl_dim"]), int(model.m["inter_channels"]), model.hop_size
    t_u = max(1, n_frames * 50 * hop // model.sample_rate)
    f0 = (200.0 + 40.0 * np.sin(np.arange(n_frames) / 5.0)).astype(np.float32)
    x = {"c": rng.standard_normal((1, t_u, dim)).astype(np.float32), "f0": f0[None],
         "mel2ph": mel2ph(t_u, n_frames, model.unit_mode), "uv": (rng.random((1, n_frames)) > 0.2).astype(np.float32),
         "noise": (rng.standard_normal((1, inter, n_frames)) * noise_scale).astype(np.float32)}
    if len(model.speakers) >= 2:
        w = rng.random((n_frames, len(model.speakers))).astype(np.float32)
        x["sid"] = w / w.sum(axis=1, keepdims=True)
    else:
        x["sid"] = np.array([model.speaker_ids[0]], np.int64)
    if model.has_volume:
        x["vol"] = rng.random((1, n_frames)).astype(np.float32) * 0.2
    x["rand_ini"] = rng.random((1, 9)).astype(np.float32)
    x["source_noise"] = rng.standard_normal((1, n_frames * hop, 9)).astype(np.float32)
    return x


def run_torch(model: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    g, _ = _graph(model)
    with torch.no_grad():
        return g(*[torch.from_numpy(v) for v in inputs.values()]).numpy()


def export_sovits_onnx(model: Any, path: str | os.PathLike, *, check: bool = True) -> Path:
    """Export a SovitsModel to ``path``. With ``check`` the graph is reloaded in onnxruntime and
    compared with torch on a random input; ModelError if they differ by more than 1e-4."""
    import torch

    graph, mix = _graph(model)
    ex = example_inputs(model)
    names = list(ex)
    axes: dict[str, dict[int, str]] = {"c": {1: "units"}, "f0": {1: "frames"}, "mel2ph": {1: "frames"},
                                       "uv": {1: "frames"}, "noise": {2: "frames"}, "vol": {1: "frames"},
                                       "source_noise": {1: "samples"}, "audio": {2: "samples"}}
    if mix:
        axes["sid"] = {0: "frames"}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    with torch.no_grad():
        torch.onnx.export(graph, tuple(torch.from_numpy(v) for v in ex.values()), str(tmp), input_names=names,
                          output_names=["audio"], dynamic_axes={k: v for k, v in axes.items() if k in names + ["audio"]},
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    if check:
        err = parity(model, tmp)
        if not err <= 1e-4:
            tmp.unlink(missing_ok=True)
            raise ModelError(f"ONNX export of '{model.name}' differs from torch by {err:.2e} (> 1e-4); not written")
    os.replace(tmp, path)
    return path


def session(path: str | os.PathLike) -> Any:
    return make_session(path)


def parity(model: Any, onnx_path: str | os.PathLike, n_frames: int = 37) -> float:
    """Max |torch - onnxruntime| on a random input of ``n_frames`` (not the export length)."""
    ex = example_inputs(model, n_frames=n_frames, seed=1)
    ref = run_torch(model, ex)
    got = session(onnx_path).run(None, ex)[0]
    return float(np.max(np.abs(ref - got)))


class OnnxSovitsRunner:
    """synthesize() like SovitsModel's (same seeded draws), through onnxruntime."""

    def __init__(self, model: Any, onnx_path: str | os.PathLike) -> None:
        self.model, self.sess = model, session(onnx_path)
        self.inputs = [i.name for i in self.sess.get_inputs()]

    def synthesize(self, units: np.ndarray, f0: np.ndarray, uv: np.ndarray, speaker_row: int | np.ndarray,
                   volume: np.ndarray | None = None, noise_scale: float = 0.4, seed: int = 52468) -> np.ndarray:
        """units (T_u, D) un-stretched; f0/uv (T,) so-vits grid; speaker_row: emb_g row (or (T, S) mix)."""
        import torch

        m, t = self.model, f0.shape[0]
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn((1, int(m.m["inter_channels"]), t), generator=gen).numpy()
        ri = torch.rand((1, 9), generator=gen).numpy()
        sn = torch.randn((1, t * m.hop_size, 9), generator=gen).numpy()
        feed = {"c": units[None].astype(np.float32), "f0": f0[None].astype(np.float32),
                "mel2ph": mel2ph(units.shape[0], t, m.unit_mode), "uv": uv[None].astype(np.float32),
                "noise": (z * noise_scale).astype(np.float32),
                "sid": (np.asarray(speaker_row, np.float32) if "sid" in self.inputs and len(m.speakers) >= 2
                        else np.array([int(speaker_row)], np.int64)),
                "rand_ini": ri, "source_noise": sn}
        if "vol" in self.inputs:
            feed["vol"] = np.asarray(volume, np.float32)[None]
        return self.sess.run(None, feed)[0][0, 0]
