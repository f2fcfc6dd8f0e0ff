"""'Did you mean …?': the nearest known name for a misspelt key, fact, value set or setting."""

from __future__ import annotations

import difflib
import typing

from pydantic import BaseModel


def did_you_mean(name: str, known) -> str:
    """`` (did you mean 'x'?)`` when a known name is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys a pydantic model accepts at the mapping that holds ``loc``'s last part."""
    current = [model]
    for part in loc[:-1]:
        current = [t for m in current for t in _step(m, part)]
        if not current:
            return []
    return sorted({_key(name, f) for m in current if _is_model(m) for name, f in m.model_fields.items()})


def _key(name: str, field) -> str:
    return field.alias or name


def _is_model(t) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _step(t, part) -> list:
    """The types found one step below ``t`` at ``part`` (a field, a list index, a dict key)."""
    out = []
    for option in _options(t):
        if _is_model(option) and isinstance(part, str):
            for name, field in option.model_fields.items():
                if part in (name, field.alias):
                    out += _options(field.annotation)
        elif typing.get_origin(option) in (list, tuple) and isinstance(part, int):
            out += [a for arg in typing.get_args(option) for a in _options(arg)]
        elif typing.get_origin(option) is dict:
            args = typing.get_args(option)
            out += _options(args[1]) if len(args) == 2 else []
    return out


def _options(t) -> list:
    """A union's members (``X | None`` -> [X]); anything else as itself."""
    if isinstance(t, str) or t is None or t is type(None):
        return []
    args = typing.get_args(t)
    origin = typing.get_origin(t)
    if origin in (typing.Union,) or type(t).__name__ == "UnionType":
        return [o for a in args for o in _options(a)]
    if origin is typing.Annotated:
        return _options(args[0])
    return [t]
