"""The metrics in the Prometheus text format, through `prometheus_client`: a custom
collector that reads the database when it is collected (`DatabaseCollector`), and
`exposition` to render it on a fresh registry. Loaded only by `torchsm metrics
--format prometheus`, never on the hook or transition path.

Every value is a gauge: it is measured over the window (`--since`) or now, so it may go
down from one scrape to the next. Names are `torchsm_<family>_<metric>`; a metric held
per tier, event, status or window keeps `_by_<label>` in its name and carries that label.
Durations are in seconds (`_s` becomes `_seconds`, `_ms` is converted).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from torchsm.config import Config, Home
from torchsm.observe.metrics import Metrics

PREFIX = "torchsm"


def _unit_name(key: str) -> tuple[str, float]:
    """The metric's name in base units, and the factor its values need."""
    if key.endswith("_ms"):
        return key[:-3] + "_seconds", 0.001
    if key.endswith("_s"):
        return key[:-2] + "_seconds", 1.0
    return key.replace("_s_by_", "_seconds_by_"), 1.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, (int, float)) else None


class _Families:
    """Gauge families by name, created on first use, each with its label names."""

    def __init__(self) -> None:
        self.by_name: dict[str, GaugeMetricFamily] = {}

    def add(self, name: str, help_text: str, labels: dict[str, str], value: Any,
            factor: float = 1.0) -> None:
        number = _number(value)
        if number is None:
            return
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = GaugeMetricFamily(name, help_text,
                                                            labels=list(labels))
        family.add_metric(list(labels.values()), number * factor)

    def add_family(self, prefix: str, what: str, values: dict[str, Any],
                   labels: dict[str, str]) -> None:
        """Every number of one family dict; `X_by_LABEL` dicts become LABEL-labelled."""
        for key, value in values.items():
            name, factor = _unit_name(key)
            full = f"{prefix}_{name}"
            if isinstance(value, dict) and "_by_" in key:
                label = key.rsplit("_by_", 1)[1]
                for part, number in value.items():
                    self.add(full, f"{what} {key}", {**labels, label: str(part)}, number,
                             factor)
            else:
                self.add(full, f"{what} {key}", labels, value, factor)


def families(metrics: Metrics) -> Iterator[GaugeMetricFamily]:
    out = _Families()
    window = metrics.span.end - metrics.span.start
    out.add(f"{PREFIX}_window_seconds", "length of the window the metrics cover", {}, window)
    for nova in metrics.novas:
        _nova(out, nova)
    for account in metrics.accounts:
        out.add_family(f"{PREFIX}_account", "account usage:",
                       {k: v for k, v in account.items() if k != "account"},
                       {"account": account["account"]})
    out.add_family(f"{PREFIX}", "home-wide open work items:", metrics.queue, {})
    health = metrics.extra.get("health") or {}
    out.add(f"{PREFIX}_health_score_overall", "mean health score of the Novas (0-100)", {},
            health.get("score"))
    out.add(f"{PREFIX}_health_trend_overall", "overall score minus the previous window's",
            {}, health.get("trend"))
    return iter(out.by_name.values())


def _nova(out: _Families, nova) -> None:
    labels = {"nova": nova.nova}
    out.add(f"{PREFIX}_nova_info", "a Nova, its personality, account and state",
            {**labels, "personality": nova.personality, "account": nova.account,
             "state": nova.state}, 1)
    for family, values in nova.families.items():
        if family == "health":
            _health(out, labels, values)
        else:
            out.add_family(f"{PREFIX}_{family}", f"{family}:", values, labels)


def _health(out: _Families, labels: dict[str, str], health: dict[str, Any]) -> None:
    out.add(f"{PREFIX}_health_score", "health score (0-100, README: Metrics and health)",
            labels, health["score"])
    out.add(f"{PREFIX}_health_trend", "health score minus the previous window's", labels,
            health.get("trend"))
    for component, points in health["penalties"].items():
        out.add(f"{PREFIX}_health_penalty_points", "points a health component costs",
                {**labels, "component": component}, points)


class DatabaseCollector:
    """A `prometheus_client` collector: each collection measures the database anew."""

    def __init__(self, home: Home, config: Config, name: str | None, since_s: float,
                 clock: Callable[[], float] = time.time):
        self.home, self.config, self.name, self.since_s = home, config, name, since_s
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from torchsm.observe.health import measure

        return families(measure(self.home, self.config, self.name, self.since_s,
                                self.clock()))


def exposition(collector: Any) -> str:
    """The collector's metrics in the Prometheus text format, from a fresh registry."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()
