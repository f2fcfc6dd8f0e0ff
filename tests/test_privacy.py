"""No patient data beyond ids, and no tokens, in logs or in the audit table."""

from __future__ import annotations

import json
import logging
import re

import responses

from cdshooks.store import db as store
from conftest import ROOT
from conftest import _private_values
from conftest import make_app

FHIR = "https://ehr.example.org/fhir"


def test_hook_calls_with_fixture_records_leave_no_private_data_in_logs_or_audit(tmp_path, caplog):
    app = make_app(tmp_path, FHIR_ALLOWLIST=FHIR, TODAY="2025-06-15")
    client = app.test_client()
    bodies = [json.loads(p.read_text()) for p in sorted((ROOT / "examples").glob("*.json"))]
    private = _private_values()
    with caplog.at_level(logging.DEBUG), responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(re.compile(rf"{re.escape(FHIR)}/.*"), status=503)
        for body in bodies:
            body["fhirServer"] = FHIR
            body["fhirAuthorization"] = {"access_token": "secret-token-123", "token_type": "Bearer",
                                         "expires_in": 300, "scope": "patient/*.read", "subject": "cds"}
            body["prefetch"].pop("procedures", None)   # one key fetched (and failing) from the server
            assert client.post("/cds-services/medical-policy-order-sign", json=body).status_code in (200, 412)
    assert caplog.records, "expected log output"
    assert not [v for v in private if v in caplog.text]
    with app.app_context():
        assert store.get().writer.flush(10)
        rows = json.dumps(store.get().rows(store.audit), default=str)
    assert rows.count("pat-") >= 2   # ids are kept …
    assert not [v for v in private if v in rows]   # … names, birth dates and tokens are not
