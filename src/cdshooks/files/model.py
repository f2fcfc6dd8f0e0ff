"""The base of every hand-edited file format: an unknown key is an error, a loaded value never changes."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic import ConfigDict


class FileModel(BaseModel):
    """A part of a policy, mapping, site or test file (style anchor 6: ``extra="forbid"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
