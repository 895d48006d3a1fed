"""host_bridge — what hosts touch: the pedalboard-style effect and Chain, the renderer,
presets, the OSC server and live audio, and the ``svc-host`` CLI.

Names are imported lazily so that ``svc-host --help`` stays instant.
"""
from __future__ import annotations

from typing import Any

__all__ = ["VoiceConversion", "Chain", "render_file"]


def __getattr__(name: str) -> Any:
    if name == "VoiceConversion":
        from host_bridge.effect import VoiceConversion
        return VoiceConversion
    if name == "Chain":
        from host_bridge.chain import Chain
        return Chain
    if name == "render_file":
        from host_bridge.render import render_file
        return render_file
    raise AttributeError(f"module 'host_bridge' has no attribute '{name}'")
