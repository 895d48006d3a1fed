"""The server's values are the engine's: Session keeps no copy, EngineHost.store is the store of
the converter that runs next, and a value set while a swap waits reaches both converters."""
from __future__ import annotations

import numpy as np
import pytest

from host_bridge.server.audio_io import EngineHost
from host_bridge.server.session import Session
from svc_dsp.engine.parameters import defaults
from svc_dsp.engine.streaming import StreamingConverter
from svc_dsp.errors import ParameterError

SR, PERIOD = 24000, 240


def _make(model, values):
    return StreamingConverter(model, SR, 1024, backend="torch", **{k: v for k, v in values.items() if v is not None})


def test_session_values_are_the_engines_store(random_model):
    host = EngineHost(_make(random_model, defaults()), SR, PERIOD, 0)
    s = Session(random_model, "random-hpn", dict(defaults(), transpose=2.0), host, make_converter=_make)
    try:
        assert host.converter.get("transpose") == 2.0  # the differing start value went to the engine
        s.set_param("transpose", -5.0)
        s.set_param("speaker", random_model.speakers[1])
        assert host.converter.get("transpose") == -5.0 and s.values["transpose"] == -5.0
        assert s.values == host.converter.store.values
        conv = host.converter
        with pytest.raises(ParameterError, match="offline"):  # a new engine is built and refuses it
            s.set_param("f0_method", "harvest")
        assert host.converter is conv and s.values["f0_method"] == "yin" and s.values["transpose"] == -5.0
    finally:
        s.close()


def test_a_value_set_while_a_swap_waits_reaches_both(random_model):
    host = EngineHost(_make(random_model, defaults()), SR, PERIOD, 4 * PERIOD)
    host.start()
    try:
        nxt = _make(random_model, defaults())
        host.swap_converter(nxt)  # buffered and running: waits for the engine thread's next block
        assert host.store is nxt.store
        assert host.set_param("mix", 0.25) == 0.25
        assert nxt.get("mix") == 0.25 and host.converter.get("mix") == 0.25
    finally:
        host.stop()
    assert np.isfinite(host.rtf_ema)
