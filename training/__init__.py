"""Training: prepare data -> extract features -> fit -> export a model folder the engine loads.

Stages (each a plain function; ``training.cli`` wires them to ``svc-host train ...``):

- :func:`training.prepare.prepare` — slice, resample, loudness-normalise, file lists.
- :func:`training.features.extract_features` — content units, energy, F0, loudness per file.
- :func:`training.fit.fit` — resumable training of the default 'hpn' family.
- :func:`training.export.export` — write a checked model folder.

Importing this package imports neither torch nor the stages.
"""
