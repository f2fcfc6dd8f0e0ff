"""The pages in a real browser: Debian's headless Chromium through Selenium and the system driver.

The service runs in a thread on an ephemeral port, next to a minimal FHIR server standing in for
the EHR (it stores what is POSTed, checking the bearer token). Skips only when Chromium is not
installed and CI did not ask for it (``CDSHOOKS_REQUIRE_BROWSER=1`` turns the skip into a failure).
Screenshots go to ``$CDSHOOKS_SCREENSHOTS`` (``docs/screens`` for the committed ones), else to a
temporary folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask import request as flask_request
from werkzeug.serving import make_server

from cdshooks.store import db as store
from conftest import ROOT
from conftest import make_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
TOKEN = "tok-abc"
WAIT_S = 20

selenium = pytest.importorskip("selenium") if not os.environ.get("CDSHOOKS_REQUIRE_BROWSER") else __import__("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


class Served:
    """A WSGI app on 127.0.0.1 with an ephemeral port, in a daemon thread."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)


def fake_ehr() -> tuple[Flask, list[dict]]:
    """A FHIR server that accepts QuestionnaireResponses (bearer token required) and returns them."""
    app, filed = Flask("fake-ehr"), []

    @app.post("/fhir/QuestionnaireResponse")
    def create():
        if flask_request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "security"}]}, 401
        resource = {**flask_request.get_json(force=True), "id": f"qr-{len(filed) + 1}"}
        filed.append(resource)
        return resource, 201, {"Location": f"/fhir/QuestionnaireResponse/{resource['id']}/_history/1"}

    return app, filed


@pytest.fixture(scope="module")
def chrome():
    # the driver's wire log repeats page contents (synthetic names, birth dates): not for the log
    for name in ("selenium", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        if os.environ.get("CDSHOOKS_REQUIRE_BROWSER"):
            pytest.fail(f"CDSHOOKS_REQUIRE_BROWSER is set but {', '.join(missing)} is missing")
        pytest.skip(f"no headless browser here ({', '.join(missing)} missing)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--lang=en-US", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def ehr():
    app, filed = fake_ehr()
    served = Served(app)
    served.filed = filed
    yield served
    served.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory, ehr):
    app = make_app(tmp_path_factory.mktemp("browser"), DEMO=True, DEMO_PATIENTS=str(ROOT / "examples"),
                   FHIR_ALLOWLIST=f"{ehr.url}/fhir", PUBLIC_BASE_URL=None)
    served = Served(app)
    served.app = app
    yield served
    served.stop()


@pytest.fixture(scope="module")
def screens(tmp_path_factory):
    folder = Path(os.environ.get("CDSHOOKS_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(driver, folder: Path, name: str) -> Path:
    """A full-page screenshot (the window grows to the page, up to 4000 px)."""
    height = driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    driver.set_window_size(1280, min(max(height + 20, 700), 4000))
    driver.execute_script("window.scrollTo(0, 0)")
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path))
    driver.set_window_size(1280, 900)
    return path


def wait(driver):
    return WebDriverWait(driver, WAIT_S)


def csf_request(ehr_url: str | None) -> dict:
    body = json.loads((ROOT / "examples" / "demo-csf-filgrastim-breast-cancer.json").read_text(encoding="utf-8"))
    body.pop("extension")
    if ehr_url:
        body["fhirServer"] = f"{ehr_url}/fhir"
        body["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 600,
                                     "scope": "patient/QuestionnaireResponse.write", "subject": "cds"}
    return body


def test_the_policy_page_reads_as_a_document(chrome, service, screens):
    chrome.get(f"{service.url}/policies/intrathecal-pain-pump")
    assert chrome.find_element(By.TAG_NAME, "h1").text == "Implantable Intrathecal or Epidural Pain Pump"
    assert "Louisiana Healthcare Connections" in chrome.find_element(By.CLASS_NAME, "meta").text
    when_then = chrome.find_element(By.CLASS_NAME, "whenthen").text
    assert when_then.startswith("When a clinician orders") and "\nThen Check the malignant" in when_then
    document = requests.get(f"{service.url}/policies/intrathecal-pain-pump", timeout=10).json()
    items = chrome.find_elements(By.CSS_SELECTOR, "ul.tree li")
    assert len(items) == len(document["criteria"])
    leaf = chrome.find_element(By.ID, "c-I.A.2.g")
    assert leaf.find_element(By.CLASS_NAME, "cite").text == next(c["cite"] for c in document["criteria"]
                                                                 if c["id"] == "I.A.2.g")
    assert chrome.find_element(By.XPATH, "//td/code[text()='opioid.baselineLookbackDays']")
    shoot(chrome, screens, "policy-page")


def test_the_documentation_loop_writes_to_the_ehr_and_decides_the_next_call(chrome, service, ehr, screens):
    sign = f"{service.url}/cds-services/medical-policy-order-sign"
    first = requests.post(sign, json=csf_request(ehr.url), timeout=10).json()["cards"][0]
    assert first["extension"]["cdshooks.evaluation"]["decision"] == "unknown"
    link = next(link["url"] for link in first["links"] if "/forms/" in link["url"])
    assert TOKEN not in link

    chrome.get(link)
    assert chrome.find_element(By.TAG_NAME, "h1").text == ("Documentation: Colony Stimulating Factors (CSFs) "
                                                           "— medical benefit drug policy")
    assert not chrome.find_element(By.CSS_SELECTOR, "input[name='q:A.a.ii.1'][value='yes']").is_selected()
    assert chrome.find_element(By.CSS_SELECTOR, "input[name='q:A.a.i'][value='yes']").is_selected()  # from the record
    shoot(chrome, screens, "form")
    chrome.find_element(By.CSS_SELECTOR, "input[name='q:A.a.ii.1'][value='yes']").click()
    chrome.find_element(By.CSS_SELECTOR, "#documentation button[type=submit]").click()
    outcome = wait(chrome).until(ec.presence_of_element_located((By.ID, "outcome")))
    assert "Saved to the EHR as QuestionnaireResponse/" in outcome.text
    shoot(chrome, screens, "form-saved")

    filed = ehr.filed[-1]
    assert {i["linkId"]: i["answer"][0]["valueBoolean"] for i in filed["item"]}["A.a.ii.1"] is True
    again = csf_request(None)
    again["prefetch"]["questionnaireResponses"] = {"resourceType": "Bundle", "type": "searchset",
                                                   "entry": [{"resource": filed}]}
    after = requests.post(sign, json=again, timeout=10).json()["cards"][0]["extension"]["cdshooks.evaluation"]
    assert after["decision"] == "met"
    assert next(c for c in after["criteria"] if c["id"] == "A.a.ii.1")["result"] == "met"


def test_the_demo_orders_shows_cards_takes_feedback_and_closes_the_loop(chrome, service, screens):
    chrome.get(f"{service.url}/demo")
    chrome.execute_script("localStorage.clear()")
    chrome.get(f"{service.url}/demo?patient=demo-csf-filgrastim-breast-cancer")
    wait(chrome).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#orders input:checked"))
    assert Select(chrome.find_element(By.ID, "patient")).first_selected_option.text.startswith(
        "Breast cancer, filgrastim")

    chrome.find_element(By.ID, "select-btn").click()
    card = wait(chrome).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#cards .card")))
    assert "order-select answered 200" in chrome.find_element(By.ID, "status").text
    assert not chrome.find_elements(By.CSS_SELECTOR, "#coverage table")  # order-select: cards only

    chrome.find_element(By.ID, "sign-btn").click()
    wait(chrome).until(ec.presence_of_element_located((By.ID, "coverage-table")))
    card = chrome.find_element(By.CSS_SELECTOR, "#cards .card")
    assert "warning" in card.get_attribute("class")
    coverage = chrome.find_element(By.ID, "coverage-table").text
    assert "conditional" in coverage
    reason = chrome.find_elements(By.CSS_SELECTOR, "#coverage-table tr:nth-child(2) td")[5].text
    assert len(reason) > 10  # the CRD reason text is shown
    shoot(chrome, screens, "demo-cards")

    card.find_element(By.CSS_SELECTOR, "button.override").click()
    wait(chrome).until(lambda d: "Feedback recorded: overridden" in card.find_element(By.CLASS_NAME, "feedback").text)
    with service.app.app_context():
        stored = store.get().rows(store.feedback)
    assert [row["card_uuid"] for row in stored] == [card.get_attribute("data-uuid")]

    demo_window = chrome.current_window_handle
    card.find_element(By.XPATH, ".//a[contains(@href, '/forms/')]").click()
    wait(chrome).until(lambda d: len(d.window_handles) == 2)
    chrome.switch_to.window(next(h for h in chrome.window_handles if h != demo_window))
    wait(chrome).until(ec.presence_of_element_located((By.ID, "documentation")))
    assert "download" in chrome.find_element(By.CLASS_NAME, "notice").text  # no EHR: download
    chrome.find_element(By.CSS_SELECTOR, "input[name='q:A.a.ii.1'][value='yes']").click()
    chrome.find_element(By.CSS_SELECTOR, "#documentation button[type=submit]").click()
    wait(chrome).until(ec.presence_of_element_located((By.ID, "use-in-demo"))).click()
    assert (chrome.find_element(By.ID, "download").get_attribute("download")
            == "QuestionnaireResponse-colony-stimulating-factors.json")
    chrome.close()
    chrome.switch_to.window(demo_window)

    wait(chrome).until(lambda d: "1 QuestionnaireResponse added" in d.find_element(By.ID, "docs-on-file").text)
    chrome.find_element(By.ID, "sign-btn").click()
    wait(chrome).until(lambda d: "covered" in d.find_element(By.ID, "coverage").text
                       and "conditional" not in d.find_element(By.ID, "coverage-table").text)
    request = json.loads(chrome.find_element(By.ID, "request-json").get_attribute("textContent"))
    qrs = request["prefetch"]["questionnaireResponses"]["entry"]
    assert [e["resource"]["resourceType"] for e in qrs] == ["QuestionnaireResponse"]
    response = json.loads(chrome.find_element(By.ID, "response-json").get_attribute("textContent"))
    assert response["cards"][0]["extension"]["cdshooks.evaluation"]["decision"] == "met"
    shoot(chrome, screens, "demo-after-documentation")
    chrome.find_element(By.ID, "forget-docs").click()
    assert chrome.find_element(By.ID, "docs-on-file").text == ""
    assert chrome.execute_script("return localStorage.length") == 0


def test_the_demo_shows_a_412_as_an_error_never_as_all_clear(chrome, service, screens):
    chrome.get(f"{service.url}/demo?patient=demo-pump-trial-nothing-documented")
    wait(chrome).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#orders input:checked"))
    chrome.find_element(By.ID, "send-prefetch").click()
    chrome.find_element(By.ID, "sign-btn").click()
    error = wait(chrome).until(ec.presence_of_element_located((By.ID, "call-error")))
    assert "Error 412" in error.text and "not an all-clear" in error.text
    assert "prefetch" in error.text.lower() or "patient" in error.text.lower()
    assert not chrome.find_elements(By.ID, "all-clear")
    shoot(chrome, screens, "demo-412")


def test_the_demo_applies_an_accepted_suggestion_and_reports_the_feedback(chrome, service, screens):
    chrome.get(f"{service.url}/demo?patient=cfdna-at-8w2d")
    wait(chrome).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#orders input:checked"))
    chrome.find_element(By.ID, "sign-btn").click()
    button = wait(chrome).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#cards button.suggestion")))
    assert button.text.startswith("Accept: ")
    card = chrome.find_element(By.CSS_SELECTOR, "#cards .card")
    shoot(chrome, screens, "demo-suggestion")
    before = chrome.find_element(By.ID, "orders").text
    button.click()
    wait(chrome).until(lambda d: "Feedback recorded: accepted" in card.find_element(By.CLASS_NAME, "feedback").text)
    after = chrome.find_element(By.ID, "orders").text
    assert after != before  # the order now carries the suggested date
    with service.app.app_context():
        accepted = [r for r in store.get().rows(store.feedback) if r["outcome"] == "accepted"]
    assert [r["card_uuid"] for r in accepted] == [card.get_attribute("data-uuid")]
    chrome.find_element(By.ID, "sign-btn").click()
    wait(chrome).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#cards button.suggestion")
                       and d.find_elements(By.CSS_SELECTOR, "#cards .card"))
    response = json.loads(chrome.find_element(By.ID, "response-json").get_attribute("textContent"))
    assert response["cards"][0]["extension"]["cdshooks.evaluation"].get("outcome") != "too-early"
