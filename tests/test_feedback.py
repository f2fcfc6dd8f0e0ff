"""The feedback endpoint: CDS Hooks 2.0 bodies (incl. the sandbox's), idempotent, 422 when malformed."""

from __future__ import annotations

import pytest

from cdshooks import store

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
    ({"feedback": [{"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-01-01T12:00:00Z"}]}, "feedback[0].outcome"),
    ({"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "yesterday"}]}, "feedback[0].outcomeTimestamp"),
    ({"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T12:00:00"}]}, "feedback[0].outcomeTimestamp"),
    ({"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T12:00:00Z"}]}, "feedback[0]"),
])
def test_malformed_feedback_is_422_naming_the_field(client, body, field):
    response = client.post(FEEDBACK, json=body)
    assert response.status_code == 422
    issue = response.get_json()["issue"][0]
    assert field in issue["diagnostics"]


def test_feedback_for_an_unknown_service_is_404(client):
    assert client.post("/cds-services/nope/feedback", json={"feedback": []}).status_code == 404
