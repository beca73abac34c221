"""Admission: whether a session may start now. The supervisor asks before it waits and
again in the transaction that records the start, so what changes in between (a person's
cooldown, a move to an account at its limit) never lets a session through.

The race is reached by doing another process's part while the supervisor claims its
item: the one moment between the check and the record that a test can hold still."""

import pytest

from supervisor_support import T0, FakeClock, config_with, sessions, supervisor
from torchsm import accounts, novas, store, workqueue
from torchsm.supervisor import Wait

BASE = """
redis_url = "off"
"""


@pytest.fixture
def nova_home(home):
    novas.add(home, config_with(BASE), "torch", now=T0 - 7200)
    return home


def add_item(home, config) -> int:
    with workqueue.open_queue(home, config) as q:
        return q.add("task", now=T0 - 60).id


def while_claiming(monkeypatch, meanwhile) -> None:
    """Run `meanwhile` (another process's doing) right after the supervisor's claim."""
    claim = workqueue.WorkQueue.try_claim

    def claim_then(self, *args, **kwargs):
        item = claim(self, *args, **kwargs)
        meanwhile()
        return item

    monkeypatch.setattr(workqueue.WorkQueue, "try_claim", claim_then)


def item_status(home, config, item_id):
    with workqueue.open_queue(home, config) as q:
        [item] = [i for i in q.items(now=T0) if i.id == item_id]
    return item.status.value, item.attempts


def test_a_cooldown_set_while_the_work_is_taken_starts_no_session(nova_home, monkeypatch):
    config = config_with(BASE)
    item = add_item(nova_home, config)
    while_claiming(monkeypatch, lambda: novas.transition(
        nova_home, config, "torch", "cool", for_s=600, reason="a person", now=T0))
    step = supervisor(nova_home, config, ["true"], FakeClock()).step(T0)
    assert sessions(nova_home) == []
    assert item_status(nova_home, config, item) == ("pending", 0)  # back, not counted
    assert isinstance(step, Wait) and step.until == T0 + 600 and "cooling" in step.why


def test_a_move_to_an_account_at_its_limit_while_the_work_is_taken_starts_no_session(
        nova_home, monkeypatch):
    config = config_with(BASE)
    item = add_item(nova_home, config)
    reset = T0 + 1800
    with store.open_store(nova_home) as db:
        db.write(lambda conn: accounts.learn(conn, "held", [accounts.WindowRow(
            "five_hour", "rejected", 1.0, reset, T0 - 10)], T0 - 10))
    while_claiming(monkeypatch, lambda: novas.set_account(
        nova_home, config, "torch", "held", now=T0))
    step = supervisor(nova_home, config, ["true"], FakeClock()).step(T0)
    assert sessions(nova_home) == []
    assert item_status(nova_home, config, item) == ("pending", 0)
    assert isinstance(step, Wait) and step.until == reset + config.usage.reset_margin_s
