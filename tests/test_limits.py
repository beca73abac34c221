"""Limits belong to the account: what one Nova learns holds every Nova on it (and no
other), a structured reset beats one read from a message (earlier or later), request
grants share a window's end, and learning keeps the utilization from going backwards.
Real database, library calls with the time passed in."""

import json

import pytest

from supervisor_support import T0, config_with
from torchsm import novas
from torchsm.hooks import handlers
from torchsm.storage import store
from torchsm.usage import accounts, limits
from torchsm.usage.accounts import WindowRow

BASE = 'redis_url = "off"\n'
RESET = T0 + 1800


@pytest.fixture
def base_config():
    """The config of these tests (the mirror off), not the home's."""
    return config_with(BASE)


@pytest.fixture
def shared(home, base_config):
    """Three Novas: torch and echo on `default`, helix on `other`."""
    for name, account in (("torch", "default"), ("echo", "default"), ("helix", "other")):
        novas.add(home, base_config, name, account=account, now=T0 - 60)
    return home


def state(home, base_config, name):
    row = novas.status(home, base_config, name)[0]
    return row["state"], row["until"], row["limit_hold"]


def learn(home, base_config, account, *rows, now=T0):
    with store.open_store(home) as db:
        return limits.learn(db, home, base_config, account, rows, now)


def event(used, resets=RESET, status="allowed_warning", at=T0, source="event"):
    return WindowRow("five_hour", status, used, resets, at, source, "torch")


def test_a_stop_heard_by_one_nova_holds_every_nova_on_its_account_only(shared, base_config):
    found = learn(shared, base_config, "default", event(0.96))
    assert (found.kind, found.until) == ("stop", RESET + 120)
    for name in ("torch", "echo"):
        held = state(shared, base_config, name)
        assert held[0] == "cooling" and held[2].startswith("usage limit: five_hour 96%")
    assert state(shared, base_config, "helix") == ("working", None, None)


def test_holding_again_at_the_same_time_writes_nothing(shared, base_config):
    learn(shared, base_config, "default", event(0.96))
    learn(shared, base_config, "default", event(0.97, at=T0 + 1), now=T0 + 1)
    with store.open_store(shared) as db:
        count = db.read(lambda conn: conn.execute(
            "SELECT count(*) FROM history WHERE event = 'cool'").fetchone()[0])
    assert count == 2  # one per Nova


def test_limit_holds_are_not_overheating(shared, base_config):
    # four windows in an hour, each at its limit: no meditation, no growing backoff
    for n in range(4):
        at = T0 + n * 900
        learn(shared, base_config, "default", event(0.99, resets=at + 600, at=at), now=at)
        assert state(shared, base_config, "torch")[0] == "cooling"
    with store.open_store(shared) as db:
        nova = db.read(lambda conn: store.load_nova(conn, "torch"))
    assert nova.cool_streak == 0


@pytest.mark.parametrize("structured_in", [600, 3 * 3600])  # earlier, then later than text
def test_a_structured_reset_beats_the_one_read_from_a_message(shared, base_config, structured_in):
    message = "You've hit your 5-hour limit · resets 2am (UTC)"  # T0 is 08:00 UTC... any day
    with store.open_store(shared) as db:
        nova = db.read(lambda conn: store.load_nova(conn, "torch"))
        text_hold, _ = limits.refused(db, shared, base_config, nova, message, T0)
    assert text_hold.kind == "stop"
    structured = event(1.0, resets=T0 + structured_in, status="rejected", at=T0 + 1)
    found = learn(shared, base_config, "default", structured, now=T0 + 1)
    assert found.until == T0 + structured_in + 120
    for name in ("torch", "echo"):
        assert state(shared, base_config, name)[1] == novas.format_time(T0 + structured_in + 120)
    # the text, heard again later, does not take the structured time back
    with store.open_store(shared) as db:
        again, _ = limits.refused(db, shared, base_config, nova, message, T0 + 2)
    assert again.until == T0 + structured_in + 120


def test_a_structured_word_that_no_longer_stops_ends_a_text_hold(shared, base_config):
    with store.open_store(shared) as db:
        nova = db.read(lambda conn: store.load_nova(conn, "torch"))
        limits.refused(db, shared, base_config, nova, "Claude AI usage limit reached|"
                                                 f"{int(T0 + 3600)}", T0)
    assert state(shared, base_config, "echo")[0] == "cooling"
    learn(shared, base_config, "default", event(0.1, resets=T0 + 3600, status="allowed", at=T0 + 5),
          now=T0 + 5)
    assert state(shared, base_config, "echo")[1] == novas.format_time(T0 + 5)


def test_a_late_lower_reading_in_the_same_window_does_not_lower_it(shared, base_config):
    learn(shared, base_config, "default", event(0.5), event(0.6, at=T0 + 1), event(0.55, at=T0 + 2),
          now=T0 + 2)
    with store.open_store(shared) as db:
        [window] = db.read(lambda conn: accounts.load_windows(conn, "default"))
    assert window.utilization == 0.6 and window.per_request == pytest.approx(0.1)


def test_a_new_window_period_starts_from_zero(shared, base_config):
    learn(shared, base_config, "default", event(0.9), event(0.95, at=T0 + 1),
          event(0.05, resets=RESET + 18000, status="allowed", at=RESET + 1), now=RESET + 1)
    with store.open_store(shared) as db:
        [window] = db.read(lambda conn: accounts.load_windows(conn, "default"))
    assert window.utilization == 0.05 and window.per_request == pytest.approx(0.05)


def test_grants_count_the_other_novas_requests_in_flight(shared, base_config):
    # 7 of 9 requests used, one request costs 1/9: two more fit below 95%
    learn(shared, base_config, "default", event(6 / 9, status="allowed"),
          event(7 / 9, status="allowed", at=T0 + 0.5), now=T0 + 0.5)
    with store.open_store(shared) as db:
        ids = db.read(lambda conn: {n.name: n.id for n in store.load_novas(conn)})

        def verdict(name, now=T0 + 1):
            return db.read(lambda conn: limits.verdict(conn, base_config, "default", now,
                                                       ids[name]))

        db.write(lambda conn: accounts.grant(conn, "default", ids["echo"], T0 + 1))
        assert verdict("torch").kind == "ok"  # echo's request and one more fit
        db.write(lambda conn: accounts.grant(conn, "default", ids["torch"], T0 + 1))
        assert verdict("echo").kind == "ok"  # a Nova's own earlier grant is not counted
        waiting = verdict("helix")  # a third would race the two in flight into the limit
        assert waiting.kind == "pace" and "2 request(s) of other Novas in flight" in waiting.why
        db.write(lambda conn: accounts.answered(conn, ids["echo"]))
        assert verdict("helix").kind == "ok"
        assert verdict("helix", T0 + 1 + accounts.GRANT_TTL_S).kind == "ok"  # grants lapse


def test_account_overrides_apply_to_their_account_only(home):
    base_config = config_with(BASE + "[accounts.strict]\nstop_utilization = 0.5\n"
                                "reset_margin_s = 0\n")
    novas.add(home, base_config, "torch", now=T0 - 60)
    novas.add(home, base_config, "echo", account="strict", now=T0 - 60)
    learn(home, base_config, "default", event(0.6))
    learn(home, base_config, "strict", event(0.6))
    assert state(home, base_config, "torch")[0] == "working"
    assert state(home, base_config, "echo")[:2] == ("cooling", novas.format_time(RESET))


def test_the_stop_hook_of_another_nova_on_the_account_does_not_continue(shared, base_config):
    learn(shared, base_config, "default", event(0.5))  # room: no hold
    with store.open_store(shared) as db:
        db.write(lambda conn: conn.execute(
            "UPDATE account_windows SET utilization = 0.96"))  # another Nova's answer
    from torchsm.work import work_queue

    with work_queue.open_queue(shared, base_config) as q:
        q.add("more work", nova="echo", now=T0)
    result = handlers.run_hook(shared, base_config, "stop", "echo",
                            json.dumps({"session_id": "s", "last_assistant_message": "x"}),
                            now=T0 + 1, env={})
    assert result.outcome == "allowed" and result.detail.startswith("usage limit: five_hour 96%")
    assert state(shared, base_config, "torch")[0] == "cooling"  # the whole account holds


def test_a_structured_word_replaces_a_guess_filed_under_another_window(shared, base_config):
    # "out of extra usage" names no window: its guess is filed as `unknown`
    with store.open_store(shared) as db:
        nova = db.read(lambda conn: store.load_nova(conn, "torch"))
        _, warning = limits.refused(db, shared, base_config, nova,
                                    "You're out of extra usage · resets 9pm (UTC)", T0)
        assert [w.window for w in db.read(lambda c: accounts.load_windows(c, "default"))] == [
            "unknown"]
    assert "capped" in warning  # 13 hours ahead; an unnamed window is taken for 5 hours
    assert state(shared, base_config, "echo")[0] == "cooling"
    learn(shared, base_config, "default", event(0.3, status="allowed", at=T0 + 5), now=T0 + 5)
    with store.open_store(shared) as db:
        windows = db.read(lambda conn: accounts.load_windows(conn, "default"))
    assert [(w.window, w.source) for w in windows] == [("five_hour", "event")]
    assert state(shared, base_config, "echo")[1] == novas.format_time(T0 + 5)


@pytest.mark.parametrize("read_at", ["23:00:40", "23:01:40", "23:59:00"])
def test_a_reset_that_is_now_holds_the_account_for_the_margin(shared, base_config, read_at):
    # "resets 11pm" read within the hour after it means "reset now" (the text rounds down
    # to the minute): the window is live until now + reset_margin_s, never let through
    import datetime as dt

    hour, minute, second = map(int, read_at.split(":"))
    now = dt.datetime(2027, 1, 15, hour, minute, second, tzinfo=dt.timezone.utc).timestamp()
    message = "You've hit your 5-hour limit · resets 11pm (UTC)"
    with store.open_store(shared) as db:
        nova = db.read(lambda conn: store.load_nova(conn, "torch"))
        found, _ = limits.refused(db, shared, base_config, nova, message, now)
        later = db.read(lambda conn: limits.verdict(conn, base_config, "default", now + 119))
        after = db.read(lambda conn: limits.verdict(conn, base_config, "default", now + 121))
    assert (found.kind, found.until) == ("stop", now + 120)
    for name in ("torch", "echo"):
        assert state(shared, base_config, name)[:2] == ("cooling", novas.format_time(now + 120))
    assert later.kind == "stop" and after.kind == "ok"
