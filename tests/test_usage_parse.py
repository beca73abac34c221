"""Reset times in every usage-limit wording seen, with zones and day roll-over."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from torchsm.usage import latest_reset, parse_reset_time

UTC = dt.timezone.utc


def at(y, mo, d, h, mi=0, tz=UTC):
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp()


NOW = at(2026, 11, 26, 14, 0)  # 14:00 UTC
LOCAL = ZoneInfo("America/New_York")  # 09:00 local at NOW

TABLE = [
    ("You've hit your 5-hour limit · resets 5am (UTC)", NOW, at(2026, 11, 27, 5)),
    ("You've hit your 5-hour limit · resets 5am (UTC)", at(2026, 11, 26, 3), at(2026, 11, 26, 5)),
    ("You've hit your 5-hour limit · resets 5am (UTC)", at(2026, 11, 26, 23), at(2026, 11, 27, 5)),
    ("You've hit your session limit · resets 3:45pm", NOW, at(2026, 11, 26, 15, 45, LOCAL)),
    ("You're out of extra usage · resets 9pm", NOW, at(2026, 11, 26, 21, 0, LOCAL)),
    ("You're out of extra usage · resets 8am", NOW, at(2026, 11, 27, 8, 0, LOCAL)),
    ("Claude AI usage limit reached|1764000000", NOW, 1764000000.0),
    ("Claude usage limit reached. Your limit will reset at 1pm (Europe/Madrid)", NOW,
     at(2026, 11, 27, 13, 0, ZoneInfo("Europe/Madrid"))),
    ("Claude usage limit reached. Your limit will reset at 4pm (Europe/Madrid)", NOW,
     at(2026, 11, 26, 16, 0, ZoneInfo("Europe/Madrid"))),
    ("Claude AI usage limit reached: Mon, Aug 11, 2025, 4:00:00 PM GMT+2", NOW,
     at(2025, 8, 11, 14, 0)),
    ("Claude AI usage limit reached: Mon, Aug 11, 2025, 4:00:00 PM GMT", NOW,
     at(2025, 8, 11, 16, 0)),
    ("Limit reached · resets 12am (UTC)", NOW, at(2026, 11, 27, 0)),
    ("Limit reached · resets 12pm (GMT+1)", NOW, at(2026, 11, 27, 11)),
    ("resets 17:30 (UTC)", NOW, at(2026, 11, 26, 17, 30)),
]


@pytest.mark.parametrize("text, now, expected", TABLE, ids=[f"{t[:30]}@{n}" for t, n, _ in TABLE])
def test_known_wordings(text, now, expected):
    assert parse_reset_time(text, now, LOCAL) == expected


@pytest.mark.parametrize("text", [
    "", "API Error: Request rejected (429) · rate_limit_error", "resets soon",
    "resets 5 (UTC)", "resets 13pm", "resets 5am (Mars/Olympus)", "Overloaded",
])
def test_unparseable_is_none(text):
    assert parse_reset_time(text, NOW, LOCAL) is None


def test_latest_rate_limit_event_wins():
    events = [{"status": "allowed", "resetsAt": 100}, {"status": "allowed_warning"},
              {"status": "rejected", "resetsAt": 200}, {"status": "allowed"}]
    assert latest_reset(events) == 200
    assert latest_reset([]) is None
