"""What every runtime of an 'hpn' voice shares: it wraps the loaded torch model (config, folder,
lookahead and latency come from it) and runs the same streaming step another way."""
from __future__ import annotations

from typing import Any, ClassVar

from svc_dsp.models.base import StatefulModel


class HpnRuntime(StatefulModel):
    """Base of the onnxruntime and numpy runtimes of a torch ``HpnModel`` (``model``)."""

    family: ClassVar[str] = "hpn"
    regime: ClassVar[str] = "stateful"

    def __init__(self, model: Any) -> None:
        self.config, self.folder = model.config, model.folder
        self._torch = model
        self._delay_hops = int(model.delay_hops)

    @property
    def delay_hops(self) -> int:
        return self._delay_hops

    def latency_samples(self) -> int:
        return self._torch.latency_samples()
