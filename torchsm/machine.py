"""The Nova state machine, declared once as data (CONTRACT.md "State machine").

Read TRANSITIONS row by row against the contract's table. `dest=None` marks an accepted
no-op (firing an event whose target is the current state); `cool` from `cooling` is a real
reflexive transition because it re-arms the cooldown. The machine only decides; the store
persists the decision inside the same database transaction that read the state.
"""

from __future__ import annotations

from enum import Enum

from transitions import Machine, MachineError

from torchsm.clock import format_time
from torchsm.errors import TransitionRefused, UnknownEvent
from torchsm.records import record


class State(str, Enum):
    WORKING = "working"
    COOLING = "cooling"
    MEDITATING = "meditating"
    DREAMING = "dreaming"
    COMPACTING = "compacting"


class Event(str, Enum):
    WORK = "work"
    COOL = "cool"
    MEDITATE = "meditate"
    DREAM = "dream"
    COMPACT = "compact"


INITIAL_STATE = State.WORKING
WAITING_STATES = (State.COOLING, State.MEDITATING)  # states with an `until`

TRANSITIONS = [
    {"trigger": "work", "source": ["cooling", "meditating"], "dest": "working",
     "conditions": "wait_is_over"},
    {"trigger": "work", "source": ["dreaming", "compacting"], "dest": "working"},
    {"trigger": "work", "source": "working", "dest": None},
    {"trigger": "cool", "source": ["working", "dreaming", "compacting", "cooling"],
     "dest": "cooling"},
    {"trigger": "meditate", "source": ["working", "cooling", "dreaming"], "dest": "meditating"},
    {"trigger": "meditate", "source": "meditating", "dest": None},
    {"trigger": "dream", "source": "working", "dest": "dreaming"},
    {"trigger": "dream", "source": "cooling", "dest": "dreaming", "conditions": "wait_is_over"},
    {"trigger": "dream", "source": "dreaming", "dest": None},
    {"trigger": "compact", "source": ["working", "dreaming"], "dest": "compacting"},
    {"trigger": "compact", "source": "compacting", "dest": None},
]


class _Subject:
    """What the machine looks at: the state, when the wait ends, and the caller's context.
    A plain object, not a record: the machine sets its `state` and adds its triggers."""

    def __init__(self, state: str, until: float | None, now: float, force: bool):
        self.state, self.until, self.now, self.force = state, until, now, force

    def wait_is_over(self) -> bool:
        return self.force or self.until is None or self.until <= self.now


# Built once with model=None (FIELD-NOTES: a model passed at construction would have its
# loaded state overwritten by `initial`); subjects are added per decision.
_MACHINE = Machine(
    model=None,
    states=[s.value for s in State],
    transitions=TRANSITIONS,
    initial=None,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)


@record
class Decision:
    source: State
    target: State

    @property
    def changes_state(self) -> bool:
        return self.source != self.target


def parse_event(name: str) -> Event:
    try:
        return Event(name)
    except ValueError:
        raise UnknownEvent(name, [e.value for e in Event]) from None


def allowed_sources(event: Event) -> list[str]:
    sources: list[str] = []
    for row in TRANSITIONS:
        if row["trigger"] == event.value and row["dest"] is not None:
            src = row["source"]
            sources.extend([src] if isinstance(src, str) else src)
    return sources


def decide(nova: str, state: str, until: float | None, event: Event, *,
           now: float, force: bool = False) -> Decision:
    """Where `event` takes a Nova in `state`, or TransitionRefused with the reason."""
    subject = _Subject(state=state, until=until, now=now, force=force)
    _MACHINE.add_model(subject, initial=state)
    try:
        accepted = subject.trigger(event.value)
    except MachineError:
        raise TransitionRefused(event.value, nova, f"not allowed from {state} "
                                f"(allowed from: {', '.join(allowed_sources(event))})") from None
    finally:
        _MACHINE.remove_model(subject)
    if not accepted:
        raise TransitionRefused(event.value, nova,
                                f"{state} until {format_time(until)} (wait, or use --force)")
    return Decision(State(state), State(subject.state))
