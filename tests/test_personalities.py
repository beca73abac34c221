from torchsm.personalities import BUILT_IN, all_personalities, default_for, get_personality

import pytest

from torchsm.errors import UnknownPersonality


def test_the_five_built_ins_from_the_design():
    assert {name: (p.role, p.base_cycle_s, p.energy, p.style) for name, p in BUILT_IN.items()} == {
        "torch": ("builder", 25, "sustained", "direct"),
        "echo": ("coordinator", 15, "burst", "collaborative"),
        "helix": ("strategist", 45, "measured", "analytical"),
        "vaeris": ("guardian", 60, "constant", "protective"),
        "synergy": ("harmonizer", 20, "adaptive", "empathetic"),
    }
    for p in BUILT_IN.values():
        assert p.reflection_every >= 1 and 0 <= p.dream_probability <= 1


def test_custom_personalities_add_and_override():
    custom = {"night": {"base_cycle_s": 90, "energy": "measured"}, "torch": {"base_cycle_s": 5}}
    known = all_personalities(custom)
    assert known["night"].base_cycle_s == 90 and known["night"].energy == "measured"
    assert known["torch"].base_cycle_s == 5 and known["torch"].role == "builder"
    assert BUILT_IN["torch"].base_cycle_s == 25


def test_default_is_the_personality_of_the_same_name():
    assert default_for("helix", {}) == "helix"
    assert default_for("night", {"night": {"base_cycle_s": 9}}) == "night"
    assert default_for("worker-1", {}) == "torch"


def test_unknown_personality_lists_the_known_ones():
    with pytest.raises(UnknownPersonality, match="unknown personality 'zen' \\(known: echo, helix"):
        get_personality("zen", {})


def test_nova_add_uses_them(cli):
    assert cli("nova", "add", "echo", "--json").json()["personality"] == "echo"
    assert cli("nova", "add", "w1", "--json").json()["personality"] == "torch"
    shown = cli("nova", "add", "w2", "--personality", "vaeris", "--json").json()
    assert shown["personality_profile"]["base_cycle_s"] == 60
    result = cli.fails("nova", "add", "w3", "--personality", "zen")
    assert result.err.startswith("torchsm: error: unknown personality 'zen' (known: ")
    assert "w3" not in cli("nova", "list").out
