"""`torchsm metrics --format prometheus`: made by prometheus_client, parsed back by its
parser, and accepted by `promtool check metrics`."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dream_support import DAY, T0, History
from torchsm import novas
from torchsm.config import Config
from torchsm.observe.prometheus import DatabaseCollector, exposition

CONFIG = Config(redis_url="off")
ODD = 'five"hour\\\nweek\u00e9'  # a quote, a backslash, a newline, non-ASCII


def samples(text: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def metered(home):
    """Nova torch with one of each thing the collector reads: a bang, a signal, a session
    and a usage window."""
    novas.add(home, CONFIG, "torch", now=T0 - DAY)
    h = History(home)
    h.hook_run(T0 - 100, outcome="bang")
    h.signal(T0 - 50, sender="ops", tier="high")
    h.session(T0 - 900, cost=0.25)
    h.window(ODD, utilization=0.5, resets_at=T0 + 60, at=T0 - 10)
    h.close()
    return home


def test_the_collector_reads_the_database_and_the_parser_reads_it_back(metered):
    text = exposition(DatabaseCollector(metered, CONFIG, None, DAY, clock=lambda: T0))
    found = samples(text)
    assert found[("torchsm_hooks_bangs", (("nova", "torch"),))] == 1
    assert found[("torchsm_health_score", (("nova", "torch"),))] == 90
    assert found[("torchsm_health_penalty_points",
                  (("component", "bangs"), ("nova", "torch")))] == 10
    assert found[("torchsm_wake_signals_by_tier", (("nova", "torch"), ("tier", "high")))] == 1
    assert found[("torchsm_usage_cost_usd", (("nova", "torch"),))] == 0.25
    assert found[("torchsm_hooks_duration_mean_seconds", (("nova", "torch"),))] == 0.001
    # the odd window name survives escaping whole
    assert found[("torchsm_account_utilization_by_window",
                  (("account", "default"), ("window", ODD)))] == 0.5


def test_every_family_is_a_gauge_with_help(metered):
    text = exposition(DatabaseCollector(metered, CONFIG, "torch", DAY, clock=lambda: T0))
    families = list(text_string_to_metric_families(text))
    assert families and {f.type for f in families} == {"gauge"}
    assert all(f.documentation for f in families)
    names = [f.name for f in families]
    assert len(names) == len(set(names))


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/test installs it (Debian: prometheus)")
        pytest.skip("promtool is not installed (scripts/test installs it)")
    return found


def test_promtool_accepts_the_commands_output(metered, cli):
    tool = promtool()
    out = cli("metrics", "--format", "prometheus").out
    assert "torchsm_health_score_overall" in out
    checked = subprocess.run([tool, "check", "metrics"], input=out, capture_output=True,
                             text=True, timeout=60)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


def test_promtool_would_catch_a_broken_exposition(metered):
    tool = promtool()
    text = exposition(DatabaseCollector(metered, CONFIG, None, DAY, clock=lambda: T0))
    broken = text.replace("# TYPE torchsm_hooks_bangs gauge", "# TYPE torchsm_hooks_bangs nonsense")
    checked = subprocess.run([tool, "check", "metrics"], input=broken, capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode != 0


def test_an_empty_home_is_still_valid(cli):
    out = cli("metrics", "--format", "prometheus").out
    assert samples(out) == {("torchsm_window_seconds", ()): 86400.0,
                            ("torchsm_queue_depth", ()): 0.0}
