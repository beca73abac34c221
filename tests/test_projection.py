"""The projection of `torchsm usage`: when each window reaches 100 % at the rate of its
current period, and when the daily cost budget is spent at the last 24 hours' cost rate.
A pure function, times injected."""

import pytest

from torchsm.usage.accounts import WindowRow
from torchsm.usage.projection import budget_projection, window_projection

H = 3600.0
NOW = 1_800_000_000.0  # a round time; every other time is relative to it


def five_hour(utilization, *, reported=NOW, resets=NOW + 2 * H, status="allowed",
              window="five_hour"):
    return WindowRow(window, status, utilization, resets, reported)


@pytest.mark.parametrize("window, full_at, says", [
    # 3 h into the period (the reset is 2 h away) at 60 %: 20 %/h, 100 % in 2 h: the reset
    # comes first (a tie goes to the reset: nothing is refused at the reset itself)
    (five_hour(0.6), None, "resets first, at 2027-01-15T10:00:00Z"),
    # 3 h in at 75 %: 25 %/h, 100 % in one hour, before the reset
    (five_hour(0.75), NOW + H, "spent at 2027-01-15T09:00:00Z (at 25 %/h)"),
    # read 30 min ago, 3 h into the period at 75 %: 25 %/h, 100 % at the reading + 1 h
    (five_hour(0.75, reported=NOW - 0.5 * H, resets=NOW + 1.5 * H), NOW + 0.5 * H,
     "spent at 2027-01-15T08:30:00Z (at 25 %/h)"),
    # a seven-day window: 1 day in (6 days left) at 50 %: full one day after the reading
    (five_hour(0.5, resets=NOW + 6 * 24 * H, window="seven_day"), NOW + 24 * H,
     "spent at 2027-01-16T08:00:00Z (at 2.1 %/h)"),
    (five_hour(1.0), NOW, "spent; resets at 2027-01-15T10:00:00Z"),
    (five_hour(0.4, status="rejected"), NOW, "spent; resets at 2027-01-15T10:00:00Z"),
    (five_hour(0.0), None, "no rise seen yet; resets at 2027-01-15T10:00:00Z"),
    (five_hour(None), None, "no rise seen yet; resets at 2027-01-15T10:00:00Z"),
    (five_hour(0.5, resets=NOW - 60), None,
     "reset at 2027-01-15T07:59:00Z; nothing reported since"),
    (five_hour(0.5, resets=None), None, "no reset known"),
    # a window whose span is unknown (read from a message's text): no period to measure
    (five_hour(0.5, window="unified"), None, "no rate known; resets at 2027-01-15T10:00:00Z"),
    # read at the very start of its period: no time to measure a rise over
    (five_hour(0.5, reported=NOW - 3 * H), None,
     "no rate known; resets at 2027-01-15T10:00:00Z"),
])
def test_when_a_window_is_spent(window, full_at, says):
    found = window_projection(window, NOW)
    assert (found.full_at, found.says) == (full_at, says)


def test_a_window_projection_keeps_its_rate():
    assert window_projection(five_hour(0.75), NOW).rate_per_hour == pytest.approx(0.25)


@pytest.mark.parametrize("costs, limit, spent_at, says", [
    # $6 over the last 3 h: $2/h; $4 left of $10: spent in 2 h
    ([(NOW - 3 * H, 3.0), (NOW - H, 3.0)], 10, NOW + 2 * H,
     "spent at 2027-01-15T10:00:00Z (at $2.00/h)"),
    # one session: its cost over an hour at least ($3/h), not over its own minute
    ([(NOW - 60, 3.0)], 10, NOW + 7 / 3 * H, "spent at 2027-01-15T10:20:00Z (at $3.00/h)"),
    # not within the next 24 hours
    ([(NOW - 10 * H, 1.0)], 100, None, "not within 24 h at $0.10/h"),
    ([], 10, None, "no cost in the last 24 h"),
    # spent already: when it frees, by budget.py's rule
    ([(NOW - 20 * H, 6.0), (NOW - H, 6.0)], 10, NOW,
     "spent; frees at 2027-01-15T12:00:00Z"),
])
def test_when_the_daily_budget_is_spent(costs, limit, spent_at, says):
    found = budget_projection(costs, limit, NOW)
    assert found.spent_at == (pytest.approx(spent_at, abs=1) if spent_at else None)
    assert found.says == says


def test_the_budget_projection_follows_costs_leaving_the_window():
    # $7 23 h ago and $5 a minute ago, $14 a day: $12/23 h. $2 is left, reached in 3.8 h
    # if nothing left the window; but in an hour the $7 does (budget.py's sliding day),
    # and then $9 is left: 17.25 h at this rate
    found = budget_projection([(NOW - 23 * H, 7.0), (NOW - 60, 5.0)], 14, NOW)
    assert found.spent_at == pytest.approx(NOW + 17.25 * H)


def test_no_budget_no_projection():
    assert budget_projection([(NOW - H, 5.0)], 0, NOW) is None
