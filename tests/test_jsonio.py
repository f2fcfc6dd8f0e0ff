"""JSON in and out: pruning empties (CDS Hooks 2.0 JSON rules); a request's prefetch parsed when read."""

import orjson
import pytest

from cdshooks import jsonio


def test_prune_drops_nulls_and_empties_recursively():
    value = {"a": None, "b": "", "c": [], "d": {}, "e": [{"f": None}], "g": {"h": [1, None, ""]}, "i": 0}
    assert jsonio.prune(value) == {"g": {"h": [1]}, "i": 0}


# ----------------------------------------------------------------------------- deferred parsing
BODY = {"hook": "order-sign", "context": {"patientId": "p-1"},
        "prefetch": {"patient": {"resourceType": "Patient", "id": "p-1"}, "none": None,
                     "observations": {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation",
                                                                                        "id": f"o-{i}"}}
                                                                           for i in range(3)]}}}


def test_a_deferred_body_reads_as_the_whole_parse_does():
    data = orjson.dumps(BODY)
    body = jsonio.loads_deferring(data, "prefetch")
    assert isinstance(body["prefetch"], jsonio.Deferred)
    assert {k: v for k, v in body.items() if k != "prefetch"} == {k: v for k, v in BODY.items() if k != "prefetch"}
    assert dict(body["prefetch"]) == BODY["prefetch"] == jsonio.whole(body["prefetch"])
    assert list(body["prefetch"]) == list(BODY["prefetch"])


def test_a_deferred_member_is_parsed_only_when_read_and_once():
    prefetch = jsonio.loads_deferring(orjson.dumps(BODY), "prefetch")["prefetch"]
    later = prefetch.later("observations")
    assert "observations" in prefetch and "nothing" not in prefetch and set(prefetch.keys()) == set(BODY["prefetch"])
    assert prefetch._read == {}
    assert prefetch.array_length("observations", "entry") == 3 and prefetch._read == {}
    assert prefetch.head("observations") == {"resourceType": "Bundle", "entry": [None]}
    assert prefetch._read == {}
    assert later["entry"][2]["resource"]["id"] == "o-2"
    assert prefetch["observations"] is prefetch["observations"]
    assert jsonio.whole(later) == BODY["prefetch"]["observations"]


@pytest.mark.parametrize("data", [
    b'{"prefetch": {"a": {"n": 123456789012345678901234567890}}}',   # past 64 bits: orjson reads a float
    b'{"prefetch": {"a": 1, "a": 2}}',                                # a duplicate key: the last one counts
    b'{"prefetch": null, "hook": "x"}',
    b'[1, 2]',
])
def test_what_simdjson_could_read_differently_is_parsed_by_orjson(data):
    assert jsonio.loads_deferring(data, "prefetch") == orjson.loads(data)


@pytest.mark.parametrize("data", [b'{"prefetch": {"a": NaN}}', b'{"prefetch": {"a": "\xff"}}', b'{"a": 1',
                                  b'{"prefetch": {"a": "\\ud800"}}', b'{"a": 1} x'])
def test_invalid_json_anywhere_is_refused_even_where_nothing_reads_it(data):
    with pytest.raises(ValueError):
        jsonio.loads_deferring(data, "prefetch")


def test_array_lengths_read_the_same_from_a_dict_and_a_deferred_object():
    prefetch = jsonio.loads_deferring(orjson.dumps(BODY), "prefetch")["prefetch"]
    for key in BODY["prefetch"]:
        assert jsonio.array_length(prefetch, key, "entry") == jsonio.array_length(BODY["prefetch"], key, "entry")


def test_a_parser_serves_another_body_only_once_nothing_reads_its_document():
    other = {**BODY, "prefetch": {"patient": {"resourceType": "Patient", "id": "p-2"}}}
    first = jsonio.loads_deferring(orjson.dumps(BODY), "prefetch")
    second = jsonio.loads_deferring(orjson.dumps(other), "prefetch")   # while the first is still read
    assert dict(first["prefetch"]) == BODY["prefetch"] and dict(second["prefetch"]) == other["prefetch"]
    idle = len(jsonio._IDLE_PARSERS)
    del first, second
    assert len(jsonio._IDLE_PARSERS) == min(idle + 2, jsonio._IDLE_PARSERS_KEPT)
    third = jsonio.loads_deferring(orjson.dumps(other), "prefetch")   # takes one of them again
    assert len(jsonio._IDLE_PARSERS) == min(idle + 2, jsonio._IDLE_PARSERS_KEPT) - 1
    assert dict(third["prefetch"]) == other["prefetch"]


def test_a_parser_that_read_a_large_body_is_not_kept(monkeypatch):
    monkeypatch.setattr(jsonio, "_KEPT_BODY_BYTES", 100)
    idle = len(jsonio._IDLE_PARSERS)
    body = jsonio.loads_deferring(orjson.dumps(BODY), "prefetch")   # > 100 bytes
    assert dict(body["prefetch"]) == BODY["prefetch"]
    taken = len(jsonio._IDLE_PARSERS)
    del body
    assert len(jsonio._IDLE_PARSERS) == taken <= idle
