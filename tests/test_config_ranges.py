"""Issue 14, finding 9: every number in torchsm.toml is finite and in a sane range for its
key, and a time that got into the database anyway (from an older, laxer torchsm) never
breaks a reading command."""

from __future__ import annotations

import math
import sqlite3

import pytest

from helpers import Cli, write_config
from torchsm.clock import format_time
from torchsm.config import Home, parse_config
from torchsm.errors import ConfigError

INF, NAN = math.inf, math.nan


@pytest.mark.parametrize("raw, message", [
    # not finite: TOML allows inf and nan floats
    ({"safety": {"cooldown_base_s": INF}}, "'safety.cooldown_base_s' must be a finite number"),
    ({"safety": {"cooldown_cap_s": NAN}}, "'safety.cooldown_cap_s' must be a finite number"),
    ({"safety": {"cooldown_jitter": NAN}}, "'safety.cooldown_jitter' must be a finite number"),
    ({"supervisor": {"session_timeout_s": INF}}, "'supervisor.session_timeout_s' must be a finite"),
    ({"usage": {"reset_margin_s": NAN}}, "'usage.reset_margin_s' must be a finite number"),
    ({"usage": {"stop_utilization": NAN}}, "'usage.stop_utilization' must be a finite number"),
    ({"queue": {"lease_s": INF}}, "'queue.lease_s' must be a finite number"),
    ({"mirror": {"outage_memory_s": -INF}}, "'mirror.outage_memory_s' must be a finite number"),
    ({"db": {"lock_timeout_s": NAN}}, "'db.lock_timeout_s' must be a finite number"),
    ({"wake": {"load_defer_per_core": INF}}, "'wake.load_defer_per_core' must be a finite"),
    # finite but absurd durations
    ({"safety": {"cooldown_base_s": 1e300}}, "'safety.cooldown_base_s' must be at most"),
    ({"safety": {"cooldown_cap_s": 1e12}}, "'safety.cooldown_cap_s' must be at most"),
    ({"safety": {"meditation_s": 1e300}}, "'safety.meditation_s' must be at most"),
    ({"supervisor": {"session_timeout_s": 1e300}}, "'supervisor.session_timeout_s' must be at most"),
    ({"usage": {"reset_margin_s": 1e300}}, "'usage.reset_margin_s' must be at most"),
    ({"queue": {"lease_s": 1e300}}, "'queue.lease_s' must be at most"),
    ({"wake": {"repeat_window_s": 1e300}}, "'wake.repeat_window_s' must be at most"),
    ({"db": {"lock_timeout_s": 1e300}}, "'db.lock_timeout_s' must be at most"),
    ({"mirror": {"dedup_ttl_s": 1e300}}, "'mirror.dedup_ttl_s' must be at most"),
    # fractions
    ({"safety": {"cooldown_jitter": 1.5}}, "'safety.cooldown_jitter' must be from 0 to 1"),
    ({"usage": {"slow_utilization": 1.5}}, "'usage.slow_utilization' must be above 0 and at most 1"),
    # counts where 0 (or a huge number) makes no sense
    ({"safety": {"hook_burst": 0}}, "'safety.hook_burst' must be at least 1"),
    ({"safety": {"hook_window_s": 0}}, "'safety.hook_window_s' must be a positive number of"),
    ({"mirror": {"connect_timeout_s": 0}}, "'mirror.connect_timeout_s' must be a positive"),
    ({"mirror": {"dedup_ttl_s": 0.5}}, "'mirror.dedup_ttl_s' must be at least 1"),
    ({"mirror": {"maxlen": 10**15}}, "'mirror.maxlen' must be at most"),
    ({"supervisor": {"max_sessions_per_hour": 10**18}},
     "'supervisor.max_sessions_per_hour' must be at most"),
    ({"supervisor": {"max_cost_usd_per_day": 1e300}},
     "'supervisor.max_cost_usd_per_day' must be at most"),
    # the per-account tables go through the same checks
    ({"accounts": {"work": {"reset_margin_s": INF}}},
     "'accounts.work.reset_margin_s' must be a finite number"),
    ({"accounts": {"work": {"reset_margin_s": 1e300}}},
     "'accounts.work.reset_margin_s' must be at most"),
    ({"accounts": {"work": {"max_cost_usd_per_day": NAN}}},
     "'accounts.work.max_cost_usd_per_day' must be a finite number"),
    ({"accounts": {"work": {"slow_utilization": NAN}}},
     "'accounts.work.slow_utilization' must be a finite number"),
    # and so do personalities
    ({"personalities": {"torch": {"base_cycle_s": INF}}},
     "'personalities.torch.base_cycle_s' must be a finite number"),
    ({"personalities": {"torch": {"base_cycle_s": 1e300}}},
     "'personalities.torch.base_cycle_s' must be at most"),
    ({"personalities": {"torch": {"dream_probability": NAN}}},
     "'personalities.torch.dream_probability' must be a finite number"),
    ({"personalities": {"torch": {"reflection_every": 10**18}}},
     "'personalities.torch.reflection_every' must be at most"),
])
def test_numbers_must_be_finite_and_in_range(raw, message):
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_every_numeric_key_has_a_range():
    """A key added later cannot skip the check: each int/float field has its range."""
    from typing import get_type_hints

    from torchsm import config

    numeric = {f"{section}.{key}" for section, cls in config._SECTIONS.items()
               for key, kind in get_type_hints(cls).items() if kind in (int, float)}
    assert numeric and numeric == set(config.RANGES)


def test_sane_values_at_the_edges_still_parse():
    config = parse_config({
        "safety": {"cooldown_jitter": 0, "cooldown_base_s": 0.3, "cooldown_cap_s": 86400},
        "supervisor": {"crash_window_s": 0, "load_stretch_above": 0,
                       "max_cost_usd_per_day": 0, "no_progress_sessions": 0},
        "usage": {"reset_margin_s": 0, "stop_utilization": 1},
        "wake": {"load_defer_per_core": 0, "repeat_window_s": 0},
        "mirror": {"outage_memory_s": 0.0, "maxlen": 0},
        "accounts": {"work": {"max_cost_usd_per_day": 25, "slow_utilization": 0.5}},
        "personalities": {"slow": {"base_cycle_s": 3600, "dream_probability": 1}},
    })
    assert config.safety.cooldown_jitter == 0 and config.usage.stop_utilization == 1
    assert parse_config({"safety": {"cooldown_jitter": 1}}).safety.cooldown_jitter == 1


@pytest.mark.parametrize("line", ["cooldown_base_s = inf", "cooldown_base_s = nan",
                                  "cooldown_base_s = 1e300", "cooldown_jitter = 2.0"])
def test_cli_refuses_the_config_and_commits_nothing(cli: Cli, line):
    cli("nova", "add", "x")
    write_config(Home(cli.home), f"[safety]\n{line}\n")
    result = cli.fails("transition", "x", "cool")
    key = line.split()[0]
    assert result.err.startswith(f"torchsm: error: torchsm.toml: 'safety.{key}' must ")
    assert result.err.count("\n") == 1
    Home(cli.home).config_path.unlink()
    [row] = cli("status", "--json").json()
    assert row["state"] == "working" and row["until"] is None


@pytest.mark.parametrize("ts, expected", [
    (0, "1970-01-01T00:00:00Z"),
    (1_700_000_000.5, "2023-11-14T22:13:20Z"),
    (None, None),
    (INF, "far future"),
    (1e300, "far future"),
    (253402300800.0, "far future"),  # 10000-01-01: past what ISO 8601's four digits hold
    (-INF, "invalid"),
    (-1e300, "invalid"),
    (NAN, "invalid"),
])
def test_format_time_renders_any_float(ts, expected):
    assert format_time(ts) == expected


@pytest.mark.parametrize("bad", [1e300, INF, -INF, NAN, -1e300])
def test_reading_commands_survive_a_stored_absurd_time(cli: Cli, bad):
    """A row written by an older torchsm under a config of `inf`/`1e300`: the reading
    commands still work after the config is fixed (SQLite stores NaN as NULL)."""
    cli("nova", "add", "x")
    cli("transition", "x", "cool", "--for", "60")
    cli("queue", "add", "an item", "--nova", "x")
    cli("queue", "claim", "--nova", "x")
    conn = sqlite3.connect(cli.home / "torchsm.db")
    with conn:
        conn.execute("UPDATE novas SET until = ?, last_cool_until = ?", (bad, bad))
        conn.execute("UPDATE history SET until = ?", (bad,))
        conn.execute("UPDATE work_items SET lease_until = ?", (bad,))
    conn.close()
    [row] = cli("status", "--json").json()
    assert row["state"] == "cooling"
    cli("status")
    cli("status", "x")
    cli("nova", "list")
    cli("nova", "show", "x")
    assert "cool" in cli("history", "x").out
    cli("history", "x", "--json")
    assert "an item" in cli("queue", "list").out
    cli("queue", "list", "--json")
    cli("usage")
    cli("usage", "x", "--json")
