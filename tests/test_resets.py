"""When a usage-limit message says a limit resets: every wording, every minute of a day,
read before, at and after the reset, in zones with whole-hour, half-hour and DST offsets."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from torchsm.usage.resets import (
    DEFAULT_SPAN_S, KNOWN_WINDOWS, WINDOW_SPANS_S, cap_reset, latest_reset, parse_reset_time,
    text_reset, window_from_text,
)

UTC = dt.timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
MADRID = ZoneInfo("Europe/Madrid")
HOUR = 3600
DAY = 86400


def at(y, mo, d, h, mi=0, tz=UTC, s=0, fold=0):
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=tz, fold=fold).timestamp()


NOW = at(2026, 11, 26, 14, 0)  # 14:00 UTC
LOCAL = NEW_YORK  # 09:00 local at NOW

TABLE = [
    ("You've hit your 5-hour limit · resets 5am (UTC)", NOW, at(2026, 11, 27, 5)),
    ("You've hit your 5-hour limit · resets 5am (UTC)", at(2026, 11, 26, 3), at(2026, 11, 26, 5)),
    ("You've hit your 5-hour limit · resets 5am (UTC)", at(2026, 11, 26, 23), at(2026, 11, 27, 5)),
    ("You've hit your session limit · resets 3:45pm", NOW, at(2026, 11, 26, 15, 45, LOCAL)),
    ("You're out of extra usage · resets 9pm", NOW, at(2026, 11, 26, 21, 0, LOCAL)),
    ("You're out of extra usage · resets 8am", NOW, at(2026, 11, 27, 8, 0, LOCAL)),
    ("Claude AI usage limit reached|1764000000", NOW, 1764000000.0),
    ("Claude usage limit reached. Your limit will reset at 1pm (Europe/Madrid)", NOW,
     at(2026, 11, 27, 13, 0, MADRID)),
    ("Claude usage limit reached. Your limit will reset at 4pm (Europe/Madrid)", NOW,
     at(2026, 11, 26, 16, 0, MADRID)),
    ("Claude AI usage limit reached: Mon, Aug 11, 2025, 4:00:00 PM GMT+2", NOW,
     at(2025, 8, 11, 14, 0)),
    ("Claude AI usage limit reached: Mon, Aug 11, 2025, 4:00:00 PM GMT", NOW,
     at(2025, 8, 11, 16, 0)),
    ("Limit reached · resets 12am (UTC)", NOW, at(2026, 11, 27, 0)),
    ("Limit reached · resets 12pm (GMT+1)", NOW, at(2026, 11, 27, 11)),
    ("resets 17:30 (UTC)", NOW, at(2026, 11, 26, 17, 30)),
    # the minute named has begun: the real reset is seconds away, or has just passed
    ("You've hit your 5-hour limit · resets 9:11am (UTC)", at(2026, 11, 26, 9, 11, s=37),
     at(2026, 11, 26, 9, 11, s=37)),
    ("You've hit your 5-hour limit · resets 2pm (UTC)", NOW, NOW),
    ("You're out of extra usage · resets 8:01am", NOW, NOW),
    ("You've hit your 5-hour limit · resets 11:30pm (UTC)", at(2026, 11, 27, 0, 29),
     at(2026, 11, 27, 0, 29)),
    ("You've hit your 5-hour limit · resets 11:30pm (UTC)", at(2026, 11, 27, 0, 31),
     at(2026, 11, 27, 23, 30)),
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
    assert text_reset(text, NOW, LOCAL) == (None, None)


def test_latest_rate_limit_event_wins():
    events = [{"status": "allowed", "resetsAt": 100}, {"status": "allowed_warning"},
              {"status": "rejected", "resetsAt": 200}, {"status": "allowed"}]
    assert latest_reset(events) == 200
    assert latest_reset([]) is None


# --- every minute of a day, as the CLI would write it, read around the reset ---

CLOCK_WORDINGS = [
    ("You've hit your 5-hour limit · resets {clock} ({zone})", True),
    ("Claude usage limit reached. Your limit will reset at {clock} ({zone})", True),
    ("You've hit your session limit · resets {clock}", False),
    ("You're out of extra usage · resets {clock}", False),
]

# the local days covered in each zone: the days clocks change (their other hours are
# ordinary ones), each read into the neighbouring days around midnight
ZONE_DAYS = {
    "UTC": [dt.date(2026, 12, 31)],
    "America/New_York": [dt.date(2026, 3, 8), dt.date(2026, 11, 1)],
    "Australia/Adelaide": [dt.date(2026, 4, 5), dt.date(2026, 10, 4)],
}

# when the message is read, relative to the true reset (the named minute + some seconds)
READ_AT = {"30 min before": -1800, "1 s before": -1, "59 min after": 59 * 60,
           "61 min after": 61 * 60}
READ_IN_THE_NAMED_MINUTE = 37


def cli_clock(local: dt.datetime) -> str:
    """The reset as Claude Code writes it: "5am", "3:45pm", "12am", "12:01am"."""
    hour = local.hour % 12 or 12
    meridiem = "am" if local.hour < 12 else "pm"
    return f"{hour}{meridiem}" if local.minute == 0 else f"{hour}:{local.minute:02d}{meridiem}"


def reset_minutes(day: dt.date, zone: dt.tzinfo):
    """Every minute that begins on `day` in `zone` (1380, 1440 or 1500 of them)."""
    start = at(day.year, day.month, day.day, 0, tz=zone)
    following = day + dt.timedelta(days=1)
    end = at(following.year, following.month, following.day, 0, tz=zone)
    return [start + 60 * k for k in range(int(end - start) // 60)]


def repeated(minute: float, zone: dt.tzinfo) -> bool:
    """Whether the clock reads this minute twice (the hour repeated when clocks go back)."""
    clock = cli_clock(dt.datetime.fromtimestamp(minute, zone))
    return any(cli_clock(dt.datetime.fromtimestamp(minute + d, zone)) == clock
               for d in (-HOUR, HOUR))


def expected_reading(minute: float, now: float, zone: dt.tzinfo) -> float:
    """What the reader should conclude, from the true minute: it is ahead; it has (just)
    passed, so the limit is reset; or it passed an hour or more ago, so the same wall
    time tomorrow."""
    if now < minute:
        return minute
    if now - minute < HOUR:
        return now
    local = dt.datetime.fromtimestamp(minute, zone)
    day = local.date() + dt.timedelta(days=1)
    return at(day.year, day.month, day.day, local.hour, local.minute, tz=zone)


def readings(zone_name: str):
    """(minute, seconds past it of the true reset, what the message says, when read)."""
    zone = UTC if zone_name == "UTC" else ZoneInfo(zone_name)
    for day in ZONE_DAYS[zone_name]:
        for k, minute in enumerate(reset_minutes(day, zone)):
            if repeated(minute, zone):
                continue  # ambiguous: see test_the_repeated_hour_when_clocks_go_back
            clock = cli_clock(dt.datetime.fromtimestamp(minute, zone))
            true_reset = minute + (k * 7) % 60
            reads = [true_reset + d for d in READ_AT.values()]
            yield minute, clock, reads + [minute + READ_IN_THE_NAMED_MINUTE]


@pytest.mark.parametrize("zone_name", list(ZONE_DAYS))
@pytest.mark.parametrize("template, names_zone", CLOCK_WORDINGS,
                         ids=[w.split(" · ")[0].split(".")[0][:24] for w, _ in CLOCK_WORDINGS])
def test_every_minute_of_a_day(zone_name, template, names_zone):
    zone = UTC if zone_name == "UTC" else ZoneInfo(zone_name)
    local_tz = None if names_zone else zone
    wrong = []
    count = 0
    for minute, clock, reads in readings(zone_name):
        text = template.format(clock=clock, zone=zone_name)
        for now in reads:
            got = parse_reset_time(text, now, local_tz)
            count += 1
            if got != expected_reading(minute, now, zone) or not now <= got <= now + DAY:
                wrong.append((text, _iso(now), _iso(got), _iso(expected_reading(minute, now, zone))))
    assert count >= 5 * 1380 * len(ZONE_DAYS[zone_name])
    assert not wrong, f"{len(wrong)} misread, e.g. {wrong[:5]}"


def _iso(ts):
    return None if ts is None else dt.datetime.fromtimestamp(ts, UTC).isoformat()


def test_the_repeated_hour_when_clocks_go_back():
    """1:30am happens twice in New York on 2026-11-01 (EDT, then EST an hour later): read
    between the two, the later one is meant while it is still ahead."""
    text = "You've hit your 5-hour limit · resets 1:30am (America/New_York)"
    first, second = at(2026, 11, 1, 5, 30), at(2026, 11, 1, 6, 30)
    assert (first, second) == (at(2026, 11, 1, 1, 30, NEW_YORK),
                               at(2026, 11, 1, 1, 30, NEW_YORK, fold=1))
    assert parse_reset_time(text, first - 1800, None) == first
    assert parse_reset_time(text, first + 37, None) == first + 37
    assert parse_reset_time(text, first + 1800, None) == second
    assert parse_reset_time(text, second + 37, None) == second + 37
    assert parse_reset_time(text, second + 59 * 60, None) == second + 59 * 60
    assert parse_reset_time(text, second + 61 * 60, None) == at(2026, 11, 2, 1, 30, NEW_YORK)


def test_a_skipped_wall_time_lands_past_the_gap():
    """2:30am does not exist in New York on 2026-03-08; read as 2:30 EST it is 3:30 EDT."""
    text = "resets 2:30am"
    assert parse_reset_time(text, at(2026, 3, 8, 1, 0, NEW_YORK), NEW_YORK) == \
        at(2026, 3, 8, 3, 30, NEW_YORK)
    assert parse_reset_time(text, at(2026, 3, 7, 4, 0, NEW_YORK), NEW_YORK) == \
        at(2026, 3, 8, 3, 30, NEW_YORK)


def test_an_hour_is_measured_in_real_time_across_a_clock_change():
    """1:45am EST, read at 3:40am EDT on the day clocks go forward, passed 55 minutes ago."""
    now = at(2026, 3, 8, 3, 40, NEW_YORK)
    assert parse_reset_time("resets 1:45am (America/New_York)", now) == now
    madrid = at(2026, 3, 29, 3, 30, MADRID)  # 2:00 CET became 3:00 CEST
    assert parse_reset_time("resets 1:45am (Europe/Madrid)", madrid) == madrid
    assert parse_reset_time("resets 1:15am (Europe/Madrid)", madrid) == \
        at(2026, 3, 30, 1, 15, MADRID)


# --- which window a wording names, and how far ahead its reset may lie ---

@pytest.mark.parametrize("text, window", [
    ("You've hit your 5-hour limit · resets 5am (UTC)", "five_hour"),
    ("You've hit your session limit · resets 3:45pm", "five_hour"),
    ("Claude AI usage limit reached|1764000000", "five_hour"),
    ("Claude AI usage limit reached: Mon, Aug 11, 2025, 4:00:00 PM GMT+2", "five_hour"),
    ("Claude usage limit reached. Your limit will reset at 1pm (Europe/Madrid)", "five_hour"),
    ("You've hit your weekly limit · resets 9am (UTC)", "seven_day"),
    ("You've hit your Opus weekly limit · resets 5am (UTC)", "seven_day"),
    ("7-day limit reached · resets 5am (UTC)", "seven_day"),
    ("You're out of extra usage · resets 9pm", None),
    ("Limit reached · resets 12am (UTC)", None),
    ("API Error: Request rejected (429) · rate_limit_error", None),
    ("", None),
])
def test_window_from_text(text, window):
    assert window_from_text(text) == window
    assert window is None or window in KNOWN_WINDOWS


def test_windows_and_their_spans():
    assert WINDOW_SPANS_S["five_hour"] == DEFAULT_SPAN_S == min(WINDOW_SPANS_S.values())
    assert WINDOW_SPANS_S["seven_day"] == WINDOW_SPANS_S["seven_day_opus"] == 7 * DAY
    assert KNOWN_WINDOWS == set(WINDOW_SPANS_S)


FAR = at(2031, 1, 1, 0)


@pytest.mark.parametrize("window, span, named", [
    ("five_hour", 5 * HOUR, "a five_hour window"),
    ("seven_day", 7 * DAY, "a seven_day window"),
    ("seven_day_opus", 7 * DAY, "a seven_day_opus window"),
    (None, 5 * HOUR, "an unnamed window (5 h assumed)"),
    ("fortnightly", 5 * HOUR, "an unknown fortnightly window (5 h assumed)"),
])
def test_a_reset_beyond_the_window_is_capped(window, span, named):
    capped, warning = cap_reset(FAR, window, NOW)
    assert capped == NOW + span
    assert warning == (f"reset 2031-01-01T00:00:00Z is further ahead than {named} lasts; "
                       f"capped at {_iso(NOW + span)[:19]}Z")


@pytest.mark.parametrize("window, span", [("five_hour", 5 * HOUR), ("seven_day", 7 * DAY),
                                          (None, DEFAULT_SPAN_S)])
def test_a_reset_within_the_window_is_untouched(window, span):
    for resets_at in (NOW - HOUR, NOW, NOW + 60, NOW + span):
        assert cap_reset(resets_at, window, NOW) == (resets_at, None)


def test_text_reset_caps_to_the_window_the_text_names():
    assert text_reset("Claude AI usage limit reached|1924992000", NOW) == (
        NOW + 5 * HOUR, "reset 2031-01-01T00:00:00Z is further ahead than a five_hour window "
                        "lasts; capped at 2026-11-26T19:00:00Z")
    assert text_reset("You've hit your 5-hour limit · resets 5am (UTC)", NOW) == (
        NOW + 5 * HOUR, "reset 2026-11-27T05:00:00Z is further ahead than a five_hour "
                        "window lasts; capped at 2026-11-26T19:00:00Z")
    assert text_reset("You've hit your 5-hour limit · resets 6pm (UTC)", NOW) == (
        at(2026, 11, 26, 18), None)
    assert text_reset("You've hit your weekly limit · resets 5am (UTC)", NOW) == (
        at(2026, 11, 27, 5), None)
    assert text_reset("You're out of extra usage · resets 1pm", NOW, LOCAL) == (
        at(2026, 11, 26, 13, 0, LOCAL), None)
    assert text_reset("You're out of extra usage · resets 8pm", NOW, LOCAL) == (
        NOW + 5 * HOUR, "reset 2026-11-27T01:00:00Z is further ahead than an unnamed window "
                        "(5 h assumed) lasts; capped at 2026-11-26T19:00:00Z")
