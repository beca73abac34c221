"""The account's verdict (pacing.verdict) as a table, and reading rate_limit_events
into account windows, bad fields included."""

import pytest

from torchsm.config import UsageConfig
from torchsm.usage.accounts import WindowRow, windows_from_event
from torchsm.usage.pacing import IN_FLIGHT_POLL_S, UNKNOWN_RESET_HOLD_S, requests_left, verdict

CFG = UsageConfig()  # slow 0.8, stop 0.95, margin 120
NOW = 1_000_000.0
RESET = NOW + 100


def w(used, status="allowed", resets=RESET, at=NOW, cost=None, name="five_hour"):
    return WindowRow(name, status, used, resets, at, per_request=cost)


# (windows, requests of others in flight, kind, until)
TABLE = [
    ([], 0, "ok", None),
    ([w(0.5)], 0, "ok", None),
    ([w(0.96)], 0, "stop", RESET + 120),
    ([w(0.95)], 0, "stop", RESET + 120),
    ([w(None, "rejected")], 0, "stop", RESET + 120),
    ([w(0.5, "rejected", resets=None)], 0, "stop", NOW + UNKNOWN_RESET_HOLD_S + 120),
    ([w(0.96), w(0.2, resets=NOW + 9000, name="seven_day")], 0, "stop", RESET + 120),
    ([w(0.3), w(1.0, resets=NOW + 9000, name="seven_day")], 0, "stop", NOW + 9000 + 120),
    # a reset that has just passed still holds for the margin; past that, nothing
    ([w(1.0, "rejected", resets=NOW - 1)], 0, "stop", NOW - 1 + 120),
    ([w(0.96, resets=NOW)], 0, "stop", NOW + 120),
    ([w(1.0, "rejected", resets=NOW - 120)], 0, "ok", None),
    ([w(0.85, resets=NOW - 1)], 0, "ok", None),  # nothing to pace after a reset
    # from slow: the requests left below stop spread over the time to the reset
    ([w(5 / 6, cost=1 / 6)], 0, "pace", NOW + 100 / 2),  # one left: halfway
    ([w(0.80, cost=0.05)], 0, "pace", NOW + 100 / 4),  # three left
    ([w(0.85)], 0, "pace", NOW + 100 / 2),  # unknown cost: one at a time
    ([w(0.85, at=NOW - 90, cost=0.05)], 0, "ok", None),  # the spacing has passed
    # others' requests in flight that could reach stop: wait for their answers
    ([w(7 / 9, cost=1 / 9)], 1, "ok", None),
    ([w(7 / 9, cost=1 / 9)], 2, "pace", NOW + IN_FLIGHT_POLL_S),
    ([w(0.5, cost=0.2)], 3, "pace", NOW + IN_FLIGHT_POLL_S),
    ([w(0.5, cost=0.2)], 2, "ok", None),
    ([w(0.85)], 1, "pace", NOW + IN_FLIGHT_POLL_S),  # unknown cost near the end
]


@pytest.mark.parametrize("windows, flying, kind, until", TABLE)
def test_verdict_table(windows, flying, kind, until):
    found = verdict(windows, CFG, NOW, flying)
    assert (found.kind, found.until) == (kind, pytest.approx(until) if until else None)
    assert (found.why != "") == (kind != "ok")


def test_the_stop_names_the_window_and_the_reset():
    found = verdict([w(0.96)], CFG, NOW)
    assert found.why.startswith("usage limit: five_hour 96%, resets ")


def test_account_overrides_change_the_thresholds():
    strict = CFG._replace(stop_utilization=0.5, reset_margin_s=0)
    assert verdict([w(0.6)], strict, NOW)[:2] == ("stop", RESET)


@pytest.mark.parametrize("used, cost, left", [
    (0.0, 0.1, 10), (5 / 6, 1 / 6, 1), (4 / 6, 1 / 6, 2), (8 / 9, 1 / 9, 1), (0.9, None, 1),
    (0.94, 0.5, 1),
])
def test_requests_left(used, cost, left):
    assert requests_left(used, cost, 0.95) == left


def test_windows_from_a_rate_limit_event():
    info = {"status": "allowed_warning", "resetsAt": NOW + 2000, "rateLimitType": "five_hour",
            "unifiedWindows": {"five_hour": {"utilization": 0.91, "resetsAt": NOW + 2000,
                                             "status": "allowed_warning"},
                               "seven_day": {"utilization": 0.4, "resetsAt": NOW + 9000}}}
    rows, warnings = windows_from_event(info, NOW, "torch")
    assert rows == [WindowRow("five_hour", "allowed_warning", 0.91, NOW + 2000, NOW, "event",
                              "torch"),
                    WindowRow("seven_day", None, 0.4, NOW + 9000, NOW, "event", "torch")]
    assert warnings == []
    rows, _ = windows_from_event({"status": "rejected", "resetsAt": NOW + 5,
                                  "rateLimitType": "x"}, NOW)
    assert rows == [WindowRow("x", "rejected", None, NOW + 5, NOW)]


@pytest.mark.parametrize("part, expect_warning, utilization, resets_at", [
    ({"utilization": "lots", "resetsAt": NOW + 60}, "utilization 'lots'", None, NOW + 60),
    ({"utilization": True, "resetsAt": NOW + 60}, "utilization True", None, NOW + 60),
    ({"utilization": 0.5, "resetsAt": "soon"}, "resetsAt 'soon'", 0.5, None),
    ({"utilization": 0.5, "resetsAt": -5}, "resetsAt -5", 0.5, None),
    ({"utilization": float("nan"), "resetsAt": NOW + 60}, "utilization nan", None, NOW + 60),
    # years ahead: capped at what a five-hour window can last
    ({"utilization": 0.5, "resetsAt": NOW + 3 * 365 * 86400}, "capped", 0.5, NOW + 5 * 3600),
    # in the past: kept as it is (that window has reset; it holds nothing)
    ({"utilization": 0.99, "resetsAt": NOW - 60}, None, 0.99, NOW - 60),
])
def test_bad_fields_are_named_and_never_hold_for_ever(part, expect_warning, utilization,
                                                       resets_at):
    rows, warnings = windows_from_event({"unifiedWindows": {"five_hour": part}}, NOW)
    assert (rows[0].utilization, rows[0].resets_at) == (utilization, resets_at)
    if expect_warning:
        assert len(warnings) == 1 and expect_warning in warnings[0]
    else:
        assert warnings == []
    hold = verdict(rows, CFG, NOW)
    assert hold.kind != "stop" or hold.until <= NOW + 5 * 3600 + CFG.reset_margin_s


def test_an_unknown_window_name_is_capped_at_the_shortest_window():
    rows, warnings = windows_from_event(
        {"unifiedWindows": {"lunar_cycle": {"status": "rejected",
                                            "resetsAt": NOW + 90 * 86400}}}, NOW)
    assert rows[0].resets_at == NOW + 5 * 3600 and "capped" in warnings[0]


def test_not_an_object():
    assert windows_from_event("garbage", NOW) == ([], ["a rate_limit_event without "
                                                       "rate_limit_info"])
