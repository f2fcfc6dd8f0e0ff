"""Configuration: defaults, then ``CDSHOOKS_*`` environment variables, then the caller's config.

Flask's ``from_prefixed_env`` JSON-decodes each value (so ``CDSHOOKS_TIME_BUDGET_MS=500`` is an
int); the merged mapping is then validated once into an immutable :class:`Settings`, so a typo in
the environment stops start-up instead of surfacing in the first request.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from flask import Flask
from flask import current_app
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import SecretStr
from pydantic import ValidationError
from pydantic import field_validator

from cdshooks.policy.assertions import UncoveredStatement

EXTENSION_KEY = "cdshooks.settings"


class Settings(BaseModel):
    """The validated configuration of one app (CONTRACT §7)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    DATABASE_URL: str
    FHIR_ALLOWLIST: tuple[str, ...] = ()
    TRUSTED_ISSUERS: Path | None = None    # a JSON file, or "sandbox" for the dev-only preset
    PUBLIC_BASE_URL: str | None = None
    TIME_BUDGET_MS: int = Field(3000, gt=0)
    # D12: a 10,000-resource prefetch (~10 MB compact, ~14 MB pretty-printed) is ordinary
    MAX_BODY_BYTES: int = Field(32 * 1024 * 1024, gt=0)
    MAX_JSON_DEPTH: int = Field(100, gt=2)
    MAX_DRAFT_ORDERS: int = Field(100, gt=0)
    MAX_PREFETCH_ENTRIES: int = Field(100_000, gt=0)
    FHIR_MAX_RESPONSE_BYTES: int = Field(20 * 1024 * 1024, gt=0)
    FHIR_MAX_PAGES: int = Field(50, gt=0)
    MAX_FEEDBACK_ITEMS: int = Field(100, gt=0)
    REQUEST_READ_TIMEOUT_MS: int = Field(30_000, gt=0)   # whole request body, from the first byte
    STORE_TIMEOUT_MS: int = Field(2000, gt=0)   # connect, pool wait and each transaction
    AUDIT_QUEUE_SIZE: int = Field(10_000, gt=0)  # audit rows and form launches waiting for the background writer
    STORE_BATCH_MS: int = Field(250, ge=0)       # how long the background writer gathers rows into one commit
    TODAY: dt.date | None = None
    TIMEZONE: str = "UTC"
    POLICIES: Path = Path("policies")
    MAPPINGS: Path = Path("mappings")
    VALUESETS: Path | None = None          # default: the "valuesets" folder beside MAPPINGS
    SITE: Path | None = None               # a site folder extending the shipped files (cdshooks.facts.site)
    POLICY_SETTINGS: dict[str, dict[str, bool | int | float | str | list[str]]] = {}
    SANDBOX_SYSTEM_ACTIONS: bool = False   # also send systemActions under extension (sandbox only)
    # what the payer asserts (CRD coverage-information) for an order no medical policy covers
    UNCOVERED_ORDERS: UncoveredStatement = UncoveredStatement()
    DEMO: bool = False                     # serve the /demo order-entry page
    DEMO_PATIENTS: Path = Path("examples")
    FORM_TTL_S: int = Field(3600, gt=0)    # how long a card's documentation-form link works
    SECRET_KEY: SecretStr | None = None    # encrypts the EHR token a form launch keeps; random if unset

    @field_validator("FHIR_ALLOWLIST", mode="before")
    @classmethod
    def _split_allowlist(cls, value):
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("SECRET_KEY", mode="before")
    @classmethod
    def _secret_as_text(cls, value):
        # the environment is JSON-decoded, so a numeric secret arrives as a number
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("TIMEZONE")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}'") from None
        return value

    def today(self) -> dt.date:
        """Return T: the configured evaluation date, else today in the service time zone."""
        if self.TODAY is not None:
            return self.TODAY
        return dt.datetime.now(ZoneInfo(self.TIMEZONE)).date()


class SettingsError(RuntimeError):
    """The configuration cannot be used; the message names each bad setting."""


def init_app(app: Flask, config: dict | None = None) -> None:
    """Merge defaults, environment and ``config`` into ``app.config`` and validate them."""
    app.config.from_mapping(
        # SQLite in the instance folder so `make run` needs no database server.
        DATABASE_URL=None,
        # The CDS client is a browser app on another origin; JSON keys must keep their order.
        JSON_SORT_KEYS=False,
    )
    app.config.from_prefixed_env("CDSHOOKS")
    if config:
        app.config.update(config)
    if not app.config.get("DATABASE_URL"):
        # the store creates the folder (and says what to do when it cannot)
        app.config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'cdshooks.sqlite3'}"
    app.extensions[EXTENSION_KEY] = load(app.config)


def load(mapping) -> Settings:
    """Validate a config mapping; raise :class:`SettingsError` naming every bad key."""
    known = {key: mapping[key] for key in Settings.model_fields if key in mapping}
    try:
        return Settings(**known)
    except ValidationError as exc:
        problems = "; ".join(
            f"CDSHOOKS_{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid configuration: {problems}") from None


def get() -> Settings:
    """Return the settings of the current app."""
    return current_app.extensions[EXTENSION_KEY]


def get_from(app: Flask) -> Settings:
    """Return the settings of ``app`` (for ``init_app`` functions, outside a request)."""
    return app.extensions[EXTENSION_KEY]
