"""A draft order: one order of the hook's ``context.draftOrders``, as the record and the policies see it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DraftOrder:
    """One supported order of ``context.draftOrders``."""

    reference: str          # "ServiceRequest/sr-1"
    resource: dict
    index: int              # position in the Bundle (for "earlier in the same draftOrders")

    @property
    def resource_type(self) -> str:
        return self.resource["resourceType"]
