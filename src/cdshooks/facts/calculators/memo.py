"""What a start-up table answered per medication, kept for the worker's later calls.

Product identification reads codes and parses names; the same medication concept is asked about by
several facts in one call and again in the next, so the answer is remembered on the table itself.
"""

from __future__ import annotations

LIMIT = 20000   # concepts kept; past it the memo starts over (a worker's records are far fewer)
_MISSING = object()


def remembered(memo: dict, key, compute):
    """``compute()`` once per ``key`` while the memo holds it."""
    found = memo.get(key, _MISSING)  # one lookup: another thread may clear the memo meanwhile
    if found is _MISSING:
        if len(memo) > LIMIT:
            memo.clear()
        found = memo[key] = compute()
    return found
