"""The demo order-entry page: off by default; its synthetic patients keep their meaning on any date."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from cdshooks.web import demo
from conftest import ROOT
from conftest import make_app

SIGN = "/cds-services/medical-policy-order-sign"


@pytest.fixture
def demo_app(tmp_path):
    return make_app(tmp_path, DEMO=True, DEMO_PATIENTS=str(ROOT / "examples"))


def test_the_demo_is_off_unless_enabled(client):
    for path in ("/demo", "/demo/patients"):
        response = client.get(path)
        assert response.status_code == 404 and response.get_json()["resourceType"] == "OperationOutcome"


def test_the_demo_page_and_its_patients_are_served_when_enabled(demo_app):
    client = demo_app.test_client()
    page = client.get("/demo")
    assert page.status_code == 200 and "Order entry (demo EHR)" in page.get_data(as_text=True)
    patients = client.get("/demo/patients").get_json()["patients"]
    keys = {p["key"] for p in patients}
    assert keys == {path.stem for path in (ROOT / "examples").glob("*.json")}
    policies = {"prenatal-cfdna-screening", "intrathecal-pain-pump", "colony-stimulating-factors",
                "si-joint-fusion-open", "spinal-surgery-referral"}
    seen = set()
    for patient in patients:
        assert patient["label"] and patient["resources"][0]["resourceType"] == "Patient" and patient["orders"]
        body = _request(demo_app, patient)
        cards = client.post(SIGN, json=body).get_json()["cards"]
        seen |= {c["extension"]["cdshooks.evaluation"]["policy"]["id"] for c in cards if "extension" in c}
    assert seen == policies  # at least one demo patient per policy


def test_shifted_records_decide_on_the_demo_date_as_the_originals_did_on_theirs(demo_app, tmp_path):
    """Moving every date by (today - asOf) keeps each decision and criterion result."""
    client, at = demo_app.test_client(), {}
    for patient in client.get("/demo/patients").get_json()["patients"]:
        original = json.loads((ROOT / "examples" / f"{patient['key']}.json").read_text(encoding="utf-8"))
        as_of = original["extension"]["cdshooks.demo"]["asOf"]
        if as_of not in at:
            (tmp_path / as_of).mkdir()
            at[as_of] = make_app(tmp_path / as_of, TODAY=as_of).test_client()
        assert patient["shiftedDays"] == (dt.date(2025, 6, 15) - dt.date.fromisoformat(as_of)).days
        then = at[as_of].post(SIGN, json=original).get_json()
        now = client.post(SIGN, json=_request(demo_app, patient)).get_json()
        assert _results(now) == _results(then), patient["key"]


def test_shift_dates_moves_dates_and_date_times_only():
    value = {"a": "2025-03-01", "b": ["2025-02-27T10:00:00+01:00"], "c": "2025-02-30", "d": "2025-03",
             "e": "x2025-03-01", "f": 3}
    assert demo.shift_dates(value, 2) == {"a": "2025-03-03", "b": ["2025-03-01T10:00:00+01:00"], "c": "2025-02-30",
                                          "d": "2025-03", "e": "x2025-03-01", "f": 3}
    assert demo.shift_dates(value, 0) is value


def test_a_file_that_is_not_a_hook_request_is_skipped(tmp_path):
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "no-patient.json").write_text(json.dumps({"prefetch": {}, "context": {}}))
    good = json.loads((ROOT / "examples" / "cfdna-at-8w2d.json").read_text())
    (tmp_path / "good.json").write_text(json.dumps(good))
    assert [p.key for p in demo.load_patients(tmp_path)] == ["good"]


def _request(app, patient) -> dict:
    """What the demo page sends: every advertised template answered from the patient's resources."""
    from cdshooks import registry
    with app.app_context():
        templates = registry.get().templates
    resources = patient["resources"]
    prefetch = {}
    for t in templates:
        found = [r for r in resources if r["resourceType"] == t.resource_type
                 or (t.resource_type == "MedicationRequest" and r["resourceType"] == "Medication")]
        prefetch[t.key] = resources[0] if t.key == "patient" else (
            {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in found]}
            if found else None)
    return {"hook": "order-sign", "hookInstance": "7b3f6c2e-0f3a-4c55-9d8e-1a2b3c4d5e6f",
            "context": {"userId": "Practitioner/demo", "patientId": resources[0]["id"],
                        "draftOrders": {"resourceType": "Bundle",
                                        "entry": [{"resource": o} for o in patient["orders"]]}},
            "prefetch": prefetch}


def _results(body) -> list:
    out = []
    for card in body["cards"]:
        evaluation = card.get("extension", {}).get("cdshooks.evaluation")
        if evaluation:
            out.append((evaluation["order"], evaluation["decision"], evaluation.get("outcome"),
                        sorted((c["id"], c["result"]) for c in evaluation["criteria"])))
    return sorted(out)
