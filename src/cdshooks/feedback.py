"""CDS Hooks feedback (CONTRACT §5): validated, then stored idempotently."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError
from pydantic import model_validator

from cdshooks import store
from cdshooks.protocol import Text
from cdshooks.protocol import invalid_request


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ReasonCoding(_Item):
    system: Text
    code: Text
    display: Text | None = None  # the sandbox sends none


class OverrideReason(_Item):
    reason: ReasonCoding | None = None
    userComment: str | None = None


class AcceptedSuggestion(_Item):
    id: Text


class FeedbackItem(_Item):
    card: Text
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: AwareDatetime

    @model_validator(mode="after")
    def _accepted_names_suggestions(self):
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when outcome is 'accepted'")
        return self


class FeedbackRequest(_Item):
    feedback: list[FeedbackItem] = Field(min_length=1)


def receive(service_id: str, body: dict) -> int:
    """Validate a feedback body and store it; return how many items were new."""
    try:
        request = FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    items = [_row(item) for item in request.feedback]
    return store.get().add_feedback(service_id, items)


def _row(item: FeedbackItem) -> dict:
    row = item.model_dump(exclude_none=True)
    # one instant, one row: "…12:00:00.000Z" and "…12:00:00Z" are the same feedback
    row["outcomeTimestamp"] = item.outcomeTimestamp.astimezone(dt.timezone.utc)
    return row

