"""Recipe: content encoder 'svc-phone-v2' — svc-phone-v1's recipe with more speakers.

    python -m training.recipes.encoder_svc_phone_v2            # full run -> presets/encoders/svc-phone-v2
    python -m training.recipes.encoder_svc_phone_v2 --export-only   # export the newest checkpoint

Stage 1 is svc-phone-v1's (the same five timed voices; its model folder under
build/encoder_runs/svc-phone-v1-stage1 is reused, or trained if missing). Stage 2 adds to
v1's voices and forced-aligned espeak-ng voices eight festival voices of other languages:
Italian (lp, pc), Finnish (lj, mv), Czech (dita, ph), Russian (nsh) and Catalan (ona)
speakers reading the English sentences with their own letter-to-sound rules, labelled with
their own phone timings mapped to the 40 classes (training/corpus/foreign_phones.py), 60
sentences each with the same variants as the timed voices (original, F0/warp/speed, sung).
Needs their Debian packages (see ``foreign_phones.PACKAGES``; festvox-ru is 179 MB).

Lookahead 20 ms (``delay_frames`` 3; v1: 10 ms). Not bundled: the demo trained on it (and
sung A2-E5) lost sung words, and the foreign voices did not raise the held-out speaker's
frame accuracy (docs/training.md). Were it bundled, v1 would stay beside it: models trained
on v1 record its sha256.
"""
from __future__ import annotations

import sys
from typing import Any

from training.corpus import foreign_phones
from training.recipes import encoder_svc_phone_v1 as v1

NAME = "svc-phone-v2"
FOREIGN_VOICES = tuple(foreign_phones.FOREIGN_VOICES)  # all eight, in the map's order (sets the cache keys)
FULL: dict[str, Any] = {
    **v1.FULL, "name": NAME, "out": str(v1.REPO / "presets" / "encoders" / NAME),
    "run_dir": str(v1.REPO / "build" / "encoder_runs" / NAME), "foreign_voices": FOREIGN_VOICES,
    "delay_frames": 3,  # 20 ms lookahead (v1: 10 ms)
}


def main(argv: list[str] | None = None) -> int:
    return v1.main(argv, full=FULL, tiny={**v1.TINY, "name": NAME}, description=__doc__.split("\n")[0])


if __name__ == "__main__":
    sys.exit(main())
