"""The health score on crafted histories whose score is known exactly (the formula is in
torchsm/observe/health.py and the README)."""

from __future__ import annotations

import pytest

from dream_support import DAY, T0, History
from torchsm import novas
from torchsm.config import Config
from torchsm.observe import health

CONFIG = Config(redis_url="off")


def nova(home, name: str) -> History:
    novas.add(home, CONFIG, name, now=T0 - 10 * DAY)
    return History(home, name)


def healthy_day(h: History, end: float = T0) -> None:
    """Six ok sessions an hour apart (gaps far above the floor), six items done."""
    for n in range(6):
        at = end - DAY + 3600 * (n + 1)
        h.session(at, item=h.item(at - 10, status="done", attempts=1, finished=at + 30))


def score(home, name: str, since: float = DAY, now: float = T0) -> dict:
    found = health.measure(home, CONFIG, name, since, now)
    return found.novas[0].families["health"]


def test_a_healthy_nova_scores_100(home):
    h = nova(home, "torch")
    healthy_day(h)
    h.close()
    result = score(home, "torch")
    assert (result["score"], result["penalties"], result["recommendations"]) == (100, {}, [])


def test_bangs_cooldowns_and_failed_items_cost_their_documented_points(home):
    h = nova(home, "torch")
    healthy_day(h)
    for at in (T0 - 5000, T0 - 4000):
        h.hook_run(at, outcome="bang")                       # 2 bangs: -20
    h.transition(T0 - 3000, "cool", reason="backoff")        # 1 cooldown: -5
    for n in range(2):                                       # 6 done, 2 dead: -30 x 2/8
        h.item(T0 - 9000, status="dead", attempts=3, finished=T0 - 2000 + n)
    h.close()
    result = score(home, "torch")
    assert result["penalties"] == {"bangs": 20, "failed items": 7.5, "cooldowns": 5}
    assert result["score"] == 100 - 20 - 5 - 7.5
    assert result["recommendations"][0].startswith("hooks.bangs 2: ")
    assert result["recommendations"][1].startswith("work.success_rate 75%: ")


def test_each_component_is_capped_and_the_score_never_goes_below_0(home):
    h = nova(home, "torch")
    for n in range(20):
        h.hook_run(T0 - 5000 + n, outcome="bang")            # 200 points, capped at 30
        h.hook_run(T0 - 4000 + n, event="pre-tool-use", outcome="error")  # capped at 10
        h.transition(T0 - 3000 + 2 * n, "cool")              # capped at 20
        h.transition(T0 - 2999 + 2 * n, "meditate")          # capped at 20
        h.session(T0 - 1000 + n, outcome="crashed")          # stability 0: 20
        h.item(T0 - 9000, status="dead", attempts=3, finished=T0 - 100)  # success 0: 30
    h.close()
    result = score(home, "torch")
    assert result["penalties"]["bangs"] == 30 and result["penalties"]["hook errors"] == 10
    assert result["penalties"]["failed sessions"] == 20
    assert result["score"] == 0


@pytest.mark.parametrize("age_s, lost", [(600, 0), (1800, 5), (4 * 3600, 10)])
def test_queue_age_p90(home, age_s, lost):
    h = nova(home, "torch")
    h.item(T0 - age_s)
    h.close()
    result = score(home, "torch")
    assert result["score"] == 100 - lost
    if lost:
        assert result["recommendations"] == [
            f"work.queue_age_p90_s {health.duration_text(age_s)}: add a Nova or lower"
            f" priorities (-{lost} points)"]


def test_the_queue_age_recommendation_reads_like_the_issue():
    assert health.duration_text(4 * 3600) == "4 h"
    assert health.duration_text(1800) == "30 min"


def test_rhythm_compliance_costs_its_share(home):
    h = nova(home, "torch")  # floor 25 s
    starts = [T0 - 5000, T0 - 4930, T0 - 4860, T0 - 4850, T0 - 4840]  # 60 s sessions
    for at in starts:
        h.session(at, duration=5)
    h.close()
    # gaps: 65, 65, 5, 5: half kept -> -5
    result = score(home, "torch")
    assert result["penalties"] == {"rhythm": 5} and result["score"] == 95
    assert result["recommendations"][0].startswith("rhythm.compliance 50%: ")


def test_trend_compares_with_the_window_before(home):
    h = nova(home, "torch")
    healthy_day(h)
    for at in (T0 - DAY - 5000, T0 - DAY - 4000):   # two bangs yesterday
        h.hook_run(at, outcome="bang")
    h.close()
    result = score(home, "torch")
    assert (result["score"], result["previous"], result["trend"]) == (100, 80, 20)
    yesterday = score(home, "torch", now=T0 - DAY)
    assert (yesterday["score"], yesterday["trend"]) == (80, -20)


def test_overall_is_the_mean_of_the_novas(home):
    torch, echo = nova(home, "torch"), nova(home, "echo")
    healthy_day(torch)
    echo.hook_run(T0 - 100, outcome="bang")
    echo.hook_run(T0 - 2 * DAY, outcome="bang")
    torch.close(), echo.close()
    found = health.measure(home, CONFIG, None, DAY, T0)
    assert found.extra["health"] == {"score": 95.0, "previous": 95.0, "trend": 0.0}
    assert [n.families["health"]["score"] for n in found.novas] == [90, 100]


def test_nothing_to_measure_costs_nothing():
    empty = {"hooks": {"bangs": 0, "errors": 0}, "recovery": {"cooldowns": 0, "meditations": 0},
             "work": {"success_rate": None, "queue_age_p90_s": None},
             "uptime": {"stability": None}, "rhythm": {"compliance": None}}
    assert health.nova_health(empty).score == 100
