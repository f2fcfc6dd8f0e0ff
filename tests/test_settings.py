"""Configuration: defaults, then CDSHOOKS_* environment, then the caller's config; validated once."""

from __future__ import annotations

import datetime as dt

import pytest

from cdshooks import create_app
from cdshooks import settings
from conftest import make_app


def test_defaults_apply_without_environment(tmp_path):
    config = settings.get_from(make_app(tmp_path))
    assert config.TIME_BUDGET_MS == 3000 and config.MAX_BODY_BYTES == 32 * 1024 * 1024
    assert config.FHIR_ALLOWLIST == () and config.TRUSTED_ISSUERS is None


def test_environment_overrides_defaults_and_test_config_overrides_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CDSHOOKS_TIME_BUDGET_MS", "500")
    monkeypatch.setenv("CDSHOOKS_FHIR_ALLOWLIST", "https://a.example/fhir, https://b.example/r4")
    monkeypatch.setenv("CDSHOOKS_TODAY", "2026-01-02")
    config = settings.get_from(make_app(tmp_path, TODAY="2026-03-04"))
    assert config.TIME_BUDGET_MS == 500
    assert config.FHIR_ALLOWLIST == ("https://a.example/fhir", "https://b.example/r4")
    assert config.today() == dt.date(2026, 3, 4)


def test_sqlite_in_the_instance_folder_is_the_default_database(tmp_path):
    app = create_app({"TESTING": True, "POLICIES": "policies", "MAPPINGS": "mappings"})
    assert settings.get_from(app).DATABASE_URL.startswith("sqlite:///")
    assert settings.get_from(app).DATABASE_URL.endswith("cdshooks.sqlite3")


@pytest.mark.parametrize("key, value", [("TIME_BUDGET_MS", "-1"), ("TODAY", "yesterday"),
                                        ("TIMEZONE", "Mars/Olympus"), ("MAX_BODY_BYTES", "lots")])
def test_invalid_environment_stops_start_up_naming_the_variable(tmp_path, monkeypatch, key, value):
    monkeypatch.setenv(f"CDSHOOKS_{key}", value)
    with pytest.raises(settings.SettingsError, match=f"CDSHOOKS_{key}"):
        create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})


def test_policy_settings_override_per_deployment(tmp_path, monkeypatch):
    monkeypatch.setenv("CDSHOOKS_POLICY_SETTINGS", '{"intrathecal-pain-pump": {"paRequired": false}}')
    from cdshooks import registry
    app = make_app(tmp_path)
    with app.app_context():
        assert registry.get().policies.by_id["intrathecal-pain-pump"].settings["paRequired"] is False


def test_unknown_policy_setting_stops_start_up(tmp_path):
    from cdshooks.files.datafile import DataFileError
    with pytest.raises(DataFileError, match="no setting 'paRequried'"):
        make_app(tmp_path, POLICY_SETTINGS={"intrathecal-pain-pump": {"paRequried": False}})


def test_today_follows_the_configured_time_zone():
    config = settings.Settings(DATABASE_URL="sqlite://", TIMEZONE="Pacific/Kiritimati")
    assert abs((config.today() - dt.date.today()).days) <= 1


def test_the_statement_for_orders_no_policy_covers_has_a_documented_default_and_is_set_per_deployment(
        tmp_path, monkeypatch):
    default = make_app(tmp_path).extensions[settings.EXTENSION_KEY].UNCOVERED_ORDERS
    assert (default.covered, default.pa_needed, default.info_needed) == ("conditional", "no-auth", "OTH")
    assert default.values()["reason"].text == ("No medical policy of this service applies to this order; "
                                               "no prior authorization is needed; "
                                               "coverage follows the member's plan terms.")
    monkeypatch.setenv("CDSHOOKS_UNCOVERED_ORDERS",
                       '{"covered": "covered", "pa-needed": "auth-needed", "info-needed": null}')
    statement = make_app(tmp_path).extensions[settings.EXTENSION_KEY].UNCOVERED_ORDERS
    assert statement.values()["covered"] == "covered" and "info-needed" not in statement.values()
    assert "; prior authorization is needed;" in statement.values()["reason"].text   # the words follow the values


@pytest.mark.parametrize("statement", [
    '{"covered": "covered"}',                                   # covered without pa-needed (CRD q2)
    '{"covered": "covered", "pa-needed": "no-auth"}',           # info-needed OTH without anything conditional (q3)
    '{"covered": "maybe"}',
    '{"covered": "conditional", "pa-needed": "no-auth", "info-needed": "OTH", "payer": "x"}',
])
def test_a_statement_that_breaks_crd_stops_start_up(tmp_path, monkeypatch, statement):
    monkeypatch.setenv("CDSHOOKS_UNCOVERED_ORDERS", statement)
    with pytest.raises(settings.SettingsError, match="UNCOVERED_ORDERS"):
        make_app(tmp_path)
