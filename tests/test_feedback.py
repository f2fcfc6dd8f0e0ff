"""The feedback endpoint: CDS Hooks 2.0 bodies (incl. the sandbox's), idempotent, 422 when malformed."""

from __future__ import annotations

import shutil

import pytest

from cdshooks.store import db as store

FEEDBACK = "/cds-services/medical-policy-order-sign/feedback"


def test_sandbox_override_without_display_is_accepted_and_stored(app, client):
    body = {"feedback": [{"card": "c-1", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T12:00:00.000Z",
                          "overrideReason": {"reason": {"code": "self-pay", "system": "http://x"}}}]}
    response = client.post(FEEDBACK, json=body)
    assert response.status_code == 200 and response.get_json() == {"stored": 1}
    with app.app_context():
        assert len(store.get().rows(store.feedback)) == 1


def test_the_same_feedback_twice_is_stored_once(app, client):
    body = {"feedback": [{"card": "c-1", "outcome": "accepted", "acceptedSuggestions": [{"id": "s-1"}],
                          "outcomeTimestamp": "2026-01-01T12:00:00Z"}]}
    assert client.post(FEEDBACK, json=body).get_json() == {"stored": 1}
    body["feedback"][0]["outcomeTimestamp"] = "2026-01-01T12:00:00.000Z"  # same instant
    assert client.post(FEEDBACK, json=body).get_json() == {"stored": 0}


@pytest.mark.parametrize("body, field", [
    ({}, "feedback"),
    ({"feedback": []}, "feedback"),
    ({"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-01-01T12:00:00Z"}]}, "feedback[0].card"),
    ({"feedback": [{"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-01-01T12:00:00Z"}]},
     "feedback[0].outcome"),
    ({"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}]},
     "feedback[0].outcomeTimestamp"),
    ({"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T12:00:00"}]},
     "feedback[0].outcomeTimestamp"),
    ({"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T12:00:00Z"}]}, "feedback[0]"),
])
def test_malformed_feedback_is_422_naming_the_field(client, body, field):
    response = client.post(FEEDBACK, json=body)
    assert response.status_code == 422
    issue = response.get_json()["issue"][0]
    assert field in issue["diagnostics"]


def test_feedback_for_an_unknown_service_is_404(client):
    assert client.post("/cds-services/nope/feedback", json={"feedback": []}).status_code == 404


def _item(**overrides):
    item = {"card": "c-1", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T12:00:00Z"}
    item.update(overrides)
    return item


@pytest.mark.parametrize("item, field", [
    (_item(outcomeTimestamp="9999-12-31T23:59:59-14:00"), "feedback[0].outcomeTimestamp"),
    (_item(outcomeTimestamp="0001-01-01T00:00:00+14:00"), "feedback[0].outcomeTimestamp"),
    (_item(card="c" * 201), "feedback[0].card"),
    (_item(card="c-\x00"), "feedback[0].card"),
    (_item(overrideReason={"userComment": "nul \x00 here"}), "feedback[0].overrideReason.userComment"),
    (_item(overrideReason={"userComment": "x" * 4001}), "feedback[0].overrideReason.userComment"),
    (_item(overrideReason={"reason": {"system": "s" * 201, "code": "c"}}), "feedback[0].overrideReason.reason.system"),
    (_item(outcome="accepted", acceptedSuggestions=[{"id": "\x00"}]), "feedback[0].acceptedSuggestions[0].id"),
])
def test_values_the_store_cannot_keep_are_422_naming_the_field(app, client, item, field):
    response = client.post(FEEDBACK, json={"feedback": [item]})
    assert response.status_code == 422
    issue = response.get_json()["issue"][0]
    assert issue["expression"] == [field]
    with app.app_context():
        assert store.get().rows(store.feedback) == []


def test_more_feedback_items_than_the_limit_are_refused_before_validation(tmp_path):
    from conftest import make_app
    client = make_app(tmp_path, MAX_FEEDBACK_ITEMS=3).test_client()
    items = [_item(card=f"c-{i}") for i in range(4)]
    response = client.post(FEEDBACK, json={"feedback": items})
    assert response.status_code == 422 and response.get_json()["issue"][0]["expression"] == ["feedback"]
    assert client.post(FEEDBACK, json={"feedback": items[:3]}).get_json() == {"stored": 3}


def test_feedback_the_store_cannot_keep_is_503_not_acknowledged(tmp_path):
    from conftest import make_app
    folder = tmp_path / "data"
    app = make_app(tmp_path, DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}")
    client = app.test_client()
    assert client.post(FEEDBACK, json={"feedback": [_item()]}).status_code == 200
    shutil.rmtree(folder)
    response = client.post(FEEDBACK, json={"feedback": [_item(card="c-2")]})
    assert response.status_code == 503 and response.headers["Retry-After"]
    issue = response.get_json()["issue"][0]
    assert issue["code"] == "transient" and "nothing was stored" in issue["diagnostics"]
