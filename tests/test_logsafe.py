"""Log lines cannot be forged or flooded by request values; no free text or SQL parameters in logs."""

from __future__ import annotations

import logging

from cdshooks import logsafe
from conftest import bundle
from conftest import full_prefetch
from conftest import make_app
from conftest import patient

SIGN = "/cds-services/medical-policy-order-sign"


def test_values_logged_from_a_request_cannot_start_a_new_line_or_run_on(tmp_path, caplog):
    make_app(tmp_path)  # installs the cleaning of log values
    with caplog.at_level(logging.INFO, logger="cdshooks.test"):
        logging.getLogger("cdshooks.test").info("value=%s n=%d", "a\nINFO forged\x00\x1b[31m" + "x" * 10_000, 7)
    (message,) = [r.getMessage() for r in caplog.records if r.name == "cdshooks.test"]
    assert "\n" not in message and "\x00" not in message and "\x1b" not in message
    assert "a\\nINFO forged\\x00\\x1b[31m" in message and message.endswith(" n=7")
    assert len(message) < logsafe.MAX_VALUE + 100


def test_a_five_megabyte_value_in_a_request_writes_a_short_log_line(tmp_path, caplog):
    app = make_app(tmp_path, FHIR_ALLOWLIST="https://ehr.example.org/fhir")
    huge = "https://elsewhere.example/" + "\x1b" + "p" * 5_000_000
    paged = bundle(patient())
    paged["link"] = [{"relation": "next", "url": huge}]
    body = {"hook": "order-sign", "hookInstance": "h-1", "fhirServer": "https://ehr.example.org/fhir",
            "context": {"userId": "Practitioner/1", "patientId": "pat-1",
                        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [
                            {"resource": {"resourceType": "ServiceRequest", "id": "sr-1", "status": "draft",
                                          "intent": "order", "subject": {"reference": "Patient/pat-1"},
                                          "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt",
                                                               "code": "81420"}]}}}]}},
            "prefetch": full_prefetch(app, observations=paged)}
    with caplog.at_level(logging.DEBUG):
        app.test_client().post(SIGN, json=body)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("cdshooks")]
    assert any("elsewhere.example" in line for line in lines)
    assert max(len(line) for line in lines) < 2 * logsafe.MAX_LINE
    assert not any("\x1b" in line for line in lines)


def test_the_serve_handler_escapes_the_whole_message_and_keeps_tracebacks():
    formatter = logsafe.SafeFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "built with an f-string: \r\nforged", None, None)
    assert formatter.format(record) == "ERROR built with an f-string: \\r\\nforged"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        record.exc_info = sys.exc_info()
    assert "Traceback" in formatter.format(record).splitlines()[1]


def test_serve_installs_the_safe_formatter(monkeypatch):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        handler = logsafe.configure(logging.INFO)
        assert isinstance(handler.formatter, logsafe.SafeFormatter)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
