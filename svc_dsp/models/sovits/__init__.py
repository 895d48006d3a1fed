"""The 'sovits' voice-model family: imported so-vits-svc 4.0/4.1 (and so-vits-svc-fork) voices.

Importing this package registers the family with :mod:`svc_dsp.models.base`.
"""
from svc_dsp.models.base import register_family
from svc_dsp.models.sovits.model import FAMILY, SovitsModel, load

register_family(FAMILY, load)

__all__ = ["FAMILY", "SovitsModel", "load"]
