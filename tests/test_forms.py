"""The documentation loop: card link → form of the order's open questions → QuestionnaireResponse
→ written to the EHR with the call's token (kept server-side) → the next hook call decides."""

from __future__ import annotations

import datetime as dt
import html
import json
import re

import pytest
import responses
from cryptography.fernet import InvalidToken
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from cdshooks.store import db as store
from conftest import ROOT
from conftest import make_app

EHR = "https://ehr.example/fhir"
TOKEN = "secret-token-123"
SIGN = "/cds-services/medical-policy-order-sign"
CSF = ROOT / "examples" / "demo-csf-filgrastim-breast-cancer.json"


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path, FHIR_ALLOWLIST=EHR)


def csf_request(with_ehr=True, **extra):
    body = json.loads(CSF.read_text(encoding="utf-8"))
    body.pop("extension")
    if with_ehr:
        body["fhirServer"] = EHR
        body["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read patient/QuestionnaireResponse.write",
                                     "subject": "cds-service"}
    body.update(extra)
    return body


def form_path(card) -> str:
    link = next(link for link in card["links"] if "/forms/" in link["url"])
    return link["url"].removeprefix("https://cds.example.org")


def radios(page: str) -> dict[str, str | None]:
    """linkId -> the checked value ("yes" / "no" / "" for not answered)."""
    checked = {}
    for name, value, rest in re.findall(r'name="q:([^"]+)" value="([^"]*)"([^>]*)>', page):
        checked.setdefault(name, None)
        if "checked" in rest:
            checked[name] = value
    return checked


def posted_qr(page: str) -> dict:
    return json.loads(html.unescape(re.search(r'<pre class="json" id="qr">(.*?)</pre>', page, re.S).group(1)))


def evaluation(response) -> dict:
    return response.get_json()["cards"][0]["extension"]["cdshooks.evaluation"]


def stored_launches() -> list[dict]:
    """The form launches in the database, once the background writer has written what it holds."""
    assert store.get().writer.flush(10)
    return store.get().rows(store.forms)


@responses.activate
def test_the_whole_loop_writes_the_response_to_the_ehr_and_the_next_call_decides_with_it(client):
    first = client.post(SIGN, json=csf_request())
    assert first.status_code == 200
    before = evaluation(first)
    assert before["decision"] == "unknown" and "A.a.ii.1" in before["documentation"]
    assert TOKEN not in first.get_data(as_text=True)

    page = client.get(form_path(first.get_json()["cards"][0]))
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert TOKEN not in text
    checked = radios(text)
    assert all(checked[i] == "" for i in before["documentation"])          # open: nothing prefilled
    assert checked["A.a.i"] == "yes"                                        # the record's breast cancer
    assert "Save to the EHR" in text

    responses.post(f"{EHR}/QuestionnaireResponse", status=201,
                   json={"resourceType": "QuestionnaireResponse", "id": "qr-77"},
                   headers={"Location": f"{EHR}/QuestionnaireResponse/qr-77/_history/1"})
    done = client.post(form_path(first.get_json()["cards"][0]), data={"q:A.a.ii.1": "yes", "q:A.a.i": "yes"})
    assert done.status_code == 200
    assert "Saved to the EHR as <code>QuestionnaireResponse/qr-77</code>" in done.get_data(as_text=True)
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    qr = json.loads(sent.body)
    QuestionnaireResponse.model_validate(qr)
    assert qr["questionnaire"].startswith("https://cds.example.org/fhir/Questionnaire/colony-stimulating-factors|")
    assert qr["subject"] == {"reference": f"Patient/{csf_request()['context']['patientId']}"}
    assert qr["author"] == {"reference": csf_request()["context"]["userId"]}
    assert {i["linkId"]: i["answer"][0]["valueBoolean"] for i in qr["item"]} == {"A.a.ii.1": True, "A.a.i": True}
    assert qr["basedOn"] == [{"reference": before["order"]}]

    filed = {**qr, "id": "qr-77"}
    again = client.post(SIGN, json=csf_request(with_ehr=False, prefetch={
        **csf_request()["prefetch"],
        "questionnaireResponses": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": filed}]}}))
    after = evaluation(again)
    results = {c["id"]: c for c in after["criteria"]}
    assert results["A.a.ii.1"]["result"] == "met"
    assert results["A.a.ii.1"]["evidence"][0]["reference"] == "QuestionnaireResponse/qr-77"
    assert "A.a.ii.1" not in after.get("documentation", [])
    assert after["decision"] == "met" != before["decision"]


@responses.activate
def test_the_token_is_used_once_then_the_form_offers_a_download(client):
    path = form_path(client.post(SIGN, json=csf_request()).get_json()["cards"][0])
    responses.post(f"{EHR}/QuestionnaireResponse", status=201,
                   json={"resourceType": "QuestionnaireResponse", "id": "1"})
    assert "QuestionnaireResponse/1" in client.post(path, data={"q:A.a.ii.1": "no"}).get_data(as_text=True)
    second = client.get(path).get_data(as_text=True)
    assert "Save to the EHR" not in second and "download" in second
    assert len(responses.calls) == 1


def test_the_token_is_kept_encrypted_and_nowhere_in_plain_text(client, app):
    client.post(SIGN, json=csf_request())
    with app.app_context():
        rows = stored_launches()
    assert rows and rows[0]["token_cipher"]
    assert TOKEN not in json.dumps(rows, default=str)


def test_the_kept_token_expires_with_the_authorization(client, app):
    expired = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 0, "scope": "x", "subject": "y"}
    client.post(SIGN, json=csf_request(fhirAuthorization=expired))
    with app.app_context():
        ref = stored_launches()[0]["ref"]
    page = client.get(f"/forms/{ref}").get_data(as_text=True)
    assert "Save to the EHR" not in page


def test_no_token_is_kept_for_a_server_off_the_allow_list(tmp_path):
    app = make_app(tmp_path)  # empty allow-list
    client = app.test_client()
    card = client.post(SIGN, json=csf_request()).get_json()["cards"][0]
    with app.app_context():
        assert stored_launches()[0]["token_cipher"] is None
    page = client.get(form_path(card)).get_data(as_text=True)
    assert "download" in page and "Save to the EHR" not in page


@responses.activate
def test_an_ehr_refusal_is_shown_and_the_response_is_still_downloadable(client):
    path = form_path(client.post(SIGN, json=csf_request()).get_json()["cards"][0])
    responses.post(f"{EHR}/QuestionnaireResponse", status=403)
    page = client.post(path, data={"q:A.a.ii.1": "yes"}).get_data(as_text=True)
    assert "Not saved to the EHR" in page and "HTTP 403" in page
    assert posted_qr(page)["status"] == "completed"
    assert 'download="QuestionnaireResponse-colony-stimulating-factors.json"' in page


def test_a_form_without_any_answer_is_refused_with_the_reason(client):
    path = form_path(client.post(SIGN, json=csf_request(with_ehr=False)).get_json()["cards"][0])
    page = client.post(path, data={"q:A.a.ii.1": ""})
    assert page.status_code == 422 and "answer at least one" in page.get_data(as_text=True)


def test_without_an_ehr_the_response_is_offered_as_a_valid_download(client):
    path = form_path(client.post(SIGN, json=csf_request(with_ehr=False)).get_json()["cards"][0])
    page = client.post(path, data={"q:A.a.ii.1": "yes", "q:not-a-question": "yes"}).get_data(as_text=True)
    qr = posted_qr(page)
    QuestionnaireResponse.model_validate(qr)
    assert [i["linkId"] for i in qr["item"]] == ["A.a.ii.1"]
    assert qr["authored"].startswith("2025-06-15")  # the configured evaluation date


def test_an_unknown_or_expired_form_is_a_404_page(client, app):
    assert client.get("/forms/nope").status_code == 404
    path = form_path(client.post(SIGN, json=csf_request(with_ehr=False)).get_json()["cards"][0])
    with app.app_context(), store.get().engine.begin() as conn:
        assert store.get().writer.flush(10)
        conn.execute(store.forms.update().values(expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)))
    assert client.get(path).status_code == 404


def test_the_blank_form_of_a_policy_asks_every_documentation_question(client):
    page = client.get("/policies/prenatal-cfdna-screening/form").get_data(as_text=True)
    questionnaire = client.get("/fhir/Questionnaire/prenatal-cfdna-screening").get_json()
    assert set(radios(page)) == {item["linkId"] for item in questionnaire["item"]}
    done = client.post("/policies/prenatal-cfdna-screening/form", data={"patient": "pat-9", "q:MN-2": "yes"})
    assert posted_qr(done.get_data(as_text=True))["subject"] == {"reference": "Patient/pat-9"}
    bad_patient = {"patient": "a b", "q:MN-2": "yes"}
    assert client.post("/policies/prenatal-cfdna-screening/form", data=bad_patient).status_code == 422
    assert client.get("/policies/no-such-policy/form").status_code == 404


def test_a_card_without_open_documentation_stores_no_form(client, app):
    from cdshooks import registry
    from cdshooks.testing import cases
    suites, _ = cases.load_suites(ROOT / "policies")
    suite = next(s for _, s in suites if s.policy == "prenatal-cfdna-screening")
    case = next(c for c in suite.cases if c.expect.documentation == [])
    with app.app_context():
        body, _ = cases.request_for(ROOT / "policies", suite.policy, case, registry.get().templates)
    card = client.post(SIGN, json=body).get_json()["cards"][0]
    assert "documentation" not in card["extension"]["cdshooks.evaluation"]
    assert not any("/forms/" in link["url"] or link["url"].endswith("/form") for link in card["links"])
    with app.app_context():
        assert stored_launches() == []


def test_questions_that_can_change_the_decision_come_first_and_the_rest_fold_away(client):
    page = client.get(form_path(client.post(SIGN, json=csf_request(with_ehr=False)).get_json()["cards"][0]))
    text = page.get_data(as_text=True)
    deciding, rest = text.split('<details id="others"')[:2]
    others = rest.split('<details id="known"')[0]
    # breast cancer, FN risk unknown: a high-risk regimen alone would meet A.a; acute leukaemia alone would not
    assert 'name="q:A.a.ii.1"' in deciding and 'name="q:A.d.i.1.dx"' not in deciding
    assert 'name="q:A.d.i.1.dx"' in others
    assert 'name="q:A.a.i"' in text.split('<details id="known"')[1]


def test_apps_sharing_a_secret_key_read_each_others_kept_tokens(tmp_path):
    """Workers of one deployment (and instances sharing a database) must decrypt the same rows."""
    from cdshooks.web import forms
    db = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    one = make_app(tmp_path, DATABASE_URL=db, SECRET_KEY=12345, FHIR_ALLOWLIST=EHR)
    two = make_app(tmp_path, DATABASE_URL=db, SECRET_KEY="12345", FHIR_ALLOWLIST=EHR)
    other = make_app(tmp_path, DATABASE_URL=db, FHIR_ALLOWLIST=EHR)  # random key
    path = form_path(one.test_client().post(SIGN, json=csf_request()).get_json()["cards"][0])
    with two.app_context():
        row = store.get().form(path.rsplit("/", 1)[1], wait=True)   # another worker's launch
        assert forms._fernet().decrypt(row["token_cipher"].encode()).decode() == TOKEN
    with other.app_context(), pytest.raises(InvalidToken):
        forms._fernet().decrypt(row["token_cipher"].encode())


def test_errors_are_pages_for_browsers_and_operation_outcomes_for_api_clients(client):
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    gone = client.get("/forms/nope", headers=browser)
    assert gone.status_code == 404 and "expired" in gone.get_data(as_text=True) and gone.mimetype == "text/html"
    api = client.get("/forms/nope", headers={"Accept": "application/json"})
    assert api.status_code == 404 and api.get_json()["issue"][0]["expression"] == ["ref"]
    path = form_path(client.post(SIGN, json=csf_request(with_ehr=False)).get_json()["cards"][0])
    refused = client.post(path, data={}, headers={"Accept": "application/json"})
    assert refused.status_code == 422 and refused.get_json()["issue"][0]["expression"] == ["answers"]
    bad_patient = client.post("/policies/prenatal-cfdna-screening/form", data={"patient": "a b", "q:MN-2": "yes"},
                              headers={"Accept": "application/json"})
    assert bad_patient.status_code == 422 and bad_patient.get_json()["issue"][0]["expression"] == ["patient"]


def test_expired_tokens_are_erased_when_the_next_launches_are_stored(client, app):
    expired = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 0, "scope": "x", "subject": "y"}
    client.post(SIGN, json=csf_request(fhirAuthorization=expired))
    client.post(SIGN, json=csf_request(with_ehr=False))
    with app.app_context():
        rows = stored_launches()
    assert len(rows) == 2 and all(row["token_cipher"] is None for row in rows)
