"""ONNX export of the 'hpn' family with its state as explicit inputs and outputs, and an
onnxruntime backend that the streaming engine drives like the torch model.

Graph: a fixed number of hops G per run (1 by default).
  inputs:  x (1, G*hop) float32, f0 (1, G) Hz, spk (1, S, G), state_in_0..N-1
  outputs: wave (1, G*hop) float32, state_out_0..N-1
The state (convolution caches, running statistics, oscillator phase as float64, absolute
sample position as int64) is owned by the caller, so one session serves any number of
streams.

Per hop the runtime does no allocation and almost no Python: inputs, the output and two
sets of state buffers are preallocated and bound to the session once (onnxruntime I/O
binding); each run reads the state from one set and writes the next state into the other
(ping-pong), so a run is copy-in of the hop, ``run_with_iobinding``, copy-out of the wave.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.errors import ModelError, ParameterError
from svc_dsp.runtime.hpn_runtime import HpnRuntime
from svc_dsp.nn.onnx import make_session


def weights_key(model: Any) -> str:
    """16 hex digits of sha256 over the network's tensors (names, shapes, values) and hop size."""
    import hashlib

    h = hashlib.sha256(f"{model.hop_size}:{len(model.speakers)}".encode())
    for name, t in sorted(model.net.state_dict().items()):
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def export_hpn_onnx(model: Any, path: str | os.PathLike, *, hops: int = 1, check: bool = True) -> Path:
    """Export ``model`` (HpnModel) to ``path``; with ``check``, run both for 40 hops of a test
    signal and refuse (ModelError) if they differ by more than 1e-4."""
    import torch

    net = model.net

    class _OneHop(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor, f0: torch.Tensor, spk: torch.Tensor, *state: torch.Tensor):
            wave, new = self.net(x, f0, spk, list(state))
            return (wave, *new)

    st = net.init_state(1)
    S = len(model.speakers)
    args = (torch.zeros(1, hops * model.hop_size), torch.zeros(1, hops), torch.full((1, S, hops), 1.0 / S), *st)
    n = len(st)
    names = ["x", "f0", "spk"] + [f"state_in_{i}" for i in range(n)]
    outs = ["wave"] + [f"state_out_{i}" for i in range(n)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.no_grad():
                torch.onnx.export(_OneHop().eval(), args, tmp, input_names=names, output_names=outs,
                                  opset_version=17, dynamo=False)
        if check:
            err = _parity(model, tmp, hops)
            if err > 1e-4:
                raise ModelError(f"ONNX export of '{model.name}' differs from torch by {err:.2e} (> 1e-4); not written")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _parity(model: Any, onnx_path: str, hops: int = 1) -> float:
    rng = np.random.default_rng(0)
    hop = model.hop_size
    t = np.arange(40 * hop) / model.sample_rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    f0 = np.full(40, 220.0, np.float32)
    spk = model.speaker_weights()
    y_t, _ = model.process_hops(x, f0, spk, model.init_state())
    # 40 hops is a multiple of every group size we export, so the grouped graph alone runs it
    om = OnnxHpnModel(model, None, group_path=onnx_path, hops=hops) if hops > 1 else OnnxHpnModel(model, onnx_path)
    y_o, _ = om.process_hops(x, f0, spk, om.init_state())
    return float(np.abs(y_t - y_o).max())


class _BoundState:
    """One stream's state for :class:`OnnxHpnModel`: two sets of state buffers (OrtValues) and,
    per session, one I/O binding for each direction (set 0 -> set 1, set 1 -> set 0)."""

    def __init__(self, owner: "OnnxHpnModel", arrays: list[np.ndarray]) -> None:
        import onnxruntime as ort

        self.owner = owner
        self.sets = [[ort.OrtValue.ortvalue_from_numpy(np.array(a, copy=True)) for a in arrays]
                     for _ in range(2)]
        self.cur = 0  # the set that holds the current state
        self.bindings: dict[int, list[Any]] = {}
        for g, io in owner._io.items():
            b = []
            for src, dst in ((0, 1), (1, 0)):
                bind = io.session.io_binding()
                for name, v in zip(("x", "f0", "spk"), io.inputs):
                    bind.bind_ortvalue_input(name, v)
                bind.bind_ortvalue_output("wave", io.wave)
                for name, v in zip(owner._state_names, self.sets[src]):
                    bind.bind_ortvalue_input(name, v)
                for name, v in zip(owner._state_out_names, self.sets[dst]):
                    bind.bind_ortvalue_output(name, v)
                b.append(bind)
            self.bindings[g] = b

    def arrays(self) -> list[np.ndarray]:
        """Copies of the current state (for checks)."""
        return [v.numpy().copy() for v in self.sets[self.cur]]


class _SessionIO:
    """A session with its preallocated inputs (x, f0, spk) and output (wave) for G hops."""

    def __init__(self, session: Any, g: int, hop: int, n_speakers: int) -> None:
        import onnxruntime as ort

        self.session, self.g = session, g
        self.x = np.zeros((1, g * hop), np.float32)
        self.f0 = np.zeros((1, g), np.float32)
        self.spk = np.zeros((1, n_speakers, g), np.float32)
        self.out = np.zeros((1, g * hop), np.float32)
        # OrtValues over the numpy buffers (CPU: shared memory, no copies per run)
        self.inputs = [ort.OrtValue.ortvalue_from_numpy(a) for a in (self.x, self.f0, self.spk)]
        self.wave = ort.OrtValue.ortvalue_from_numpy(self.out)
        self.run_options = ort.RunOptions()
        # "no graph capture", said explicitly: without the entry, onnxruntime's Python
        # run_with_iobinding looks it up through a raised and caught error on every run (~0.15 ms)
        self.run_options.add_run_config_entry("gpu_graph_id", "-1")


def session_options(threads: int = 1) -> Any:
    """onnxruntime options for the streaming graphs: all graph optimisations, ``threads``
    intra-op threads, one inter-op thread, denormals flushed to zero (long release tails)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    so.log_severity_level = 3
    return so


class OnnxHpnModel(HpnRuntime):
    """The torch HpnModel's streaming interface, run by onnxruntime.

    :meth:`init_state` returns ``[state]`` where ``state`` is an opaque object holding the
    bound buffers; :meth:`process_hops` advances it in place and returns the same list. A
    list of arrays (e.g. ``[s.numpy() for s in torch_model.init_state()]``) is accepted too.
    """

    def __init__(self, model: Any, onnx_path: str | os.PathLike | None, threads: int = 1, *,
                 group_path: str | os.PathLike | None = None, hops: int = 1) -> None:
        """onnx_path: the one-hop graph; group_path: an optional graph of ``hops`` hops per run,
        used whenever at least that many hops are processed together."""
        super().__init__(model)
        so = session_options(threads)
        self.session = make_session(onnx_path, so) if onnx_path else None
        self.group = hops if group_path is not None else 1
        self.group_session = (make_session(group_path, so)
                              if group_path is not None else None)
        ref = self.group_session or self.session
        assert ref is not None
        self._state_names = [i.name for i in ref.get_inputs()][3:]
        self._state_out_names = [o.name for o in ref.get_outputs()][1:]
        S = len(model.speakers)
        self._io: dict[int, _SessionIO] = {}
        if self.session is not None:
            self._io[1] = _SessionIO(self.session, 1, self.hop_size, S)
        if self.group_session is not None:
            self._io[self.group] = _SessionIO(self.group_session, self.group, self.hop_size, S)

    @classmethod
    def from_model(cls, model: Any, cache_dir: str | os.PathLike | None = None, hops: int = 1) -> "OnnxHpnModel":
        """Use ``model.onnx`` from the model folder if present, else export once to a cache;
        with ``hops`` > 1 also a graph of that many hops per run."""
        if isinstance(model, OnnxHpnModel):
            return model
        cache = Path(cache_dir or tempfile.gettempdir()) / "svc-host-onnx"
        key = weights_key(model)  # the same weights reuse one export, in any process
        if model.folder is not None and (Path(model.folder) / "model.onnx").is_file():
            path = Path(model.folder) / "model.onnx"
        else:
            path = cache / f"{model.name}-{key}.onnx"
            if not path.is_file():
                export_hpn_onnx(model, path)
        group = None
        if hops > 1:
            group = cache / f"{model.name}-{key}-x{hops}.onnx"
            if not group.is_file():
                export_hpn_onnx(model, group, hops=hops)
        return cls(model, path, group_path=group, hops=hops)

    @property
    def providers(self) -> list[str]:
        return (self.group_session or self.session).get_providers()  # type: ignore[union-attr]

    def init_state(self) -> list[Any]:
        return [_BoundState(self, [s.numpy() for s in self._torch.init_state()])]

    def process_hops(self, x: np.ndarray, f0: np.ndarray, spk: np.ndarray, state: list[Any],
                     index_ratio: float = 0.0) -> tuple[np.ndarray, list[Any]]:
        """Same contract as HpnModel.process_hops: grouped runs while enough hops remain, then
        one-hop runs. Feature retrieval runs inside the torch graph only."""
        if index_ratio > 0 and getattr(self._torch, "feature_index", None) is not None:
            raise ParameterError(f"index_ratio {index_ratio:g} needs the torch backend for voice '{self.name}' "
                                 f"(its ONNX graph has no retrieval); use backend 'torch' or 'auto'")
        st = state[0] if len(state) == 1 and isinstance(state[0], _BoundState) else None
        if st is None or st.owner is not self:
            arrays = st.arrays() if st is not None else [np.asarray(a) for a in state]
            st = _BoundState(self, arrays)
            state = [st]
        hop = self.hop_size
        k = f0.shape[0]
        sp = np.asarray(spk, dtype=np.float32)
        out = np.empty(k * hop, np.float32)
        i = 0
        while i < k:
            g = self.group if (self.group_session is not None and k - i >= self.group) else 1
            io = self._io.get(g)
            if io is None:
                raise ModelError(f"{k - i} hops left but only a {self.group}-hop ONNX graph is loaded")
            io.x[0] = x[i * hop:(i + g) * hop]
            io.f0[0] = f0[i:i + g]
            io.spk[0] = sp[:, i:i + g] if sp.ndim == 2 else sp[:, None]
            io.session.run_with_iobinding(st.bindings[g][st.cur], io.run_options)
            st.cur ^= 1
            out[i * hop:(i + g) * hop] = io.out[0]
            i += g
        return out, state
