"""A Nova's rhythm: how long it rests between two sessions, and why.

The gap has a floor that nothing shortens: the personality's base cycle shaped by its
energy pattern. Ordinary work rests longer: a reflection pause every `reflection_every`
sessions and a stretch under machine load; quiet hours postpone it. A critical wake waits
for the floor only. Pure: the caller passes the load and the time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from torchsm.personalities import Personality
from torchsm.work.wake import quiet_period_end

BURST_LENGTH = 4  # a burst Nova works three quick sessions, then rests once
BURST_PACE, BURST_REST = 0.5, 3.0
MEASURED_PACE = 1.5
MAX_LOAD_STRETCH = 4.0
REFLECTION_PAUSE = 1.0  # base cycles added after every `reflection_every` sessions


@dataclass(frozen=True)
class Gap:
    floor_s: float  # no session starts sooner than this after the last one ended
    rest_s: float  # what ordinary work waits (at least floor_s)
    why: str


def energy_factor(energy: str, sessions_done: int) -> float:
    """The energy pattern's share of the floor, for the session after `sessions_done`."""
    if energy == "burst":
        return BURST_REST if sessions_done and sessions_done % BURST_LENGTH == 0 else BURST_PACE
    if energy == "measured":
        return MEASURED_PACE
    return 1.0  # sustained, constant, adaptive: an even pace


def load_factor(energy: str, load_per_core: float | None, above: float = 1.0) -> float:
    """How much machine load stretches the rest: in proportion to the load beyond `above`
    per core (0: never); a `constant` Nova keeps its pace, an `adaptive` one backs off
    harder (quadratically)."""
    if load_per_core is None or energy == "constant" or above <= 0 or load_per_core <= above:
        return 1.0
    stretch = load_per_core / above
    return min(MAX_LOAD_STRETCH, stretch ** 2 if energy == "adaptive" else stretch)


def gap(personality: Personality, sessions_done: int, load_per_core: float | None = None,
        load_above: float = 1.0) -> Gap:
    """The gap before the next session of a Nova that has run `sessions_done` sessions."""
    base = personality.base_cycle_s
    floor = base * energy_factor(personality.energy, sessions_done)
    rest = floor
    why = [f"{personality.name} ({personality.energy}) rests {floor:g}s"]
    if sessions_done and sessions_done % personality.reflection_every == 0:
        rest += base * REFLECTION_PAUSE
        why.append(f"+{base * REFLECTION_PAUSE:g}s to reflect after {sessions_done} sessions")
    stretch = load_factor(personality.energy, load_per_core, load_above)
    if stretch > 1.0:
        rest *= stretch
        why.append(f"x{stretch:.2f} for load {load_per_core:.2f} per core")
    return Gap(floor, rest, ", ".join(why))


def after_quiet_hours(at: float, quiet_hours: str,
                      tz: dt.tzinfo | None = None) -> float | None:
    """When ordinary work planned for `at` may start, if quiet hours postpone it."""
    return quiet_period_end(at, quiet_hours, tz)
