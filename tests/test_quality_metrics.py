"""The quality benchmark's own arithmetic (the recognisers and the speaker model are optional
and not needed here)."""
from __future__ import annotations

import numpy as np

from benchmarks.quality import cents, word_errors


def test_word_errors_count_edits_ignoring_case_and_punctuation() -> None:
    assert word_errors("Hold me close.", "hold me close") == (0, 3)
    assert word_errors("a b c d", "a x c") == (2, 4)  # one substitution, one deletion
    assert word_errors("a b", "a b c d") == (2, 2)  # insertions count: WER can exceed 1
    assert word_errors("a b c", "") == (3, 3)


def test_cents_compare_voiced_frames_only() -> None:
    ref = np.array([220.0] * 10 + [0.0] * 5)
    est = np.array([220.0 * 2 ** (10 / 1200)] * 5 + [220.0 * 2 ** (100 / 1200)] * 5 + [330.0] * 5)
    med, share = cents(ref, est)
    assert abs(med - 55.0) < 1e-6 and share == 0.5
    assert np.isnan(cents(ref[:3], est[:3])[0])  # too few voiced frames to say anything
