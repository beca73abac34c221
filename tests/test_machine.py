"""The machine against CONTRACT.md "State machine", row by row."""

import pytest

from torchsm.errors import TransitionRefused, UnknownEvent
from torchsm.machine import Event, State, decide, parse_event

W, C, M, D, K = "working", "cooling", "meditating", "dreaming", "compacting"
NOW = 1000.0
LATER, EARLIER = NOW + 60, NOW - 60

# (state, until, event) -> target state, or None when refused
CASES = [
    (C, LATER, "work", None), (C, EARLIER, "work", W),
    (M, LATER, "work", None), (M, EARLIER, "work", W),
    (D, None, "work", W), (K, None, "work", W), (W, None, "work", W),
    (W, None, "cool", C), (D, None, "cool", C), (K, None, "cool", C),
    (C, LATER, "cool", C), (M, LATER, "cool", None),
    (W, None, "meditate", M), (C, LATER, "meditate", M), (D, None, "meditate", M),
    (M, LATER, "meditate", M), (K, None, "meditate", None),
    (W, None, "dream", D), (C, EARLIER, "dream", D), (C, LATER, "dream", None),
    (D, None, "dream", D), (M, EARLIER, "dream", None), (K, None, "dream", None),
    (W, None, "compact", K), (D, None, "compact", K), (K, None, "compact", K),
    (C, EARLIER, "compact", None), (M, EARLIER, "compact", None),
]


@pytest.mark.parametrize("state, until, event, target", CASES)
def test_contract_table(state, until, event, target):
    if target is None:
        with pytest.raises(TransitionRefused):
            decide("torch", state, until, Event(event), now=NOW)
    else:
        decision = decide("torch", state, until, Event(event), now=NOW)
        assert (decision.source.value, decision.target.value) == (state, target)


def test_every_state_and_event_pair_is_covered():
    covered = {(state, event) for state, _, event, _ in CASES}
    assert covered == {(s.value, e.value) for s in State for e in Event}


@pytest.mark.parametrize("state", [C, M])
def test_force_leaves_a_wait_early(state):
    assert decide("torch", state, LATER, Event.WORK, now=NOW, force=True).target is State.WORKING


def test_refusal_says_why_and_until_when():
    with pytest.raises(TransitionRefused) as info:
        decide("torch", C, 1764138000.0, Event.WORK, now=NOW)
    assert str(info.value) == ("cannot work torch: cooling until 2025-11-26T06:20:00Z "
                               "(wait, or use --force)")
    with pytest.raises(TransitionRefused) as info:
        decide("torch", C, None, Event.COMPACT, now=NOW)
    assert str(info.value) == ("cannot compact torch: not allowed from cooling "
                               "(allowed from: working, dreaming)")


def test_unknown_event():
    with pytest.raises(UnknownEvent, match="unknown event 'sleep' \\(events: work, cool"):
        parse_event("sleep")
