"""Importers for foreign model files (so-vits-svc voices, fairseq/ContentVec encoders).

Pickled files are only ever opened by :mod:`host_bridge.importers.unpickle_worker` in a
separate process, through a restricted unpickler; the importing process reads safetensors.
"""
