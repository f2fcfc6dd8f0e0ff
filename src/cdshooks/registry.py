"""The immutable registry built once at start-up: services, prefetch templates and policies.

Discovery and routing both read ``services`` (keyed by service id), so what is advertised is
exactly what answers.  The prefetch templates are generated from the resource types the loaded
mappings read; nobody maintains that list by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from flask import Flask
from flask import current_app

from cdshooks import settings
from cdshooks.cds.protocol import CrdConfiguration
from cdshooks.cds.protocol import ServiceDefinition
from cdshooks.cds.protocol import dump
from cdshooks.fetch.prefetch import Template
from cdshooks.policy.loader import PolicySet
from cdshooks.policy.loader import load_policy_set
from cdshooks.respond import crd

EXTENSION_KEY = "cdshooks.registry"

_SERVICES = (
    ("order-select", "medical-policy-order-select", "Medical policy check (order-select)",
     "Evaluates the medical policies that apply to the selected draft orders against the "
     "patient's record and shows, criterion by criterion, what is met, not met or undocumented."),
    ("order-sign", "medical-policy-order-sign", "Medical policy check and coverage information (order-sign)",
     "Evaluates the medical policies that apply to each draft order at signing, shows the "
     "result with the patient's data as evidence, and returns Da Vinci CRD coverage-information."),
)
_FIXED_TEMPLATES = (
    Template("patient", "Patient", "Patient/{{context.patientId}}"),
    Template("coverage", "Coverage", "Coverage?patient={{context.patientId}}&status=active"),
)
_SEARCH_PARAMS = {
    "QuestionnaireResponse": "patient={{context.patientId}}&status=completed,amended",
    "MedicationRequest": "patient={{context.patientId}}&_include=MedicationRequest:medication",
    "MedicationStatement": "patient={{context.patientId}}&_include=MedicationStatement:medication",
    "PractitionerRole": "practitioner={{userPractitionerId}}&_include=PractitionerRole:practitioner",
}


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    definition: ServiceDefinition

    def discovery(self) -> dict:
        return dump(self.definition)


@dataclass(frozen=True)
class Registry:
    services: Mapping[str, Service]
    templates: tuple[Template, ...]
    policies: PolicySet

    @property
    def slot_types(self) -> dict[str, str]:
        return {t.key: t.resource_type for t in self.templates}

    def keys_for(self, resource_types) -> frozenset[str]:
        """The prefetch keys that carry these resource types."""
        return frozenset(t.key for t in self.templates if t.resource_type in resource_types)


def prefetch_key(resource_type: str) -> str:
    """``MedicationRequest`` -> ``medicationRequests`` (lower camel case, plural)."""
    return resource_type[0].lower() + resource_type[1:] + "s"


def templates_for(resource_types) -> tuple[Template, ...]:
    """Patient and Coverage, then one patient search per resource type the mappings read."""
    fixed = {t.resource_type for t in _FIXED_TEMPLATES}
    searches = tuple(
        Template(prefetch_key(rt), rt, f"{rt}?{_SEARCH_PARAMS.get(rt, 'patient={{context.patientId}}')}")
        for rt in sorted(set(resource_types) - fixed - {"Medication"})
    )
    return _FIXED_TEMPLATES + searches


def _crd_discovery(policies: PolicySet, hook: str) -> dict:
    """CRD discovery extensions: the versions we answer in, and the options a client may send — one
    boolean per card type the loaded policies (and, on order-sign, coverage-information) send, then
    max-cards; their defaults are the request model's, so what we advertise is what we do."""
    card_types = {p.model.topic for p in policies.by_id.values()}
    if hook == "order-sign":
        card_types.add("coverage-info")
    return {
        "davinci-crd.version": ["2.0", "2.2"],
        "davinci-crd.configuration-options": crd.configuration_options(card_types, CrdConfiguration()),
    }


def build(policies: PolicySet) -> Registry:
    optional = policies.facts.optional_types - {"Practitioner"}  # arrives with its PractitionerRole
    templates = templates_for(policies.resource_types | optional | {"QuestionnaireResponse"})
    prefetch = {t.key: t.query for t in templates}
    services = {
        service_id: Service(service_id, hook, ServiceDefinition(
            hook=hook, id=service_id, title=title, description=description, prefetch=prefetch,
            extension=_crd_discovery(policies, hook)))
        for hook, service_id, title, description in _SERVICES
    }
    return Registry(MappingProxyType(services), templates, policies)


def init_app(app: Flask) -> None:
    """Load and validate policies and mappings; a broken file stops start-up here."""
    config = settings.get_from(app)
    app.extensions[EXTENSION_KEY] = build(load_policy_set(config.POLICIES, config.MAPPINGS, config.POLICY_SETTINGS,
                                                           config.VALUESETS, config.SITE))


def get() -> Registry:
    return current_app.extensions[EXTENSION_KEY]
