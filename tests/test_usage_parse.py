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


from torchsm.config import UsageConfig
from torchsm.store import WindowRow
from torchsm.usage import limit_reset, limit_verdict, windows_from_event

CFG = UsageConfig()


def test_windows_from_a_rate_limit_event():
    info = {"status": "allowed_warning", "resetsAt": 2000, "rateLimitType": "five_hour",
            "unifiedWindows": {"five_hour": {"utilization": 0.91, "resetsAt": 2000,
                                             "status": "allowed_warning"},
                               "seven_day": {"utilization": 0.4, "resetsAt": 9000}}}
    assert windows_from_event(info, 10) == [
        WindowRow("five_hour", "allowed_warning", 0.91, 2000.0, 10),
        WindowRow("seven_day", None, 0.4, 9000.0, 10)]
    assert windows_from_event({"status": "rejected", "resetsAt": 5, "rateLimitType": "x"}, 1) \
        == [WindowRow("x", "rejected", None, 5.0, 1)]


def test_verdicts():
    now = 1000
    ok = [WindowRow("five_hour", "allowed", 0.5, 5000, now)]
    assert limit_verdict(ok, CFG, now).kind == "ok"
    slow = limit_verdict([WindowRow("five_hour", "allowed_warning", 0.875, 5000, now)], CFG, now)
    assert slow.kind == "slow" and abs(slow.pressure - 0.5) < 1e-9 and slow.until == 5000
    stop = limit_verdict([WindowRow("five_hour", "allowed", 0.96, 5000, now),
                          WindowRow("seven_day", "allowed", 0.2, 90000, now)], CFG, now)
    assert (stop.kind, stop.until) == ("stop", 5000 + 120)
    rejected = limit_verdict([WindowRow("seven_day", "rejected", None, 90000, now)], CFG, now)
    assert (rejected.kind, rejected.until) == ("stop", 90000 + 120)
    expired = [WindowRow("five_hour", "rejected", 1.0, 900, now)]
    assert limit_verdict(expired, CFG, now).kind == "ok"


def test_limit_reset_prefers_windows_then_text():
    now = NOW
    windows = [WindowRow("five_hour", "rejected", 1.0, now + 100, now)]
    assert limit_reset(windows, "resets 5am (UTC)", now) == now + 100
    assert limit_reset([], "You've hit your 5-hour limit · resets 5am (UTC)", now) == \
        parse_reset_time("resets 5am (UTC)", now)
    assert limit_reset([], "rate_limit_error", now) is None
