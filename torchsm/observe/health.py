"""A Nova's health: a 0-100 score from its metrics (torchsm.observe.metrics), the trend against
the window before, and recommendations that name the metric behind them.

The score is 100 minus a penalty per component, each from one metric and capped, and
never below 0:

    component        metric                        penalty                      cap
    bangs            hooks.bangs                   10 per bang                  30
    cooldowns        recovery.cooldowns            5 per cooldown               20
    meditations      recovery.meditations          10 per meditation            20
    failed items     work.success_rate             30 x (1 - success rate)      30
    failed sessions  uptime.stability              20 x (1 - stability)         20
    hook errors      hooks.errors                  2 per error                  10
    queue age        work.queue_age_p90_s          10 when over 1 h, 5 over 15 min  10
    rhythm           rhythm.compliance             10 x (1 - compliance)        10

A metric with nothing to measure (no finished item, no session) costs nothing. The
overall score is the mean of the Novas' scores (None without Novas). The trend is the
score minus the score of the window of the same length just before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torchsm.config import Config, Home
from torchsm.observe.metrics import Metrics, Span, read_metrics, read_score_inputs
from torchsm.storage import store

HOUR_S = 3600.0


@dataclass(frozen=True)
class Component:
    name: str
    family: str
    metric: str
    cap: float
    penalty: Callable[[Any], float]  # the metric's value (not None) -> points lost
    advice: str

    def points(self, families: dict[str, dict[str, Any]]) -> float:
        value = self.value(families)
        return 0.0 if value is None else min(self.cap, max(0.0, self.penalty(value)))

    def value(self, families: dict[str, dict[str, Any]]) -> Any:
        return families[self.family].get(self.metric)


def _queue_age(age_s: float) -> float:
    return 10.0 if age_s > HOUR_S else 5.0 if age_s > 15 * 60 else 0.0


COMPONENTS = (
    Component("bangs", "hooks", "bangs", 30, lambda n: 10.0 * n,
              "Stop hooks run too fast: check what ends the sessions at once"),
    Component("cooldowns", "recovery", "cooldowns", 20, lambda n: 5.0 * n,
              "frequent cooldowns: read the reasons in `torchsm history`"),
    Component("meditations", "recovery", "meditations", 20, lambda n: 10.0 * n,
              "the Nova overheats: lengthen its cycle or give it smaller items"),
    Component("failed items", "work", "success_rate", 30, lambda r: 30.0 * (1 - r),
              "items fail: read their errors in `torchsm queue list --status dead`"),
    Component("failed sessions", "uptime", "stability", 20, lambda s: 20.0 * (1 - s),
              "sessions fail or crash: read `torchsm usage` and the agent's log"),
    Component("hook errors", "hooks", "errors", 10, lambda n: 2.0 * n,
              "hook handlers fail: run `torchsm doctor`"),
    Component("queue age", "work", "queue_age_p90_s", 10, _queue_age,
              "add a Nova or lower priorities"),
    Component("rhythm", "rhythm", "compliance", 10, lambda c: 10.0 * (1 - c),
              "sessions start sooner than the personality's cycle: check the supervisor"),
)


@dataclass(frozen=True)
class Health:
    score: float
    penalties: dict[str, float]  # component -> points lost (only those that cost)
    recommendations: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"score": self.score, "penalties": self.penalties,
                "recommendations": self.recommendations}


def nova_health(families: dict[str, dict[str, Any]]) -> Health:
    lost = {c.name: round(c.points(families), 2) for c in COMPONENTS}
    costly = [c for c in COMPONENTS if lost[c.name] > 0]
    costly.sort(key=lambda c: -lost[c.name])  # the biggest loss first
    return Health(round(max(0.0, 100.0 - sum(lost.values())), 2),
                  {c.name: lost[c.name] for c in costly},
                  [recommendation(c, c.value(families), lost[c.name]) for c in costly])


def recommendation(component: Component, value: Any, lost: float) -> str:
    """`work.queue_age_p90_s 4 h: add a Nova or lower priorities (-10 points)`."""
    label = f"{component.family}.{component.metric}"
    return f"{label} {describe(component.metric, value)}: {component.advice} (-{lost:g} points)"


def describe(metric: str, value: Any) -> str:
    if metric.endswith("_s"):
        return duration_text(value)
    if metric in ("success_rate", "stability", "compliance"):
        return f"{value * 100:.0f}%"
    return f"{value:g}"


def duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", HOUR_S), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def overall(scores: list[float]) -> float | None:
    return round(sum(scores) / len(scores), 2) if scores else None


def trend(current: float | None, previous: float | None) -> float | None:
    return None if current is None or previous is None else round(current - previous, 2)


def assess(now_metrics: Metrics, before: Metrics) -> dict[str, Any]:
    """Score every Nova of `now_metrics` and the whole home, with the trend against
    `before` (the same Novas over the previous window); also stored on
    `now_metrics.extra["health"]` and on each Nova's families as `health`."""
    previous = {n.nova: nova_health(n.families).score for n in before.novas}
    scores = []
    for nova in now_metrics.novas:
        health = nova_health(nova.families)
        scores.append(health.score)
        nova.families["health"] = {**health.as_json(), "previous": previous.get(nova.nova),
                                   "trend": trend(health.score, previous.get(nova.nova))}
    score, before_score = overall(scores), overall(list(previous.values()))
    result = {"score": score, "previous": before_score, "trend": trend(score, before_score)}
    now_metrics.extra["health"] = result
    return result


def measure(home: Home, config: Config, name: str | None, since_s: float,
            now: float) -> Metrics:
    """The metrics of [now - since_s, now) with their health, and the trend against the
    window before (of which only what the score reads), read in one snapshot."""
    span = Span(now - since_s, now)

    def read(conn) -> Metrics:
        current = read_metrics(conn, config, name, span, now)
        assess(current, read_score_inputs(conn, config, name, span.previous(), span.start))
        return current

    with store.open_store(home, config.db.lock_timeout_s) as db:
        return db.read(read)
