"""The policy behind every card link: a page for browsers, JSON for API clients."""

from __future__ import annotations

import re

import pytest

from cdshooks.web import pages

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
POLICIES = ["colony-stimulating-factors", "intrathecal-pain-pump", "prenatal-cfdna-screening",
            "si-joint-fusion-open", "spinal-surgery-referral"]


@pytest.mark.parametrize("policy_id", POLICIES)
def test_a_browser_gets_the_policy_as_a_page_with_every_criterion_and_its_citation(client, policy_id):
    page = client.get(f"/policies/{policy_id}", headers={"Accept": BROWSER})
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    document = client.get(f"/policies/{policy_id}").get_json()
    assert f"<h1>{_esc(document['title'])}</h1>" in text
    assert _esc(document["issuer"]) in text
    for criterion in document["criteria"]:
        block = re.search(rf'<li id="c-{re.escape(criterion["id"])}">(.*?)<span class="cite">(.*?)</span>', text, re.S)
        assert block, criterion["id"]
        assert _esc(criterion["text"]) in block.group(1)
        assert block.group(2) == _esc(criterion["cite"])
    for key in document.get("settings", {}):  # (empty settings are on the page, not in the JSON)
        assert f"<code>{key}</code>" in text
    assert "<b>When</b>" in text and "<b>Then</b>" in text


def test_api_clients_keep_getting_json(client):
    for accept in (None, "application/json", "*/*", "application/fhir+json", "application/json, text/html;q=0.5"):
        response = client.get("/policies/intrathecal-pain-pump", headers={"Accept": accept} if accept else {})
        assert response.mimetype == "application/json", accept
    forced = client.get("/policies/intrathecal-pain-pump?format=json", headers={"Accept": BROWSER})
    assert forced.mimetype == "application/json"


def test_an_unknown_policy_is_a_404_operation_outcome_for_browsers_too(client):
    response = client.get("/policies/no-such-policy", headers={"Accept": BROWSER})
    assert response.status_code == 404
    assert response.get_json()["issue"][0]["expression"] == ["policy-id"]


def test_setting_overrides_show_next_to_the_policy_default(tmp_path):
    from conftest import make_app
    app = make_app(tmp_path, POLICY_SETTINGS={"intrathecal-pain-pump": {"opioid.baselineLookbackDays": 90}})
    text = app.test_client().get("/policies/intrathecal-pain-pump", headers={"Accept": BROWSER}).get_data(as_text=True)
    assert "<tr><td><code>opioid.baselineLookbackDays</code></td><td>90</td><td>180</td></tr>" in text


def test_cards_name_the_policy_page_as_their_source(client):
    import json

    from conftest import ROOT
    body = json.loads((ROOT / "examples" / "cfdna-at-8w2d.json").read_text())
    card = client.post("/cds-services/medical-policy-order-sign", json=body).get_json()["cards"][0]
    assert card["source"]["url"] == "https://cds.example.org/policies/prenatal-cfdna-screening"
    assert card["links"][0]["url"] == card["source"]["url"]


def test_when_then_split_reads_the_policy_prose():
    assert pages._when_then("When a thing is ordered,\n then check it.") == ("a thing is ordered", "Check it.")
    assert pages._when_then("Checks things.") == (None, None)


def _esc(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("'", "&#39;"))


def test_the_policy_json_has_no_empty_setting(client):
    # CSF's preferredProducts is empty by default; the document used to carry "preferredProducts": []
    settings = client.get("/policies/colony-stimulating-factors").get_json().get("settings", {})
    assert "preferredProducts" not in settings


def test_order_codes_read_as_their_code_systems_name_them(client):
    text = client.get("/policies/colony-stimulating-factors", headers={"Accept": BROWSER}).get_data(as_text=True)
    assert "HCPCS J1442, Q5101" in text and "RxNorm 68442" in text and "hcpcs|" not in text
    assert "filgrastim-products" not in text  # value sets are shown by their codes, not their file names
