"""Numbers on the command line, bounded to what they can mean and SQLite can hold.

click's INT and FLOAT take `nan`, `inf` and 20-digit numbers. SQLite's integers end at
2**63 - 1 (a larger one is an OverflowError deep inside a query), and `nan` compares
false with every bound (a claim's lease that never expires, a sleep that fails). These
types refuse such values where they are parsed, as a usage error (exit 2) naming the
option. Ids are read here too: one past SQLite's integers cannot exist.
"""

from __future__ import annotations

import math

import click

from torchsm.config import MAX_DURATION_S
from torchsm.errors import TorchsmError
from torchsm.storage.store import INT64_MAX


def count(low: int = 1, high: int = INT64_MAX) -> click.IntRange:
    """A whole number from `low` to `high` (at most what SQLite can hold)."""
    return click.IntRange(low, min(high, INT64_MAX))


class Seconds(click.FloatRange):
    """A finite number of seconds from `low` (above it, with `positive`) to `high`."""

    name = "seconds"

    def __init__(self, low: float = 0.0, high: float = MAX_DURATION_S, positive: bool = False):
        super().__init__(low, high, min_open=positive)

    def convert(self, value, param, ctx) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):  # nan passes every range check
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class Checked(click.ParamType):
    """A word the library's own parser checks (`check` raises a TorchsmError): what it
    refuses is a usage error naming the option, in the parser's words. The word itself is
    passed on, so the rule stays the library's."""

    def __init__(self, name: str, check):
        self.name = name
        self._check = check

    def convert(self, value, param, ctx):
        try:
            self._check(value)
        except TorchsmError as exc:
            self.fail(exc.message, param, ctx)
        return value


def _duration(text: str) -> float:
    from torchsm.usage.report import parse_duration

    return parse_duration(text)


def _tier(text: str):
    from torchsm.tiers import parse_tier

    return parse_tier(text)


def _status(text: str):
    from torchsm.work.work_queue import parse_status

    return parse_status(text)


DURATION = Checked("duration", _duration)  # 30m, 6h, 2d
TIER = Checked("tier", _tier)
ITEM_STATUS = Checked("status", _status)


def parse_id(text: str, what: str, invalid: type[TorchsmError],
             missing: type[TorchsmError]) -> int:
    """The id `text` names: ASCII digits only (`str.isdigit` also takes '١٢' and '²'),
    positive; an id past SQLite's integers is `missing` like any id nobody has."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise invalid(f"invalid {what} id {text!r}: ids are positive integers")
    if int(text) > INT64_MAX:
        raise missing(int(text))
    return int(text)
