
import json
import os

import pytest

from torchsm import config_cache
from torchsm.config import (Config, DEFAULT_REDIS_URL, Home, load_config, parse_config,
                            resolve_home)
from torchsm.errors import ConfigError

from helpers import Cli, write_config


def test_home_resolution_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TORCHSM_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert resolve_home().path == tmp_path / "state" / "torchsm"  # tests/test_home_default.py
    monkeypatch.setenv("TORCHSM_HOME", str(tmp_path / "env"))
    assert resolve_home().path == tmp_path / "env"
    assert resolve_home(tmp_path / "opt").path == tmp_path / "opt"


def test_defaults_are_the_contract_safety_values(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHSM_REDIS_URL", raising=False)
    config = load_config(Home(tmp_path))
    assert config.redis_url == DEFAULT_REDIS_URL
    assert (config.safety.hook_burst, config.safety.hook_window_s) == (10, 60)
    assert (config.safety.cooldown_base_s, config.safety.cooldown_cap_s) == (60, 600)
    assert config.safety.meditation_s == 1800
    assert (config.safety.bangs_to_meditate, config.safety.cooldowns_to_meditate) == (5, 3)
    assert config.supervisor.max_sessions_per_hour == 12
    assert config.supervisor.max_continuations == 8
    assert config.usage.stop_utilization == 0.95
    assert config.wake.repeat_window_s == 600


def test_full_file_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHSM_REDIS_URL", raising=False)
    home = Home(tmp_path)
    write_config(home, """
redis_url = "off"
[safety]
hook_burst = 3
cooldown_base_s = 1.5
[supervisor]
max_sessions_per_hour = 2
[usage]
auto_resume = false
[wake]
quiet_hours = "22:00-07:00"
[wake.senders]
pager = 2
[personalities.night]
base_cycle_s = 90
energy = "measured"
""")
    config = load_config(home)
    assert config.redis_url == "off"
    assert config.safety.hook_burst == 3 and config.safety.cooldown_base_s == 1.5
    assert config.supervisor.max_sessions_per_hour == 2
    assert config.usage.auto_resume is False
    assert config.wake.senders == {"pager": 2}
    assert config.personalities["night"]["base_cycle_s"] == 90


def test_environment_overrides_the_mirror_url_only(tmp_path, monkeypatch):
    home = Home(tmp_path)
    write_config(home, 'redis_url = "redis://10.0.0.1:1/0"\n[safety]\nhook_burst = 4\n')
    monkeypatch.setenv("TORCHSM_REDIS_URL", "off")
    config = load_config(home)
    assert config.redis_url == "off" and config.safety.hook_burst == 4


@pytest.mark.parametrize("raw, message", [
    ({"safty": {}}, "unknown key 'safty'"),
    ({"safety": {"hook_brust": 1}}, "unknown key 'safety.hook_brust'"),
    ({"safety": {"hook_burst": "ten"}}, "'safety.hook_burst' must be an integer, got 'ten'"),
    ({"safety": {"hook_burst": 2.5}}, "'safety.hook_burst' must be an integer"),
    ({"safety": {"cooldown_base_s": -1}}, "'safety.cooldown_base_s' must not be negative"),
    ({"usage": {"auto_resume": "no"}}, "'usage.auto_resume' must be true or false"),
    ({"supervisor": {"max_continuations": True}}, "'supervisor.max_continuations' must be an integer"),
    ({"supervisor": 3}, "'supervisor' must be a table"),
    ({"redis_url": 5}, "'redis_url' must be a string"),
    ({"wake": {"quiet_hours": "late"}}, "'wake.quiet_hours' must look like"),
    ({"wake": {"senders": {"ops": "up"}}}, "'wake.senders.ops' must be an integer"),
    ({"personalities": {"x": {"energy": "sustained"}}}, "'personalities.x.base_cycle_s' is required"),
    ({"personalities": {"torch": {"energy": "frantic"}}}, "'personalities.torch.energy' must be one of"),
    ({"personalities": {"torch": {"mood": 1}}}, "unknown key 'personalities.torch.mood'"),
    ({"personalities": {"torch": {"dream_probability": 2}}}, "'personalities.torch.dream_probability'"),
])
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert message in str(info.value)


def test_cli_reports_a_bad_config_in_one_line(cli: Cli):
    write_config(Home(cli.home), "[safety]\nhook_burst = 'ten'\n")
    result = cli.fails("status")
    assert result.err == ("torchsm: error: torchsm.toml: 'safety.hook_burst' must be an "
                          "integer, got 'ten'\n")


def test_cli_reports_invalid_toml(cli: Cli):
    write_config(Home(cli.home), "[safety\n")
    result = cli.fails("status")
    assert result.err.startswith(f"torchsm: error: {cli.home / 'torchsm.toml'}: not valid TOML")
    assert result.err.count("\n") == 1


def test_default_config_object_is_frozen():
    with pytest.raises(Exception):
        Config().safety.hook_burst = 3


# torchsm.toml's parsed copy (torchsm.config_cache): never a stale or unchecked config

def test_an_edit_counts_at_once_whatever_the_file_times_say(tmp_path):
    home = Home(str(tmp_path))
    write_config(home, "[safety]\nhook_burst = 3\n")
    assert load_config(home).safety.hook_burst == 3
    times = home.config_path.stat()
    write_config(home, "[safety]\nhook_burst = 4\n")  # same size
    os.utime(home.config_path, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert load_config(home).safety.hook_burst == 4


def test_the_copy_is_validated_like_the_file(tmp_path):
    home = Home(str(tmp_path))
    write_config(home, "[safety]\nhook_burst = 3\n")
    load_config(home)
    copy = tmp_path / config_cache.COPY_NAME
    saved = json.loads(copy.read_text())
    assert saved["parsed"] == {"safety": {"hook_burst": 3}}
    copy.write_text(json.dumps({**saved, "parsed": {"safety": {"hook_burst": "ten"}}}))
    with pytest.raises(ConfigError, match="'safety.hook_burst' must be an integer"):
        load_config(home)


@pytest.mark.parametrize("copy", ["not json", '{"format": 1, "text": "other", "parsed": {}}',
                                  "[]", '{"format": 1, "text": "[safety]\\nhook_burst = 3\\n"}'])
def test_a_copy_that_does_not_fit_is_parsed_again_and_replaced(tmp_path, copy):
    home = Home(str(tmp_path))
    write_config(home, "[safety]\nhook_burst = 3\n")
    (tmp_path / config_cache.COPY_NAME).write_text(copy)
    assert load_config(home).safety.hook_burst == 3
    assert json.loads((tmp_path / config_cache.COPY_NAME).read_text())["parsed"] == {
        "safety": {"hook_burst": 3}}


@pytest.mark.parametrize("kind", ["fifo", "folder", "link"])
def test_a_copy_that_is_no_regular_file_is_left_alone(tmp_path, kind):
    home = Home(str(tmp_path))
    write_config(home, "[safety]\nhook_burst = 3\n")
    copy = tmp_path / config_cache.COPY_NAME
    {"fifo": lambda: os.mkfifo(copy), "folder": copy.mkdir,
     "link": lambda: copy.symlink_to(tmp_path / "elsewhere")}[kind]()
    assert load_config(home).safety.hook_burst == 3  # a FIFO does not hang it
    assert not (tmp_path / "elsewhere").exists()


def test_what_json_cannot_hold_is_not_copied(tmp_path):
    home = Home(str(tmp_path))
    write_config(home, "[safety]\nhook_burst = 3\nwhen = 1979-05-27\n")
    with pytest.raises(ConfigError, match="unknown key 'safety.when'"):
        load_config(home)
    assert not (tmp_path / config_cache.COPY_NAME).exists()


def test_invalid_toml_is_never_copied(tmp_path):
    home = Home(str(tmp_path))
    write_config(home, "[safety\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_config(home)
    assert not (tmp_path / config_cache.COPY_NAME).exists()
