"""``pallet._std.json`` against ``json``, the module it stands in for (``json`` imports ``re``):
the same text out, the same objects in, the same errors."""

from __future__ import annotations

import json
import random

import pytest

from pallet._std import json as _json

pytestmark = pytest.mark.unit


# -- _std.json is json ----------------------------------------------------------------------

def _random_doc(rng, depth=0):
    r = rng.random()
    if depth > 4 or r < 0.3:
        return rng.choice([None, True, False, 0, -5, 2 ** 70, 1.5, -0.0, 1e300, float("inf"), "",
                           "a\"b\\c\n\u00e9\U0001f600\x01\x7f", "plain", 3.14159])
    if r < 0.6:
        return [_random_doc(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = rng.choice([["a", "b", "c", "\u00e9"], [1, 2, 10, 9], [True, None, 1.5]])
    return {k: _random_doc(rng, depth + 1) for k in rng.sample(keys, rng.randint(0, len(keys)))}


def test_json_writes_and_reads_what_json_does():
    rng = random.Random(7)
    for _ in range(1500):
        doc = _random_doc(rng)
        for kw in ({}, {"indent": 4}, {"indent": "\t"}, {"indent": 1, "sort_keys": True},
                   {"separators": (",", ":")}, {"separators": (",", ":"), "ensure_ascii": False},
                   {"sort_keys": True}, {"indent": 2, "ensure_ascii": False}):
            try:
                want = json.dumps(doc, **kw)
            except TypeError:  # keys of mixed types do not sort: the same error
                with pytest.raises(TypeError):
                    _json.dumps(doc, **kw)
                continue
            assert _json.dumps(doc, **kw) == want, (doc, kw)
            assert json.dumps(_json.loads(want)) == json.dumps(json.loads(want))
            assert json.dumps(_json.loads(want.encode())) == json.dumps(json.loads(want))
    with pytest.raises(TypeError, match="not JSON serializable"):
        _json.dumps({"a": object()})
    with pytest.raises(TypeError, match="not JSON serializable"):
        _json.dumps([{1}], indent=2)
    with pytest.raises(TypeError):
        _json.dumps({1: 1, "a": 2}, sort_keys=True, indent=1)  # as json: mixed keys do not sort


@pytest.mark.parametrize("text", ["", "{", "[1,]", "nul", "1 2", '{"a":1}x', "\ufeff{}", b"\xef\xbb\xbf{}",
                                  '"\x01"', b"\xff", '{"a":NaN}', "  [1] \n"])
def test_json_errors_are_jsons(text):
    def outcome(f):
        try:
            return "ok", json.dumps(f(text))
        except Exception as e:
            return type(e).__name__, str(e)
    assert outcome(_json.loads) == outcome(json.loads)

