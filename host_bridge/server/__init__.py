"""The OSC/MIDI server with live audio (``svc-host serve``); see docs/osc.md."""
