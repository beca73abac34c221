
import pytest

from torchsm.config import (Config, DEFAULT_REDIS_URL, Home, load_config, parse_config,
                            resolve_home)
from torchsm.errors import ConfigError

from helpers import Cli, write_config


def test_home_resolution_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TORCHSM_HOME", raising=False)
    assert resolve_home().path == tmp_path / "var"
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
