"""EngineHost ring logic with a stand-in converter (a pure delay of L samples): the output
is the input delayed by exactly ``latency_samples`` in both modes, also across a stall."""
from __future__ import annotations

import time

import numpy as np
import pytest

from host_bridge.server.audio_io import EngineHost


class DelayConverter:
    def __init__(self, latency: int) -> None:
        self.latency_samples = latency
        self.xruns = 0
        self.buf = np.zeros(latency, np.float32)
        self.calls = 0
        self.stall_on: int | None = None

    def process(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.stall_on:
            time.sleep(0.25)  # the engine thread stalls: the callback must not wait for it
        y = np.concatenate([self.buf, x.astype(np.float32)])
        self.buf = y[x.shape[0]:]
        return y[: x.shape[0]]

    def reset(self) -> None:
        self.buf[:] = 0.0

    def set(self, name, value) -> None:
        pass


def _run(host: EngineHost, n_periods: int, period: int, sr: int, paced: bool) -> tuple[np.ndarray, np.ndarray]:
    x = (np.arange(n_periods * period) % 9973 + 1).astype(np.float32)  # never 0: zeros mark xruns
    y = np.zeros_like(x)
    out = np.zeros(period, np.float32)
    host.start()
    try:
        for k in range(n_periods):
            host.process_period(x[k * period:(k + 1) * period], out)
            y[k * period:(k + 1) * period] = out
            if paced:
                time.sleep(period / sr)
    finally:
        host.stop()
    return x, y


@pytest.mark.parametrize("block,period", [(0, 256), (1024, 256), (1000, 128), (512, 512)])
def test_output_is_input_delayed_by_reported_latency(block, period):
    sr = 48000
    host = EngineHost(DelayConverter(123), sr, period, block)
    L = host.latency_samples
    assert L == 123 + (0 if block in (0, period) else 2 * block + period)
    x, y = _run(host, 300, period, sr, paced=not host.direct)
    ok = y[L:] != 0
    assert ok.mean() > 0.9
    np.testing.assert_array_equal(y[L:][ok], x[: x.shape[0] - L][ok])
    assert not y[:L].any()


def test_a_stalled_engine_costs_xruns_but_never_shifts_the_alignment():
    sr, period = 48000, 256
    conv = DelayConverter(50)
    conv.stall_on = 20
    host = EngineHost(conv, sr, period, 1024)
    L = host.latency_samples
    conv_calls_warm = 3  # warm_up() runs three blocks first
    conv.stall_on += conv_calls_warm
    x, y = _run(host, 600, period, sr, paced=True)
    assert host.underruns > 0
    ok = y[L:] != 0
    np.testing.assert_array_equal(y[L:][ok], x[: x.shape[0] - L][ok])
    assert ok[-20 * period:].all()  # caught up: the end is complete again
