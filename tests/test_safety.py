import random

from torchsm.config import SafetyConfig
from torchsm.safety import cooldown_seconds, current_streak

CFG = SafetyConfig()


def test_backoff_doubles_from_base_and_is_capped():
    no_jitter = SafetyConfig(cooldown_jitter=0)
    assert [cooldown_seconds(n, no_jitter) for n in range(6)] == [60, 120, 240, 480, 600, 600]
    assert cooldown_seconds(10_000, no_jitter) == 600


def test_jitter_only_shortens_and_never_to_nothing():
    rng = random.Random(7)
    for streak in range(8):
        ceiling = min(600, 60 * 2 ** streak)
        values = [cooldown_seconds(streak, CFG, rng) for _ in range(200)]
        assert all(ceiling * 0.8 <= v <= ceiling for v in values)
        assert len(set(values)) > 100


def test_streak_resets_after_a_clean_working_hour():
    assert current_streak(3, None, now=1000, cfg=CFG) == 0
    assert current_streak(3, last_cool_until=1000, now=1000 + 3599, cfg=CFG) == 3
    assert current_streak(3, last_cool_until=1000, now=1000 + 3600, cfg=CFG) == 0


def test_bang_counts_the_current_run():
    from torchsm.safety import is_bang, overheated
    assert not is_bang(10, CFG) and is_bang(11, CFG)
    assert not overheated(bangs=5, cools=3, cfg=CFG)
    assert overheated(bangs=6, cools=0, cfg=CFG) and overheated(bangs=0, cools=4, cfg=CFG)
