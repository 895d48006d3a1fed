"""The restricted unpickler reads Lightning checkpoints' defaultdict and protocol 2's long, and
still refuses a defaultdict whose factory could run code."""
from __future__ import annotations

import collections
import pickle

import pytest

from host_bridge.importers.restricted_unpickle import RefusedGlobal, load


def test_defaultdict_of_int_protocol_2(tmp_path):
    p = tmp_path / "d.pkl"
    d = collections.defaultdict(int, {"steps": 3})
    p.write_bytes(pickle.dumps({"loops": d, "n": 2 ** 40}, protocol=2))
    tree, _ = load(p)
    assert tree["loops"] == {"steps": 3} and tree["n"] == 2 ** 40
    assert isinstance(tree["loops"], dict)


def test_defaultdict_with_a_dangerous_factory_is_refused(tmp_path):
    import os

    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps(collections.defaultdict(os.getcwd), protocol=2))
    with pytest.raises(RefusedGlobal, match="getcwd"):
        load(p)
