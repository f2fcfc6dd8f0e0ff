"""CDS Hooks feedback (CONTRACT §5): validated, then stored idempotently.

Everything stored is bounded: ids and codes to their 200-character columns, the free-text
comment to 4,000 characters, the number of items per post by ``CDSHOOKS_MAX_FEEDBACK_ITEMS``;
no string may hold a NUL (PostgreSQL refuses it).  Anything beyond is a 422 naming the field.
Feedback is acknowledged (200) only once committed; while the store cannot write it is a 503.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from typing import Literal

from pydantic import AfterValidator
from pydantic import AwareDatetime
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import StringConstraints
from pydantic import ValidationError
from pydantic import field_validator
from pydantic import model_validator

from cdshooks import settings
from cdshooks.cds.protocol import Identifier
from cdshooks.cds.protocol import invalid_request
from cdshooks.errors import InvalidRequest
from cdshooks.store import db as store

MAX_COMMENT_CHARS = 4000


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Comment = Annotated[str, StringConstraints(max_length=MAX_COMMENT_CHARS), AfterValidator(_no_nul)]


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ReasonCoding(_Item):
    system: Identifier
    code: Identifier
    display: Identifier | None = None  # the sandbox sends none


class OverrideReason(_Item):
    reason: ReasonCoding | None = None
    userComment: Comment | None = None


class AcceptedSuggestion(_Item):
    id: Identifier


class FeedbackItem(_Item):
    card: Identifier
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = Field(None, max_length=100)
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: AwareDatetime

    @field_validator("outcomeTimestamp")
    @classmethod
    def _representable_in_utc(cls, value: dt.datetime) -> dt.datetime:
        # one instant, one row: "…12:00:00.000Z" and "…12:00:00Z" are the same feedback
        try:
            return value.astimezone(dt.timezone.utc)
        except OverflowError:  # 9999-12-31T23:59:59-14:00 is past the last representable instant
            raise ValueError("is out of range (must be a real instant before year 10000 in UTC)") from None

    @model_validator(mode="after")
    def _accepted_names_suggestions(self):
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when outcome is 'accepted'")
        return self


class FeedbackRequest(_Item):
    feedback: list[FeedbackItem] = Field(min_length=1)


def receive(service_id: str, body: dict) -> int:
    """Validate a feedback body and store it; return how many items were new."""
    limit = settings.get().MAX_FEEDBACK_ITEMS
    items = body.get("feedback")
    if isinstance(items, list) and len(items) > limit:  # before validating: each item costs
        raise InvalidRequest(f"feedback holds {len(items)} items; the limit is {limit} per request", "feedback")
    try:
        request = FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from None
    items = [item.model_dump(exclude_none=True) for item in request.feedback]
    return store.get().add_feedback(service_id, items)

