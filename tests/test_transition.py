"""Transitions through the library against a real SQLite file, and under real concurrency."""

import multiprocessing
import random
import sqlite3

import pytest

from torchsm import novas
from torchsm.config import Config, SafetyConfig
from torchsm.errors import NovaNotFound, TorchsmError, TransitionRefused

NOW = 1_800_000_000.0


def history_rows(home, name="torch"):
    conn = sqlite3.connect(home.db_path)
    try:
        return conn.execute(
            "SELECT h.from_state, h.to_state, h.event, h.reason, h.at, h.until, h.forced "
            "FROM history h JOIN novas n ON n.id = h.nova_id WHERE n.name = ? ORDER BY h.id",
            (name,)).fetchall()
    finally:
        conn.close()


def test_accepted_transition_writes_state_and_history(home, config, torch):
    result = novas.transition(home, config, torch, "dream", reason="idle", now=NOW + 1)
    assert (result.source, result.target, result.recorded) == ("working", "dreaming", True)
    assert history_rows(home) == [("working", "dreaming", "dream", "idle", NOW + 1, None, 0)]
    [row] = novas.status(home, config, torch)
    assert row["state"] == "dreaming" and row["reason"] == "idle"


def test_no_op_writes_no_history(home, config, torch):
    result = novas.transition(home, config, torch, "work", now=NOW + 1)
    assert (result.source, result.target, result.recorded) == ("working", "working", False)
    assert history_rows(home) == []


def test_cool_uses_backoff_and_re_arms(home, config, torch):
    cfg = Config(safety=SafetyConfig(cooldown_jitter=0))
    first = novas.transition(home, cfg, torch, "cool", now=NOW)
    assert first.until == NOW + 60
    again = novas.transition(home, cfg, torch, "cool", now=NOW + 10)
    assert (again.source, again.target, again.until) == ("cooling", "cooling", NOW + 10 + 120)
    novas.transition(home, cfg, torch, "work", now=again.until)
    third = novas.transition(home, cfg, torch, "cool", now=again.until + 5)
    assert third.until == again.until + 5 + 240
    assert len(history_rows(home)) == 4


def test_streak_resets_after_a_clean_hour(home, config, torch):
    cfg = Config(safety=SafetyConfig(cooldown_jitter=0))
    cooled = novas.transition(home, cfg, torch, "cool", now=NOW)
    novas.transition(home, cfg, torch, "work", now=cooled.until)
    later = novas.transition(home, cfg, torch, "cool", now=cooled.until + 3600)
    assert later.until - later.at == 60


def test_for_overrides_and_meditation_length(home, config, torch):
    assert novas.transition(home, config, torch, "cool", for_s=5, now=NOW).until == NOW + 5
    assert novas.transition(home, config, torch, "meditate", now=NOW).until == NOW + 1800
    with pytest.raises(TorchsmError, match="--for applies only to cool and meditate"):
        novas.transition(home, config, torch, "dream", for_s=5, now=NOW)


def test_refused_transition_changes_nothing(home, config, torch):
    novas.transition(home, config, torch, "cool", for_s=100, now=NOW)
    before = history_rows(home)
    with pytest.raises(TransitionRefused, match="cooling until"):
        novas.transition(home, config, torch, "work", now=NOW + 50)
    assert history_rows(home) == before
    assert novas.status(home, config, torch)[0]["state"] == "cooling"


def test_force_is_recorded(home, config, torch):
    novas.transition(home, config, torch, "cool", for_s=100, now=NOW)
    result = novas.transition(home, config, torch, "work", force=True, reason="ops", now=NOW + 1)
    assert result.forced
    assert history_rows(home)[-1] == ("cooling", "working", "work", "ops", NOW + 1, None, 1)
    # --force after the wait is over is an ordinary transition
    novas.transition(home, config, torch, "cool", for_s=1, now=NOW + 2)
    assert not novas.transition(home, config, torch, "work", force=True, now=NOW + 10).forced


def test_unknown_nova(home, config):
    with pytest.raises(NovaNotFound, match="no Nova named 'ghost'"):
        novas.transition(home, config, "ghost", "cool")


def _fire_random_events(home_path: str, seed: int, count: int) -> int:
    from torchsm.config import Home, load_config
    from torchsm.errors import TransitionRefused

    home = Home(__import__("pathlib").Path(home_path))
    config = load_config(home)
    rng = random.Random(seed)
    accepted = 0
    for _ in range(count):
        event = rng.choice(["work", "cool", "meditate", "dream", "compact"])
        try:
            # short waits so `work` and `dream` are sometimes refused, sometimes not
            novas.transition(home, config, "torch", event, for_s=0.002 if event in
                             ("cool", "meditate") else None, force=rng.random() < 0.2)
            accepted += 1
        except TransitionRefused:
            pass
    return accepted


@pytest.mark.slow
def test_concurrent_processes_leave_a_consistent_history(home, config, torch):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(8) as pool:
        accepted = pool.starmap(_fire_random_events, [(str(home.path), seed, 200) for seed in range(8)])
    rows = history_rows(home)
    assert sum(accepted) >= len(rows) > 100
    for previous, row in zip(rows, rows[1:]):
        assert row[0] == previous[1], "a history row's `from` differs from the previous `to`"
    assert novas.status(home, config, torch)[0]["state"] == rows[-1][1]
    assert rows[0][0] == "working"


def test_safety_cool_backs_off_then_meditates_when_overheated(home, config, torch):
    cfg = Config(safety=SafetyConfig(cooldown_jitter=0))
    t = NOW
    durations = []
    for _ in range(3):
        cooled = novas.safety_cool(home, cfg, torch, reason="failed", now=t)
        assert cooled.target == "cooling"
        durations.append(cooled.until - cooled.at)
        t = cooled.until
        novas.transition(home, cfg, torch, "work", now=t)
    assert durations == [60, 120, 240]
    fourth = novas.safety_cool(home, cfg, torch, reason="failed again", now=t + 1)
    assert (fourth.target, fourth.event, fourth.until) == ("meditating", "meditate", t + 1 + 1800)
    # meditating stays meditating; nothing is recorded
    again = novas.safety_cool(home, cfg, torch, reason="x", now=t + 2)
    assert not again.recorded and again.target == "meditating"


def test_safety_cool_until_a_reset_never_shortens(home, config, torch):
    cfg = Config(safety=SafetyConfig(cooldown_jitter=0))
    reset = NOW + 5000
    first = novas.safety_cool(home, cfg, torch, reason="limit", until=reset, now=NOW)
    assert first.until == reset
    second = novas.safety_cool(home, cfg, torch, reason="bang", now=NOW + 10)
    assert second.until == reset  # the backoff (120 s) would have shortened it


def test_a_limit_outlasting_a_meditation_extends_it_and_holds(home, config, torch):
    meditating = novas.transition(home, config, torch, "meditate", now=NOW)
    reset = NOW + 10_000
    result = novas.safety_cool(home, config, torch, reason="limit", until=reset,
                               limit="usage limit", now=NOW + 1)
    assert not result.recorded and result.target == "meditating"
    [row] = novas.status(home, config, torch)
    assert row["limit_hold"] == "usage limit" and row["until"] != meditating.as_json()["until"]
    work = novas.transition(home, config, torch, "work", force=True, now=NOW + 2)
    assert work.target == "working" and novas.status(home, config, torch)[0]["limit_hold"] is None
