"""Per-frame features on the shared frame grid: F0 trackers, pitch utilities, loudness.

Importing this package registers the built-in F0 trackers ("yin", "harvest", "dio", and the neural
"crepe", "crepe-tiny", "fcpe", "pesto", which import torch only when they first run).
No torch here: content encoders live in :mod:`svc_dsp.models.encoders`, torch building blocks in :mod:`svc_dsp.nn`.
"""
from svc_dsp.features import f0, f0_crepe, f0_crepe_live, f0_fcpe, f0_fcpe_live, f0_pesto, f0_world, f0_yin, loudness, pitch
from svc_dsp.features.f0 import F0Stream, F0Tracker, f0_tracker_names, get_f0_tracker, register_f0_tracker

__all__ = ["F0Stream", "F0Tracker", "f0", "f0_tracker_names", "f0_world", "f0_yin", "get_f0_tracker",
           "loudness", "pitch", "register_f0_tracker"]
