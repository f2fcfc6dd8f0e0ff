"""JSON rules shared by every response: pruning empties (CDS Hooks 2.0 JSON rules)."""

from cdshooks import jsonio


def test_prune_drops_nulls_and_empties_recursively():
    value = {"a": None, "b": "", "c": [], "d": {}, "e": [{"f": None}], "g": {"h": [1, None, ""]}, "i": 0}
    assert jsonio.prune(value) == {"g": {"h": [1]}, "i": 0}
