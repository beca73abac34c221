"""The five priority tiers shared by work items and wake signals (CONTRACT.md).

A tier's rank orders work (0 is most urgent) and its delay is how long a wake signal of
that tier waits before it is due.
"""

from __future__ import annotations

from enum import Enum

from torchsm.errors import UnknownTier


class Tier(str, Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    BACKGROUND = "background"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    @property
    def delay_s(self) -> float:
        return DELAY_S[self]

    def shifted(self, steps: int) -> "Tier":
        """The tier `steps` more urgent (negative: less urgent), clamped to the ends."""
        return _ORDER[min(len(_ORDER) - 1, max(0, self.rank - steps))]


_ORDER = list(Tier)
DELAY_S = {Tier.CRITICAL: 0.0, Tier.HIGH: 30.0, Tier.MEDIUM: 300.0, Tier.LOW: 1800.0,
           Tier.BACKGROUND: 3600.0}
DEFERRABLE = (Tier.LOW, Tier.BACKGROUND)  # the only tiers quiet hours and load may delay
TIER_NAMES = ", ".join(t.value for t in Tier)


def parse_tier(name: str) -> Tier:
    try:
        return Tier(name.lower())
    except (ValueError, AttributeError):
        raise UnknownTier(name, [t.value for t in Tier]) from None
