"""Nova and account names: `[a-z0-9][a-z0-9_-]{0,31}`. A module of its own so the hot paths can check
a name without loading the state machine."""

from __future__ import annotations

import re

from torchsm.errors import InvalidName

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidName(f"invalid Nova name {name!r}: use [a-z0-9][a-z0-9_-]{{0,31}}")
    return name


def check_account(name: str) -> str:
    """Account names follow the same pattern as Nova names."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidName(f"invalid account name {name!r}: use [a-z0-9][a-z0-9_-]{{0,31}}")
    return name
