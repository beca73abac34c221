"""Personalities: each Nova's rhythm. Five built-ins; torchsm.toml adds or overrides."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from torchsm.config import FRACTION, check_number, count, duration
from torchsm.errors import InvalidConfigValue, UnknownConfigKey, UnknownPersonality

ENERGY_PATTERNS = ("sustained", "burst", "measured", "constant", "adaptive")
DEFAULT_PERSONALITY = "torch"


@dataclass(frozen=True)
class Personality:
    name: str
    role: str
    base_cycle_s: float
    energy: str
    reflection_every: int  # sessions between reflections
    dream_probability: float
    style: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


BUILT_IN: dict[str, Personality] = {
    p.name: p
    for p in (
        Personality("torch", "builder", 25, "sustained", 5, 0.2, "direct"),
        Personality("echo", "coordinator", 15, "burst", 4, 0.15, "collaborative"),
        Personality("helix", "strategist", 45, "measured", 3, 0.35, "analytical"),
        Personality("vaeris", "guardian", 60, "constant", 8, 0.1, "protective"),
        Personality("synergy", "harmonizer", 20, "adaptive", 4, 0.3, "empathetic"),
    )
}

_FIELD_TYPES = {"role": str, "base_cycle_s": float, "energy": str,
                "reflection_every": int, "dream_probability": float, "style": str}


_RANGES = {"base_cycle_s": duration(positive=True), "reflection_every": count(1),
           "dream_probability": FRACTION}


def validate_table(name: str, table: dict[str, Any]) -> None:
    """Check one `[personalities.NAME]` table; a custom one must give base_cycle_s."""
    where = f"personalities.{name}"
    for key, value in table.items():
        kind = _FIELD_TYPES.get(key)
        if kind is None:
            raise UnknownConfigKey(f"{where}.{key}")
        ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if not ok or isinstance(value, bool):
            raise InvalidConfigValue(f"{where}.{key}", f"has the wrong type: {value!r}")
    if "energy" in table and table["energy"] not in ENERGY_PATTERNS:
        raise InvalidConfigValue(f"{where}.energy", f"must be one of {', '.join(ENERGY_PATTERNS)}")
    for key, allowed in _RANGES.items():
        if key in table:
            check_number(f"{where}.{key}", table[key], allowed)
    if name not in BUILT_IN and "base_cycle_s" not in table:
        raise InvalidConfigValue(f"{where}.base_cycle_s", "is required for a new personality")


def all_personalities(custom: dict[str, dict[str, Any]]) -> dict[str, Personality]:
    """Built-ins merged with the config's tables (overrides keep unspecified built-in values)."""
    merged = dict(BUILT_IN)
    for name, table in custom.items():
        base = merged.get(name) or Personality(name, "custom", 25, "sustained", 5, 0.2, "direct")
        values = {k: (float(v) if _FIELD_TYPES[k] is float else v) for k, v in table.items()}
        merged[name] = replace(base, **values)
    return merged


def get_personality(name: str, custom: dict[str, dict[str, Any]]) -> Personality:
    known = all_personalities(custom)
    try:
        return known[name]
    except KeyError:
        raise UnknownPersonality(name, sorted(known)) from None


def default_for(nova_name: str, custom: dict[str, dict[str, Any]]) -> str:
    """A Nova named after a personality gets it; any other Nova is a builder like Torch."""
    return nova_name if nova_name in all_personalities(custom) else DEFAULT_PERSONALITY
