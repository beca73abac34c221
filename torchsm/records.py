"""`@record`: typing.NamedTuple's class syntax, without importing `typing`.

The hook and transition paths pay for every module they import (Claude Code waits on each
hook), and `typing` alone cost ~11 ms of the fast path's 14 ms import: its small types are
written as records instead. A record is a `collections.namedtuple` (already loaded with
sqlite3) built from the class's annotated names and defaults, so it is a tuple as before:
immutable, cheap, `_replace`, `_fields`, `_asdict`. Its annotations stay strings (every
such module has `from __future__ import annotations`) and are never evaluated.
"""

from __future__ import annotations

from collections import namedtuple

_NOT_COPIED = ("__dict__", "__weakref__")


def record(cls: type) -> type:
    """`cls` as a namedtuple: its annotated names are the fields, in order, their class
    values the defaults (trailing, as in a function signature); its docstring, methods and
    properties stay. A method cannot call `super()`: it names the class it was written in."""
    fields = list(cls.__dict__.get("__annotations__", {}))
    defaults = _trailing_defaults(cls, fields)
    base = namedtuple(cls.__name__, fields, defaults=defaults, module=cls.__module__)
    namespace = {key: value for key, value in cls.__dict__.items()
                 if key not in fields and key not in _NOT_COPIED}
    namespace["__slots__"] = ()
    return type(cls.__name__, (base,), namespace)


def _trailing_defaults(cls: type, fields: list[str]) -> list:
    defaults = [cls.__dict__[name] for name in fields if name in cls.__dict__]
    if any(name not in cls.__dict__ for name in fields[len(fields) - len(defaults):]):
        raise TypeError(f"{cls.__name__}: a field without a default follows one with a default")
    return defaults

