"""The supervisor dreams when its Nova is idle: at most once per [dreams] interval_s (counted
in the database, so a restart does not reset it), after the personality's
`reflection_every` sessions, and never in the way of work."""

from supervisor_support import T0, FakeClock, config_with, sessions, supervisor
from torchsm import novas
from torchsm.dreams import dreaming, reflection
from torchsm.storage import store
from torchsm.supervisor.loop import Ran, Wait
from torchsm.work import work_queue

BASE = """
redis_url = "off"
[dreams]
interval_s = 3600
[personalities.torch]
dream_probability = 1.0
reflection_every = 1
"""


def dream_rows(home) -> list[tuple]:
    with store.open_store(home) as db:
        return db.read(lambda conn: conn.execute(
            "SELECT started_at, status, trigger FROM dreams ORDER BY id").fetchall())


def add_item(home, config, at: float, text: str = "task") -> None:
    with work_queue.open_queue(home, config) as q:
        q.add(text, now=at)


def ended_session(home, at: float) -> None:
    with store.open_store(home) as db:
        db.write(lambda conn: conn.execute(
            "INSERT INTO sessions (nova_id, started_at, ended_at, kind, prompt, outcome)"
            " VALUES (1, ?, ?, 'item', 'x', 'ok')", (at - 60, at)))


def test_an_idle_nova_dreams_at_most_once_per_interval(torch_home):
    config = config_with(BASE)
    clock = FakeClock()
    sup = supervisor(torch_home, config, ["true"], clock)
    events = []
    sup._report = events.append
    add_item(torch_home, config, T0)
    for n in range(1, 13):  # an item every 20 minutes for four hours: 13 idle stretches
        clock.at(T0 + 1200 * n, lambda n=n: add_item(torch_home, config, T0 + 1200 * n))
    clock.at(T0 + 4.5 * 3600, sup.stop.set)
    sup.run()
    assert len(sessions(torch_home)) == 13
    rows = dream_rows(torch_home)
    starts = [started for started, _, _ in rows]
    assert {(status, trigger) for _, status, trigger in rows} == {("done", "supervisor")}
    assert len(rows) == 5  # 4.5 hours: at T0 (after the first session) and hourly since
    assert all(later - earlier >= 3600 for earlier, later in zip(starts, starts[1:]))
    dreamt = [e for e in events if e["event"] == "dream"]
    assert [e["dream"] for e in dreamt] == [1, 2, 3, 4, 5]
    # each reads the span [last dream, now): dream 2 the sessions at T0, +20 and +40 min
    assert dreamt[1]["status"] == "done" and dreamt[1]["insights"] >= 1
    assert dreamt[1]["message"].startswith("dream 2 done: read sessions 3, items 3; ")


def test_a_restarted_supervisor_does_not_dream_again_within_the_interval(torch_home):
    config = config_with(BASE)
    ended_session(torch_home, T0 - 100)
    supervisor(torch_home, config, ["true"], FakeClock()).step(T0)
    assert len(dream_rows(torch_home)) == 1
    ended_session(torch_home, T0 + 200)
    again = supervisor(torch_home, config, ["true"], FakeClock(T0 + 300))
    again.step(T0 + 300)
    assert len(dream_rows(torch_home)) == 1  # the last dream's start is in the database
    supervisor(torch_home, config, ["true"], FakeClock(T0 + 3600)).step(T0 + 3600)
    assert len(dream_rows(torch_home)) == 2


def test_no_dream_before_reflection_every_sessions_ended(torch_home):
    config = config_with(BASE.replace("reflection_every = 1", "reflection_every = 3"))
    for n in range(2):
        ended_session(torch_home, T0 - 1000 + n)
    supervisor(torch_home, config, ["true"], FakeClock()).step(T0)
    assert dream_rows(torch_home) == []
    ended_session(torch_home, T0 - 500)
    supervisor(torch_home, config, ["true"], FakeClock()).step(T0)
    assert len(dream_rows(torch_home)) == 1


def test_work_arriving_ends_a_dream_early_and_runs_at_once(torch_home, monkeypatch):
    config = config_with(BASE)
    ended_session(torch_home, T0 - 100)
    reflect = reflection.reflect

    def reflect_while_work_arrives(exp, cfg):  # an item comes in during phase 1
        add_item(torch_home, config, T0, "urgent")
        return reflect(exp, cfg)

    monkeypatch.setattr(reflection, "reflect", reflect_while_work_arrives)
    sup = supervisor(torch_home, config, ["true"], FakeClock())
    step = sup.step(T0)
    assert isinstance(step, Wait) and (step.until, step.why) == (
        T0, "a dream ended early: work arrived")
    [(_, status, _)] = dream_rows(torch_home)
    assert status == "interrupted"
    assert novas.status(torch_home, config, "torch")[0]["state"] == "working"
    assert isinstance(sup.step(T0), Ran)  # the item, at once
    assert sessions(torch_home)[-1][2:5] == ("item", 1, "ok")


def test_the_supervisor_leaves_a_persons_dream_alone(torch_home):
    config = config_with(BASE)
    novas.transition(torch_home, config, "torch", "dream", now=T0 - 1)
    sup = supervisor(torch_home, config, ["true"], FakeClock())
    with dreaming._dream_lock(torch_home, "torch"):  # `torchsm dream torch` runs
        step = sup.step(T0)
        assert isinstance(step, Wait) and step.why == "dreaming"
        assert novas.status(torch_home, config, "torch")[0]["state"] == "dreaming"
    sup.step(T0 + 1)  # its process died without sending the Nova back: the supervisor does
    assert novas.status(torch_home, config, "torch")[0]["state"] == "working"
