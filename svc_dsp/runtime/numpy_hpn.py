"""The 'hpn' family's streaming step as hand-fused numpy: the live default runtime.

The torch graph (and its ONNX export) runs ~270 small operators per 5 ms hop; at one hop
per step their per-call overhead, not arithmetic, is the cost. Here the same network runs
as about a hundred numpy calls per hop on weights prepared once:

- every causal convolution is one matrix product: the taps it reads (``(K-1)*d`` cached
  frames and the new ones) are laid side by side, time-major, against the kernel folded to
  ``(K*C_in, C_out)``;
- the mel frontend's windowed DFT is one ``(win, 2*bins)`` matrix, the speaker embedding and
  its projection one ``(S, C)`` matrix;
- state is plain arrays (conv caches time-major, oscillator phase float64, sample position
  int64), owned by the caller, so one model serves any number of streams.

Output equals :meth:`HpnModel.process_hops` up to float32 rounding (tests hold it to 1e-4,
hop by hop and in chunks); :func:`to_torch_state` / :func:`from_torch_state` convert state.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from svc_dsp.errors import ParameterError
from svc_dsp.runtime.hpn_runtime import HpnRuntime

_LN10 = math.log(10.0)


def _exp_sigmoid(x: np.ndarray) -> np.ndarray:
    """2 * sigmoid(x) ** ln(10) + 1e-7 (float32; exp argument bounded: no overflow warnings)."""
    s = np.exp(-np.maximum(x, -80.0))
    s += 1.0
    np.reciprocal(s, out=s)
    np.power(s, _LN10, out=s)
    s *= 2.0
    s += 1e-7
    return s


class _Conv:
    """A causal conv (torch weight (C_out, C_in, K), dilation d) as one time-major matmul."""

    def __init__(self, weight: Any, bias: Any, dilation: int) -> None:
        w = weight.detach().cpu().numpy().astype(np.float32)  # (Co, Ci, K)
        co, ci, k = w.shape
        self.k, self.d, self.ci = k, int(dilation), ci
        self.pad = (k - 1) * self.d
        # X (T, K*Ci) with tap j in columns [j*Ci, (j+1)*Ci) -> X @ W
        self.w = np.ascontiguousarray(w.transpose(2, 1, 0).reshape(k * ci, co))
        self.b = bias.detach().cpu().numpy().astype(np.float32)

    def __call__(self, x: np.ndarray, cache: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (T, Ci), cache (pad, Ci) -> y (T, Co), cache'."""
        if self.pad == 0:
            y = x @ self.w
            y += self.b
            return y, cache
        t = x.shape[0]
        xx = np.concatenate([cache, x])
        if t == 1:
            taps = xx[::self.d].reshape(1, -1)  # rows 0, d, 2d, ... = the K taps of the one new frame
        else:
            d = self.d
            taps = np.concatenate([xx[j * d:j * d + t] for j in range(self.k)], axis=1)
        y = taps @ self.w
        y += self.b
        return y, xx[t:]


class _Stack:
    """CausalStack: x + W_out . leaky(conv_d(x) + cond) per block."""

    def __init__(self, stack: Any) -> None:
        self.convs = [_Conv(b.conv.weight, b.conv.bias, b.conv.dilation[0]) for b in stack.blocks]
        self.outs = [(b.out.weight.detach().numpy()[:, :, 0].T.astype(np.float32).copy(),
                      b.out.bias.detach().numpy().astype(np.float32)) for b in stack.blocks]

    def __call__(self, x: np.ndarray, caches: list[np.ndarray], cond: np.ndarray | None = None
                 ) -> np.ndarray:
        """Advances ``caches`` in place (list items replaced)."""
        for i, (conv, (wo, bo)) in enumerate(zip(self.convs, self.outs)):
            h, caches[i] = conv(x, caches[i])
            if cond is not None:
                h += cond
            h = np.maximum(h, 0.1 * h)  # leaky ReLU, slope 0.1
            y = h @ wo
            y += bo
            x = x + y
        return x


class NumpyHpnState:
    """One stream's state (arrays; see the module docstring)."""

    __slots__ = ("front", "s", "ss", "n", "enc", "energy", "dec", "p_amp", "p_noise", "p_f0", "phase", "pos")

    def copy(self) -> "NumpyHpnState":
        c = NumpyHpnState()
        for name in self.__slots__:
            v = getattr(self, name)
            setattr(c, name, [a.copy() for a in v] if isinstance(v, list) else
                    (v.copy() if isinstance(v, np.ndarray) else v))
        return c


class NumpyHpnModel(HpnRuntime):
    """The torch HpnModel's streaming interface (``init_state``/``process_hops``) in numpy.

    ``init_state()`` returns ``[NumpyHpnState]``; ``process_hops`` advances it in place and
    returns the same list. A torch state list (``HpnModel.init_state()``) is accepted too.
    Feature retrieval (``index_ratio`` with an index) runs in the torch graph only.
    """

    def __init__(self, model: Any) -> None:
        import torch

        super().__init__(model)
        net = model.net
        enc = net.encoder
        fe = enc.frontend
        self.hop, self.win = int(fe.hop), int(fe.win)
        with torch.no_grad():
            self.n_fft = int(fe.n_fft)
            self.window = np.hanning(self.win + 1)[:self.win].astype(np.float32)  # as LogMelFrontend
            self.fb_t = np.ascontiguousarray(fe.fb.t().numpy().astype(np.float32))
            self.floor, self.prior = float(enc.floor), float(enc.prior)
            self.floor_sum = self.floor * int(enc.cfg["n_mels"])
            self.mu0 = enc.norm_mean.double().numpy().copy()
            self.var0 = enc.norm_var.double().numpy().copy()
            self.enc_in = _Conv(enc.conv_in.weight, enc.conv_in.bias, enc.conv_in.dilation[0])
            self.enc_stack = _Stack(enc.stack)
            self.proj_w = enc.proj.weight.numpy()[:, :, 0].T.astype(np.float32).copy()
            self.proj_b = enc.proj.bias.numpy().astype(np.float32).copy()
            self.softmax = enc.cfg.get("output") == "softmax"
            self.n_mels = int(enc.cfg["n_mels"])
            self.energy_delay = int(net.energy_delay)
            # speaker embedding and projection folded: cond = spk^T @ spk_cond + b
            self.spk_cond = (net.spk_table @ net.spk_proj.weight.t()).numpy().astype(np.float32).copy()
            self.spk_b = net.spk_proj.bias.numpy().astype(np.float32).copy()
            self.dec_in = _Conv(net.conv_in.weight, net.conv_in.bias, net.conv_in.dilation[0])
            self.dec_stack = _Stack(net.stack)
            self.head_w = net.head.weight.numpy()[:, :, 0].T.astype(np.float32).copy()
            self.head_b = net.head.bias.numpy().astype(np.float32).copy()
            syn = net.synth
            self.tables = syn.tables_t.numpy()  # (2, L, Nb)
            self.lengths = tuple(int(n) for n in syn.lengths)
        self.amp_mode, self.n_amp, self.n_env = net.amp_mode, int(net.n_amp), int(net.n_env)
        self.K, self.Nb = int(net.n_harmonics), int(net.n_bands)
        self.sr = int(net.sample_rate)
        self.mel_nyquist = float(net.mel_nyquist)
        self.kvec = np.arange(1, self.K + 1, dtype=np.float32)
        self.ramp = (np.arange(self.hop, dtype=np.float32) / np.float32(self.hop)).astype(np.float32)
        self.ramp64 = self.ramp.astype(np.float64)
        self.w_inc = 2.0 * math.pi / self.sr
        self._ar: dict[int, np.ndarray] = {}

    @classmethod
    def from_model(cls, model: Any) -> "NumpyHpnModel":
        return model if isinstance(model, NumpyHpnModel) else cls(model)

    def weight_matrices(self) -> list[np.ndarray]:
        """The float32 matrices one hop multiplies a frame by, in the order the step reads them
        (mel filterbank, encoder convs and block outputs, unit projection, decoder convs and
        block outputs, head): what a hop must bring from memory, for cost accounting."""
        def stack(s: _Stack) -> list[np.ndarray]:
            return [m for conv, (wo, _) in zip(s.convs, s.outs) for m in (conv.w, wo)]

        return [self.fb_t, self.enc_in.w, *stack(self.enc_stack), self.proj_w, self.spk_cond,
                self.dec_in.w, *stack(self.dec_stack), self.head_w]

    # -- state ------------------------------------------------------------------------
    def init_state(self) -> list[Any]:
        return [from_torch_state(self, self._torch.init_state())]

    # -- the step ---------------------------------------------------------------------
    def _encoder(self, x: np.ndarray, st: NumpyHpnState, k: int) -> tuple[np.ndarray, np.ndarray]:
        """x (k*hop,) -> units (k, D), energy (k,)."""
        hop, win = self.hop, self.win
        xx = np.concatenate([st.front, x])
        st.front = xx[k * hop:]
        if k == 1:
            frames = xx[None, :]
        else:
            frames = np.lib.stride_tricks.sliding_window_view(xx, win)[::hop]
        # the frontend's windowed DFT matrices as an FFT (the 1 MB matrix would be read every hop)
        spec = np.fft.rfft(frames * self.window, self.n_fft, axis=1)
        power = (spec.real * spec.real + spec.imag * spec.imag).astype(np.float32)
        mel = power @ self.fb_t
        mel += 1e-6
        logmel = np.log(mel)
        # causal running normalisation (float64), started from the prior
        speech = (np.add.reduce(logmel, axis=1) > self.floor_sum).astype(np.float64)  # mean > floor, (k,)
        m64 = logmel.astype(np.float64)
        p = self.prior
        if k == 1:
            sp = speech[0]
            cs = st.s + m64[0] * sp
            css = st.ss + m64[0] * m64[0] * sp
            cn = st.n + sp
            st.s, st.ss, st.n = cs, css, cn
            mean = (p * self.mu0 + cs) / (p + cn)
            ex2 = (p * (self.var0 + self.mu0 * self.mu0) + css) / (p + cn)
        else:
            cs = st.s + np.cumsum(m64 * speech[:, None], axis=0)
            css = st.ss + np.cumsum(m64 * m64 * speech[:, None], axis=0)
            cn = st.n + np.cumsum(speech)
            st.s, st.ss, st.n = cs[-1].copy(), css[-1].copy(), float(cn[-1])
            mean = (p * self.mu0 + cs) / (p + cn[:, None])
            ex2 = (p * (self.var0 + self.mu0 * self.mu0) + css) / (p + cn[:, None])
        var = np.maximum(ex2 - mean * mean, 1e-4)
        z = ((m64 - mean) / np.sqrt(var)).astype(np.float32)
        h, st.enc[0] = self.enc_in(z, st.enc[0])
        caches = st.enc
        sub = caches[1:]
        h = self.enc_stack(h, sub)
        caches[1:] = sub
        units = h @ self.proj_w
        units += self.proj_b
        if self.softmax:
            units -= units.max(axis=1, keepdims=True)
            np.exp(units, out=units)
            units /= units.sum(axis=1, keepdims=True)
        mx = logmel.max(axis=1, keepdims=True)
        energy = (np.log(np.exp(logmel - mx).sum(axis=1)) + mx[:, 0]).astype(np.float32)
        return units, energy

    def _frame_params(self, units: np.ndarray, f0: np.ndarray, loud: np.ndarray, spk: np.ndarray,
                      st: NumpyHpnState) -> tuple[np.ndarray, np.ndarray]:
        """-> amps (k, K), noise (k, Nb)."""
        k = f0.shape[0]
        vm = f0 > 0
        voiced = vm.astype(np.float32)
        lf0 = np.where(vm, np.log2(np.maximum(f0, np.float32(1.0)) / np.float32(220.0)), np.float32(0.0))
        feats = np.empty((k, units.shape[1] + 3), np.float32)
        feats[:, :-3] = units
        feats[:, -3] = lf0
        feats[:, -2] = voiced
        feats[:, -1] = (loud + np.float32(5.0)) / np.float32(10.0)
        cond = spk.T @ self.spk_cond  # (k, C)
        cond += self.spk_b
        h, st.dec[0] = self.dec_in(feats, st.dec[0])
        h += cond
        sub = st.dec[1:]
        h = self.dec_stack(h, sub, cond)
        st.dec[1:] = sub
        h = np.maximum(h, 0.1 * h)
        out = h @ self.head_w
        out += self.head_b
        freqs = f0[:, None] * self.kvec  # (k, K) Hz
        alias_ok = freqs < np.float32(0.48 * self.sr)
        noise = _exp_sigmoid(out[:, self.n_amp:] - np.float32(5.0))
        if self.amp_mode == "envelope":
            E = self.n_env
            mel = np.float32(2595.0) * np.log10(np.float32(1.0) + freqs / np.float32(700.0))
            pos = np.minimum(np.maximum(mel * np.float32((E - 1) / self.mel_nyquist), np.float32(0.0)),
                             np.float32(E - 1))
            i0 = np.minimum(pos.astype(np.intp), E - 2)  # floor (pos >= 0)
            w = pos - i0.astype(np.float32)
            env = out[:, :self.n_amp]
            if k == 1:
                e = env[0]
                v0, v1 = e[i0], e[i0 + 1]
            else:
                rows = np.arange(k)[:, None]
                v0, v1 = env[rows, i0], env[rows, i0 + 1]
            amps = _exp_sigmoid(v0 + (v1 - v0) * w - np.float32(5.0))
            amps *= alias_ok
            amps *= voiced[:, None]
            return amps, noise
        z = out[:, :1]
        amp = (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))) * voiced[:, None]  # softplus
        logits = out[:, 1:1 + self.K]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        dist = e / e.sum(axis=1, keepdims=True) * alias_ok
        dist = dist / (dist.sum(axis=1, keepdims=True) + np.float32(1e-7))
        return (amp * dist).astype(np.float32), noise

    def _synth(self, amps: np.ndarray, noise: np.ndarray, f0: np.ndarray, st: NumpyHpnState) -> np.ndarray:
        k, H = f0.shape[0], self.hop
        if k == 1:
            f = float(f0[0])
            f0h = f0 if f > 0 else np.array([st.p_f0], np.float32)
        else:
            idx = np.where(f0 > 0, np.arange(k), -1)
            np.maximum.accumulate(idx, out=idx)
            f0h = np.where(idx >= 0, f0[np.maximum(idx, 0)], np.float32(st.p_f0)).astype(np.float32)
        ext = np.empty(k + 1, np.float32)
        ext[0] = st.p_f0
        ext[1:] = f0h
        f0_up = (ext[:-1, None] + (ext[1:, None] - ext[:-1, None]) * self.ramp).reshape(-1)
        inc = f0_up.astype(np.float64)
        inc *= self.w_inc
        inc[0] += st.phase
        ph = np.cumsum(inc)
        np.mod(ph, 2.0 * math.pi, out=ph)
        sines = np.sin(ph.astype(np.float32)[:, None] * self.kvec).reshape(k, H, self.K)
        ea = np.empty((k + 1, self.K), np.float32)
        ea[0] = st.p_amp
        ea[1:] = amps
        en = np.empty((k + 1, self.Nb), np.float32)
        en[0] = st.p_noise
        en[1:] = noise
        n = k * H
        ar = self._ar.get(n)
        if ar is None:
            ar = self._ar[n] = np.arange(n, dtype=np.int64)
        pos = ar + st.pos
        tab = self.tables[0][pos % self.lengths[0]]
        tab += self.tables[1][pos % self.lengths[1]]
        tab = tab.reshape(k, H, self.Nb)
        if k == 1:
            yh = sines[0] @ ea.T  # (H, 2)
            yn = tab[0] @ en.T
            y = yh + yn
            wave = y[:, 0] + (y[:, 1] - y[:, 0]) * self.ramp
        else:
            pa = np.stack([ea[:-1], ea[1:]], axis=2)  # (k, K, 2)
            pn = np.stack([en[:-1], en[1:]], axis=2)
            yh = np.matmul(sines, pa)  # (k, H, 2)
            yn = np.matmul(tab, pn)
            h = yh[..., 0] + (yh[..., 1] - yh[..., 0]) * self.ramp
            z = yn[..., 0] + (yn[..., 1] - yn[..., 0]) * self.ramp
            wave = (h + z).reshape(-1)
        st.p_amp, st.p_noise = amps[-1].copy(), noise[-1].copy()
        st.p_f0, st.phase, st.pos = float(f0h[-1]), float(ph[-1]), st.pos + n
        return wave.astype(np.float32, copy=False)

    def process_hops(self, x: np.ndarray, f0: np.ndarray, spk: np.ndarray, state: list[Any],
                     index_ratio: float = 0.0) -> tuple[np.ndarray, list[Any]]:
        """Same contract as :meth:`HpnModel.process_hops` (x (k*hop,), f0 (k,), spk (S,) or (S, k))."""
        if index_ratio > 0 and getattr(self._torch, "feature_index", None) is not None:
            raise ParameterError(f"index_ratio {index_ratio:g} needs the torch backend for voice '{self.name}' "
                                 f"(feature retrieval runs in its torch graph); use backend 'torch' or 'auto'")
        if len(state) == 1 and isinstance(state[0], NumpyHpnState):
            st = state[0]
        else:
            st = from_torch_state(self, state)
            state = [st]
        k = f0.shape[0]
        if k == 0:
            return np.zeros(0, np.float32), state
        x = np.asarray(x, np.float32)
        f0 = np.asarray(f0, np.float32)
        sp = np.asarray(spk, np.float32)
        if sp.ndim == 1:
            sp = sp[:, None] if k == 1 else np.repeat(sp[:, None], k, axis=1)
        units, energy = self._encoder(x, st, k)
        ed = self.energy_delay
        if ed > 0:
            e_cat = np.concatenate([st.energy, energy])
            loud, st.energy = e_cat[:k], e_cat[k:]
        else:
            loud = energy
        amps, noise = self._frame_params(units, f0, loud, sp, st)
        return self._synth(amps, noise, f0, st), state

    def synthesize(self, audio: np.ndarray, f0: np.ndarray, spk: np.ndarray, chunk_hops: int = 400) -> np.ndarray:
        """As :meth:`HpnModel.synthesize`, stepped by this runtime."""
        hop, d = self.hop_size, self.delay_hops
        n = audio.shape[0]
        n_frames = -(-n // hop)
        total = n_frames + d
        x = np.zeros(total * hop, np.float32)
        x[:n] = audio
        f0_al = np.zeros(total, np.float32)
        f0_al[d:d + n_frames] = f0[:n_frames]
        sp = np.asarray(spk, np.float32)
        if sp.ndim == 2:
            sp_al = np.zeros((sp.shape[0], total), np.float32)
            sp_al[:, d:d + n_frames] = sp[:, :n_frames]
            sp_al[:, :d] = sp[:, :1]
        state = self.init_state()
        out = np.empty(total * hop, np.float32)
        for s in range(0, total, chunk_hops):
            e = min(total, s + chunk_hops)
            spc = sp_al[:, s:e] if sp.ndim == 2 else sp
            out[s * hop:e * hop], state = self.process_hops(x[s * hop:e * hop], f0_al[s:e], spc, state)
        return out[d * hop:d * hop + n]


def from_torch_state(m: NumpyHpnModel, state: list[Any]) -> NumpyHpnState:
    """HpnModel state (list of tensors, batch 1) -> :class:`NumpyHpnState`."""
    a = [np.asarray(s.detach().cpu().numpy() if hasattr(s, "detach") else s) for s in state]
    ne = 5 + len(m.enc_stack.convs)
    nd = 2 + len(m.dec_stack.convs)
    enc, dec, syn = a[:ne], a[ne:ne + nd], a[ne + nd:]
    st = NumpyHpnState()
    st.front = enc[0][0].astype(np.float32).copy()
    st.s, st.ss = enc[1][0].astype(np.float64).copy(), enc[2][0].astype(np.float64).copy()
    st.n = float(enc[3].reshape(-1)[0])
    st.enc = [c[0].T.astype(np.float32).copy() for c in enc[4:]]
    st.energy = dec[0].reshape(-1)[:m.energy_delay].astype(np.float32).copy()
    st.dec = [c[0].T.astype(np.float32).copy() for c in dec[1:]]
    st.p_amp = syn[0].reshape(-1).astype(np.float32).copy()
    st.p_noise = syn[1].reshape(-1).astype(np.float32).copy()
    st.p_f0 = float(syn[2].reshape(-1)[0])
    st.phase = float(syn[3].reshape(-1)[0])
    st.pos = int(syn[4].reshape(-1)[0])
    return st


def to_torch_state(m: NumpyHpnModel, st: NumpyHpnState) -> list[Any]:
    """:class:`NumpyHpnState` -> the HpnModel's state list (tensors, batch 1)."""
    import torch

    def t(a: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(a))

    ed = max(1, m.energy_delay)
    e = np.zeros((1, 1, ed), np.float32)
    if m.energy_delay:
        e[0, 0] = st.energy
    out = [t(st.front[None]), t(st.s[None]), t(st.ss[None]), t(np.array([[st.n]])),
           *[t(c.T[None]) for c in st.enc], t(e), *[t(c.T[None]) for c in st.dec],
           t(st.p_amp[None, :, None]), t(st.p_noise[None, :, None]), t(np.array([[st.p_f0]], np.float32)),
           t(np.array([[st.phase]], np.float64)), t(np.array([[st.pos]], np.int64))]
    return out
