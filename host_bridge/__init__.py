"""host_bridge — what hosts touch: the renderer, presets, the CLI (and, later, the
pedalboard-style effect, the OSC server and live audio)."""
