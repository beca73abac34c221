"""The Stop hook's one decision (torchsm.hooks.stop.decide) as a table: situation ->
rule (None: continue with the next item), why, and the restart asked for; in the manner
of tests/test_admission.py. The hook's whole behaviour, on a real database through the
CLI, is tests/test_hooks.py's."""

import pytest

from torchsm.config import Config
from torchsm.hooks.stop import StopFacts, continuation_endings, decide, message_digest
from torchsm.storage import store
from torchsm.usage import pacing

NOW = 1_800_000_000.0
CONFIG = Config()  # hook_burst 10, max_continuations 8, no_progress_continuations 3
STOP = pacing.Verdict("stop", NOW + 900, "usage five_hour at 97%: resets 05:00", 1.0)
PACE = pacing.Verdict("pace", NOW + 40, "usage five_hour at 85%: next in 40s", 0.5)
SAME = "I could not do it."


def nova(state="working") -> store.NovaRow:
    return store.NovaRow(1, "torch", "torch", state, NOW - 5000, None, None, 0, None,
                         NOW - 9000)


def facts(**changes) -> StopFacts:
    """A Stop that continues: working, a supervisor alive, room in every limit, work left."""
    base = StopFacts(nova(), "done with that", 1, 0, [], [], None, None, pacing.OK, True)
    return base._replace(**changes)


def stuck(n: int = 3) -> dict:
    """The last `n` continuations all ended on the message this turn ends on too."""
    digest = message_digest(SAME)
    return {"message": SAME, "continued": n, "recent": [(digest, i) for i in range(n, 0, -1)],
            "item_statuses": ["claimed"] + ["done"] * (n - 1)}


# (situation, facts, rule (None: continue), restart asked for)
TABLE = [
    ("nothing in the way", facts(), None, None),
    ("a bang", facts(stop_runs=11), "bang", None),
    ("a bang with work left asks no restart", facts(stop_runs=11, nova=nova("cooling")),
     "bang", None),
    ("ten runs are no bang", facts(stop_runs=10), None, None),
    ("cooling", facts(nova=nova("cooling")), "not working", "torch is cooling"),
    ("dreaming, nothing left", facts(nova=nova("dreaming"), work_left=False), "not working",
     None),
    ("the supervisor gone", facts(supervisor_gone=4242), "supervisor gone",
     "the supervisor of this session (pid 4242) is gone: the session ends with its item and "
     "takes no new work until the next supervisor starts"),
    ("the cap reached", facts(continued=8), "continuation cap",
     "continuation cap reached (8 of 8 in this session)"),
    ("below the cap", facts(continued=7), None, None),
    ("the same message three times", facts(**stuck()), "no progress",
     f"no progress: 3 continuations in a row ended with the same message ({SAME})"),
    ("the same message twice only", facts(**stuck(2)), None, None),
    ("each item failed", facts(continued=3, recent=[(None, 3), (None, 2), (None, 1)],
                               item_statuses=["failed", "dead", "failed"]), "no progress",
     "no progress: 3 continuations in a row each failed their work item"),
    ("the account at its limit", facts(usage=STOP), "usage limit", STOP.why),
    ("pacing", facts(usage=PACE), "usage pacing", PACE.why),
    ("a limit, nothing left", facts(usage=STOP, work_left=False), "usage limit", None),
    ("not working beats a limit", facts(nova=nova("cooling"), usage=STOP), "not working",
     "torch is cooling"),
    ("the cap beats a limit", facts(continued=8, usage=STOP), "continuation cap",
     "continuation cap reached (8 of 8 in this session)"),
    ("a bang beats everything", facts(stop_runs=11, continued=8, usage=STOP), "bang", None),
    ("no work", facts(work_left=False), "no work", None),
]


@pytest.mark.parametrize("situation, given, rule, restart", TABLE, ids=[t[0] for t in TABLE])
def test_stop_decision_table(situation, given, rule, restart):
    decision = decide(given, CONFIG)
    found = None if decision.rule is None else decision.rule.value
    assert (found, decision.restart) == (rule, restart)
    assert (decision.why is None) == (rule is None)


def test_a_stop_says_why_in_words():
    assert decide(facts(stop_runs=11), CONFIG).why == "bang: 11 Stop-hook runs within 60s"
    assert decide(facts(usage=PACE), CONFIG).why == f"usage pacing: {PACE.why}"
    assert decide(facts(usage=STOP), CONFIG).why == STOP.why
    assert decide(facts(work_left=False), CONFIG).why == "no work item to continue with"


def test_the_breaker_reads_the_current_message_for_the_latest_continuation():
    """A digest equal to the current message's stands for its text; an item's `done` says
    nothing of progress (this hook marks it done)."""
    endings = continuation_endings(facts(**stuck()))
    assert [e.last_assistant_message for e in endings] == [SAME, SAME, SAME]
    assert [e.item_status for e in endings] == ["claimed", None, None]


def test_the_breaker_off_never_stops():
    off = CONFIG._replace(safety=CONFIG.safety._replace(
        no_progress_continuations=0))
    assert decide(facts(**stuck()), off).rule is None
