"""How the dashboard shows time (torchsm/observe/local_time.py): the reader's zone or
UTC, ages, spans, and axis ticks on round times of the reader's clock."""

import os
import time

import pytest

from torchsm.observe.local_time import HOUR, MAX_TICKS, WallClock, span, tick_step
from torchsm.observe.series import DAY_S, MIN_WINDOW_S, default_window_s

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.fixture
def kolkata():
    """The process in UTC+05:30, a zone whose hours are not UTC's."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_local_time_is_the_zones_and_utc_is_utc(kolkata):
    assert WallClock(T0).at(T0) == "2027-01-15 13:30" and WallClock(T0).zone() == "+0530 IST"
    assert WallClock(T0, utc=True).at(T0) == "2027-01-15 08:00"
    assert WallClock(T0, utc=True).zone() == "UTC"


def test_ticks_fall_on_round_times_of_the_readers_clock(kolkata):
    start, end = T0 - 5 * HOUR - 600, T0
    ticks, step = WallClock(T0).ticks(start, end)
    assert step == HOUR and 2 <= len(ticks) <= MAX_TICKS
    assert all(start <= t <= end for t in ticks)
    assert [WallClock(T0).tick_label(t, step)[-2:] for t in ticks] == ["00"] * len(ticks)
    assert WallClock(T0).tick_label(ticks[-1], step) == "13:00"  # local, not UTC's 07:30
    utc_ticks, _ = WallClock(T0, utc=True).ticks(start, end)
    assert WallClock(T0, utc=True).tick_label(utc_ticks[-1], step) == "08:00"


@pytest.mark.parametrize("seconds", [600, 3600, 3 * 3600, DAY_S, 7 * DAY_S, 90 * DAY_S])
def test_an_axis_has_a_few_ticks_whatever_its_span(seconds):
    ticks, step = WallClock(T0, utc=True).ticks(T0 - seconds, T0)
    assert 2 <= len(ticks) <= MAX_TICKS and step == tick_step(seconds)


def test_ages_and_spans_read_in_the_largest_units():
    clock = WallClock(T0)
    assert clock.ago(T0 - 3 * HOUR) == "3 h ago" and clock.ago(T0 + 600) == "in 10 min"
    assert clock.ago(T0 - 20) == "now" and clock.when(None) == "-"
    assert [span(s) for s in (45, 600, 2 * HOUR + 300, 3 * DAY_S + 4 * HOUR)] == [
        "45 s", "10 min", "2 h 5 min", "3 d 4 h"]
    assert clock.at(float("inf")) == "far future"


@pytest.mark.parametrize(("began", "window"), [
    (None, DAY_S), (T0 - 10, MIN_WINDOW_S), (T0 - 5 * HOUR, 5 * HOUR),
    (T0 - 30 * DAY_S, DAY_S), (T0 + 60, MIN_WINDOW_S)])
def test_the_default_window_is_the_homes_age_within_an_hour_and_a_day(began, window):
    assert default_window_s(T0, began) == window


def test_a_time_in_text_output_is_local_with_how_long_ago_or_until(kolkata):
    clock = WallClock(T0)  # 13:30:00 in Kolkata
    assert clock.relative(T0 - 180) == "13:27:00 (3 min ago)"
    assert clock.relative(T0 + 240) == "in 4 min (13:34:00)"
    assert clock.relative(T0 - 10) == "13:29:50 (now)"
    assert clock.relative(T0 - 2 * 86400) == "2027-01-13 13:30:00 (2 d ago)"
    assert clock.relative(None) is None
    assert clock.relative(float("inf")) == "far future"


def test_in_utc_a_time_in_text_output_is_iso(kolkata):
    assert WallClock(T0, utc=True).relative(T0 - 180) == "2027-01-15T07:57:00Z"
