"""Cooldown backoff and the streak that drives it (CONTRACT.md "Safety").

Time and randomness are passed in so the policy is testable without sleeping.
"""

from __future__ import annotations

import random

from torchsm.config import SafetyConfig


def cooldown_seconds(streak: int, cfg: SafetyConfig, rng: random.Random | None = None) -> float:
    """The cooldown for the `streak`-th consecutive cool (0 = first): base doubling, capped.

    Jitter takes up to `cooldown_jitter` off the top so Novas that cooled together do not
    wake together; it never adds, so the cap holds, and it never takes everything
    (full jitter could return ~0 s, which is no cooldown at all).
    """
    rng = rng or random.Random()
    ceiling = min(cfg.cooldown_cap_s, cfg.cooldown_base_s * 2 ** min(streak, 32))
    return ceiling * (1 - cfg.cooldown_jitter * rng.random())


def current_streak(streak: int, last_cool_until: float | None, now: float,
                   cfg: SafetyConfig) -> int:
    """Consecutive cooldowns so far; a clean working hour after the last one resets it."""
    if last_cool_until is None or now - last_cool_until >= cfg.clean_hour_s:
        return 0
    return streak


def is_bang(stop_runs_in_window: int, cfg: SafetyConfig) -> bool:
    """More than `hook_burst` Stop-hook runs (the current one counted) within the window."""
    return stop_runs_in_window > cfg.hook_burst


def overheated(*, bangs: int, cools: int, cfg: SafetyConfig) -> bool:
    """Counts within the last hour: too many bangs or cooldowns mean `meditate`."""
    return bangs > cfg.bangs_to_meditate or cools > cfg.cooldowns_to_meditate
