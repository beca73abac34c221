"""Home resolution and `torchsm.toml`: every duration and limit of the contract, validated.

A config is a tree of records (torchsm.records: immutable tuples, cheap to define: this
module is on the hook path, where the frozen dataclasses it had cost ~20 ms of start-up, and
`typing`, `pathlib` and `re` would cost ~10 ms more). Every key is optional; an unknown key
or a value of the wrong type is an error that names the key, so a typo never silently means
"default".
"""

from __future__ import annotations

import math
import os
import stat

from torchsm import config_cache
from torchsm.errors import (ConfigError, ConfigWrongType, HomeNotAFolder, HomeUnusable,
                            InvalidConfigValue, UnknownConfigKey)
from torchsm.records import record
from torchsm.tiers import Tier

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for annotations only: every hook call would import them
    from pathlib import Path
    from typing import Any

DEFAULT_REDIS_URL = "redis://127.0.0.1:18000/0"
CONFIG_FILE = "torchsm.toml"
DB_FILE = "torchsm.db"


@record
class Home:
    """The folder that holds one installation's data. `root` is its absolute path as text:
    the hot path names its files with os.path (`db_file`, `config_file`); `path` and the
    `*_path` properties are the same as pathlib Paths, for everything else."""

    root: str

    @property
    def path(self) -> Path:
        from pathlib import Path

        return Path(self.root)

    @property
    def db_file(self) -> str:
        return os.path.join(self.root, DB_FILE)

    @property
    def config_file(self) -> str:
        return os.path.join(self.root, CONFIG_FILE)

    @property
    def db_path(self) -> Path:
        return self.path / DB_FILE

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def queue_dir(self) -> Path:
        return self.path / "queue"

    @property
    def log_dir(self) -> Path:
        return self.path / "log"

    def is_initialised(self) -> bool:
        return self.holds_file(self.db_file)

    def holds_file(self, path: str | os.PathLike) -> bool:
        """Whether `path`, in this home, is a regular file. HomeUnusable when the home
        cannot be looked into, or is not a folder: never mistaken for "not initialised"."""
        try:
            return stat.S_ISREG(os.stat(path).st_mode)
        except FileNotFoundError:
            return False
        except NotADirectoryError:
            raise HomeNotAFolder(self.root) from None
        except PermissionError:
            raise HomeUnusable(f"cannot read the torchsm home {self.root}: permission "
                               "denied") from None


@record
class HomeChoice:
    """Which folder is the home, and why (what `init`, `status` and `doctor` say)."""

    folder: str
    reason: str


PER_USER_REASON = "the per-user default; --home or TORCHSM_HOME to choose another"
CHECKOUT_REASON = "./var of this torchsm checkout"


def home_choice(option: str | os.PathLike | None = None) -> HomeChoice:
    """`--home DIR`, else `$TORCHSM_HOME`, else `./var` where it is a torchsm home (see
    `is_checkout_home`), else the per-user `$XDG_STATE_HOME/torchsm`. Hooks and
    supervisors always pass --home, so the hot path stops at the first test."""
    if option:
        return HomeChoice(os.fspath(option), "--home")
    if os.environ.get("TORCHSM_HOME"):
        return HomeChoice(os.environ["TORCHSM_HOME"], "TORCHSM_HOME")
    if is_checkout_home("var"):
        return HomeChoice("var", CHECKOUT_REASON)
    return HomeChoice(os.path.join(user_state_dir(), "torchsm"), PER_USER_REASON)


def resolve_home(option: str | os.PathLike | None = None) -> Home:
    """The home `home_choice` names, made absolute."""
    chosen = home_choice(option).folder
    return Home(os.path.realpath(os.path.expanduser(chosen)))  # as Path.expanduser().resolve()


def is_checkout_home(var: str) -> bool:
    """Whether `var` (in the current folder) is where a home given by no one lives: it
    holds a torchsm database already, or it is the `var/` of a torchsm checkout (a
    pyproject.toml naming torchsm beside it), as the quick start makes. Any other folder's
    `var/` belongs to its own project."""
    if os.path.isfile(os.path.join(var, DB_FILE)):
        return True
    return os.path.isdir(var) and _names_torchsm("pyproject.toml")


def _names_torchsm(pyproject: str) -> bool:
    import tomllib

    try:
        with open(pyproject, "rb") as file:
            return tomllib.load(file).get("project", {}).get("name") == "torchsm"
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return False


def user_state_dir() -> str:
    """`$XDG_STATE_HOME`, else `~/.local/state` (the XDG base directory spec: a relative
    path in the variable is invalid, and ignored)."""
    state = os.environ.get("XDG_STATE_HOME", "")
    return state if os.path.isabs(state) else os.path.expanduser("~/.local/state")


@record
class SafetyConfig:
    hook_burst: int = 10
    hook_window_s: float = 60
    cooldown_base_s: float = 60
    cooldown_cap_s: float = 600
    cooldown_jitter: float = 0.2
    clean_hour_s: float = 3600
    meditation_s: float = 1800
    bangs_to_meditate: int = 5
    cooldowns_to_meditate: int = 3
    # the Stop hook stops continuing when this many continuations in a row ended with
    # the same last message, or each failed its item
    no_progress_continuations: int = 3


@record
class SupervisorConfig:
    max_sessions_per_hour: int = 12
    max_continuations: int = 8
    session_timeout_s: float = 3600
    max_cost_usd_per_day: float = 0
    stop_grace_s: float = 10  # after SIGTERM, how long an agent may take before SIGKILL
    crash_window_s: float = 5  # a failure this soon after the start is a crash (a bang)
    load_stretch_above: float = 1.0  # 1-min load per core above which rests stretch; 0: off
    # this many sessions in a row that end with the same error, fail their item or end
    # with the same last message cool the Nova (0: off)
    no_progress_sessions: int = 3


@record
class UsageConfig:
    slow_utilization: float = 0.8
    stop_utilization: float = 0.95
    reset_margin_s: float = 120
    auto_resume: bool = True
    max_running_sessions: int = 0  # sessions of one account running at once (0: no cap)
    start_stagger_s: float = 5  # two Novas of one account start this far apart (0: off)


@record
class WakeConfig:
    quiet_hours: str = ""
    load_defer_per_core: float = 2.0  # 0: never defer for load
    repeat_window_s: float = 600
    senders: dict[str, int] = {}
    # tier -> {rule name: regex}; adds to or overrides torchsm.work.wake's default rules by
    # name, and an empty regex switches a default rule off
    rules: dict[str, dict[str, str]] = {}


@record
class QueueConfig:
    lease_s: float = 1800.0
    max_attempts: int = 3


@record
class DatabaseConfig:
    lock_timeout_s: float = 5.0


@record
class MirrorConfig:
    maxlen: int = 100_000
    connect_timeout_s: float = 0.25
    outage_memory_s: float = 30.0
    dedup_ttl_s: float = 7 * 24 * 3600.0  # how long a replay recognises an entry as mirrored


@record
class DreamsConfig:
    interval_s: float = 3600.0  # at most one supervisor-started dream per Nova this often
    span_max_s: float = 7 * 86400.0  # a dream reads no further back than this
    rows_max: int = 5000  # nor more than this many rows of any one source
    propose_work: bool = False  # a proposal may add a `low` work item
    max_work_per_day: int = 3  # work items dreams may add per Nova per day


@record
class MemoryConfig:
    # SessionStart: the room for the latest dream's insights (up to a third) and the
    # memories, out of the 9,000 characters a hook prints; the task or snapshot and the
    # messages keep the rest
    context_chars: int = 6000
    max_text_chars: int = 2000  # a longer memory is cut, with a warning
    max_per_nova: int = 200  # live memories per Nova (shared ones count apart); older and
    # weaker ones are aged out beyond it
    episode_ttl_s: float = 30 * 86400.0  # an episode no dream strengthened fades after this


@record
class AlertsConfig:
    """When torchsm.alerts.conditions raises an alert, and how it reaches a person. A count of 0
    turns its condition off."""

    bangs_per_hour: int = 3  # bangs of one Nova within an hour
    meditations_per_day: int = 2  # meditations of one Nova within 24 hours
    dead_items: int = 1  # dead work items in the queue
    refused_requests: int = 1  # requests the API refused (429, billing, auth) within an hour
    limit_hold_s: float = 0  # a Nova held by a usage limit this long (0: at once)
    heartbeat_s: float = 300  # a supervisor silent this long has stopped (0: off)
    evaluate_every_s: float = 60  # how often each supervisor evaluates the conditions
    command: str = ""  # run by /bin/sh with the alert as JSON on stdin ("": none)
    command_timeout_s: float = 10
    command_attempts: int = 5  # tries per alert, one per evaluation, before giving up


@record
class LogsConfig:
    """HOME/log/NAME.log, what a Nova's agent printed (torchsm.agent.log): past `max_bytes`
    it becomes NAME.log.1, and the oldest of `keep` such files goes."""

    max_bytes: int = 16 * 1024 * 1024
    keep: int = 4  # a Nova's log takes at most (keep + 1) * max_bytes


@record
class ClusterConfig:
    """Several hosts on one server (the mirror's `redis_url`): torchsm.cluster."""

    host: str = ""  # this host's name in the cluster ("": the machine's host name)
    default: bool = False  # `queue add` puts items on the cluster work streams
    heartbeat_s: float = 5  # how often a host tells the server it is alive
    lease_s: float = 30  # a host silent this long is dead: its claims are taken over
    max_attempts: int = 0  # deliveries of an item before it is dead (0: [queue] max_attempts)
    enabled: bool = False  # supervisors take part: beat, run cluster work, share accounts
    sync_s: float = 1.0  # how often a supervisor syncs its account with the cluster


@record
class Config:
    redis_url: str = DEFAULT_REDIS_URL
    safety: SafetyConfig = SafetyConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    usage: UsageConfig = UsageConfig()
    wake: WakeConfig = WakeConfig()
    queue: QueueConfig = QueueConfig()
    db: DatabaseConfig = DatabaseConfig()
    mirror: MirrorConfig = MirrorConfig()
    dreams: DreamsConfig = DreamsConfig()
    memory: MemoryConfig = MemoryConfig()
    alerts: AlertsConfig = AlertsConfig()
    logs: LogsConfig = LogsConfig()
    cluster: ClusterConfig = ClusterConfig()
    # name -> raw table; validated and merged by torchsm.personalities
    personalities: dict[str, dict[str, Any]] = {}
    # account name -> overrides of [usage] keys and max_cost_usd_per_day
    accounts: dict[str, dict[str, Any]] = {}


def field_kinds(section: type) -> dict[str, type | str]:
    """Each field of a config section with its type (`"int"` -> int): what validation needs
    of typing.get_type_hints, without importing typing. A table's type stays its text."""
    return {name: _KINDS.get(text, text) for name, text in section.__annotations__.items()}


_KINDS = {"int": int, "float": float, "bool": bool, "str": str}
ACCOUNT_KEYS = {**field_kinds(UsageConfig), "max_cost_usd_per_day": float}


@record
class NumberRange:
    """Where one config number may lie. Every number must also be finite: TOML allows
    `inf` and `nan`, and a cooldown of `inf` committed to the database outlives the
    config that caused it."""

    low: float
    high: float
    above_low: bool = False  # the low end itself is refused
    kind: str = "number"  # duration | count | fraction | number: how errors phrase it


MAX_DURATION_S = 10 * 365 * 86400.0
MAX_COUNT = 1_000_000


def duration(positive: bool = False, low: float = 0) -> NumberRange:
    return NumberRange(low, MAX_DURATION_S, positive, "duration")


def count(low: int = 1, high: int = MAX_COUNT) -> NumberRange:
    return NumberRange(low, high, False, "count")


FRACTION = NumberRange(0, 1, False, "fraction")
UTILIZATION = NumberRange(0, 1, True, "fraction")  # 0 would mean "always at the limit"
LOAD_PER_CORE = NumberRange(0, 1000)  # 0: off
MONEY_PER_DAY = NumberRange(0, 1_000_000)  # USD; 0: no budget

# section.key -> its range; a test checks that every int/float field has one
RANGES: dict[str, NumberRange] = {
    "safety.hook_burst": count(1),
    "safety.hook_window_s": duration(positive=True),
    "safety.cooldown_base_s": duration(),
    "safety.cooldown_cap_s": duration(),
    "safety.cooldown_jitter": FRACTION,
    "safety.clean_hour_s": duration(positive=True),
    "safety.meditation_s": duration(),
    "safety.bangs_to_meditate": count(0),
    "safety.cooldowns_to_meditate": count(0),
    "safety.no_progress_continuations": count(0),  # 0: off
    "supervisor.max_sessions_per_hour": count(1),
    "supervisor.max_continuations": count(0),
    "supervisor.session_timeout_s": duration(positive=True),
    "supervisor.max_cost_usd_per_day": MONEY_PER_DAY,
    "supervisor.stop_grace_s": duration(),
    "supervisor.crash_window_s": duration(),
    "supervisor.load_stretch_above": LOAD_PER_CORE,
    "supervisor.no_progress_sessions": count(0),  # 0: off
    "usage.slow_utilization": UTILIZATION,
    "usage.stop_utilization": UTILIZATION,
    "usage.reset_margin_s": duration(),
    "usage.max_running_sessions": count(0),  # 0: no cap
    "usage.start_stagger_s": duration(),  # 0: off
    "wake.load_defer_per_core": LOAD_PER_CORE,
    "wake.repeat_window_s": duration(),
    "queue.lease_s": duration(positive=True),
    "queue.max_attempts": count(1),
    "db.lock_timeout_s": duration(),
    "mirror.maxlen": count(0, 10**9),  # 0: uncapped
    "mirror.connect_timeout_s": duration(positive=True),
    "mirror.outage_memory_s": duration(),
    "mirror.dedup_ttl_s": duration(low=1),  # Redis EX takes whole seconds, at least 1
    "dreams.interval_s": duration(),
    "dreams.span_max_s": duration(positive=True),
    "dreams.rows_max": count(1),
    "dreams.max_work_per_day": count(0),
    "memory.context_chars": count(0, 6000),  # of 9,000: the task keeps at least 3,000
    "memory.max_text_chars": count(1, 100_000),
    "memory.max_per_nova": count(1),
    "memory.episode_ttl_s": duration(positive=True),
    "alerts.bangs_per_hour": count(0),
    "alerts.meditations_per_day": count(0),
    "alerts.dead_items": count(0),
    "alerts.refused_requests": count(0),
    "alerts.limit_hold_s": duration(),
    "alerts.heartbeat_s": duration(),
    "alerts.evaluate_every_s": duration(positive=True),
    "alerts.command_timeout_s": duration(positive=True),
    "alerts.command_attempts": count(1, 100),
    "logs.max_bytes": count(4096, 2**40),  # a few lines at least, at most a TiB
    "logs.keep": count(0, 1000),  # 0: no old file kept
    "cluster.heartbeat_s": duration(positive=True),
    "cluster.lease_s": duration(positive=True),
    "cluster.max_attempts": count(0),  # 0: [queue] max_attempts
    "cluster.sync_s": duration(positive=True),
}


def check_number(key: str, value: int | float, allowed: NumberRange) -> None:
    """Refuse a number that is not finite or not in `allowed`, naming the key."""
    if not math.isfinite(value):
        raise InvalidConfigValue(key, f"must be a finite number, got {value}")
    if value < 0 <= allowed.low:
        raise InvalidConfigValue(key, f"must not be negative, got {value}")
    above = value > allowed.low if allowed.above_low else value >= allowed.low
    if allowed.kind == "fraction" and not (above and value <= allowed.high):
        bounds = "above 0 and at most 1" if allowed.above_low else "from 0 to 1"
        raise InvalidConfigValue(key, f"must be {bounds}, got {value}")
    if allowed.above_low and value <= allowed.low:
        what = "a positive number of seconds" if allowed.kind == "duration" \
            else f"above {allowed.low:g}"
        raise InvalidConfigValue(key, f"must be {what}, got {value}")
    if value < allowed.low:
        unit = " second" if allowed.kind == "duration" else ""
        raise InvalidConfigValue(key, f"must be at least {allowed.low:g}{unit}, got {value}")
    if value > allowed.high:
        limit = _plain(allowed.high)
        if allowed.kind == "duration":
            limit = f"{allowed.high / (365 * 86400):g} years ({limit} seconds)"
        raise InvalidConfigValue(key, f"must be at most {limit}, got {value:g}")


def _plain(number: float) -> str:
    """1000000 rather than 1e+06."""
    return f"{number:.0f}" if float(number).is_integer() else f"{number:g}"


def in_cluster(config: Config) -> bool:
    """Whether the home is a host of a cluster: `[cluster] enabled`, with a server. The one
    switch: beats, cluster work, shared accounts and grants, the intake."""
    return config.cluster.enabled and config.redis_url != "off"


def cluster_host(config: Config) -> str:
    """This host's name in the cluster: `[cluster] host`, else the machine's (checked as
    a host name by torchsm.cluster.settings, where the cluster is joined)."""
    return config.cluster.host or os.uname().nodename


def usage_for(config: Config, account: str) -> UsageConfig:
    """The [usage] settings of one account: [usage], overridden by [accounts.NAME]."""
    overrides = config.accounts.get(account) or {}
    return config.usage._replace(**{k: v for k, v in overrides.items()
                                    if k in UsageConfig._fields})


def cost_limit_for(config: Config, account: str) -> float:
    """The daily cost budget of one account (0: none)."""
    overrides = config.accounts.get(account) or {}
    return overrides.get("max_cost_usd_per_day", config.supervisor.max_cost_usd_per_day)


_SECTIONS = {
    "safety": SafetyConfig,
    "supervisor": SupervisorConfig,
    "usage": UsageConfig,
    "wake": WakeConfig,
    "queue": QueueConfig,
    "db": DatabaseConfig,
    "mirror": MirrorConfig,
    "dreams": DreamsConfig,
    "memory": MemoryConfig,
    "alerts": AlertsConfig,
    "logs": LogsConfig,
    "cluster": ClusterConfig,
}


def load_config(home: Home) -> Config:
    """Read HOME/torchsm.toml (if any) and apply `$TORCHSM_REDIS_URL`."""
    config = Config()
    if home.holds_file(home.config_file):
        config = parse_config(_read_toml(home.config_file))
    url = os.environ.get("TORCHSM_REDIS_URL")
    if url:
        config = config._replace(redis_url=url)
    return config


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")  # an editor's BOM is no reason to fail
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not valid UTF-8 (line {line}: byte "
                          f"0x{data[exc.start]:02x}); save it as UTF-8") from None
    parsed = config_cache.parsed_copy(path, text)
    if parsed is None:
        parsed = _parsed(path, text)
        config_cache.keep_parsed(path, text, parsed)
    return parsed


def _parsed(path: str, text: str) -> dict[str, Any]:
    import tomllib  # ~15 ms under load: only for a config that changed (torchsm.config_cache)

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") \
            from None


def parse_config(raw: dict[str, Any]) -> Config:
    """Validate a parsed TOML document into a Config; errors name the offending key."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "redis_url":
            values[key] = _check_type(key, value, str)
        elif key == "personalities":
            values[key] = _personality_tables(value)
        elif key == "accounts":
            values[key] = _account_tables(value)
        elif key in _SECTIONS:
            values[key] = _parse_section(key, value, _SECTIONS[key])
        else:
            raise UnknownConfigKey(key)
    return Config(**values)


def _parse_section(name: str, raw: Any, cls: type) -> Any:
    if not isinstance(raw, dict):
        raise ConfigWrongType(name, "a table")
    known = field_kinds(cls)
    values = {}
    for key, value in raw.items():
        qualified = f"{name}.{key}"
        if key not in known:
            raise UnknownConfigKey(qualified)
        if qualified == "wake.rules":
            values[key] = _wake_rules(qualified, value)
        elif known[key] == "dict[str, int]":
            values[key] = _sender_weights(qualified, value)
        else:
            values[key] = _check_value(qualified, value, known[key])
    if name == "wake" and not is_quiet_hours(values.get("quiet_hours", "")):
        raise InvalidConfigValue("wake.quiet_hours", 'must look like "22:00-07:00" or be empty')
    if name == "cluster":
        _check_cluster(cls(**values))
    return cls(**values)


def _account_tables(raw: Any) -> dict[str, dict[str, Any]]:
    from torchsm.names import is_name

    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise InvalidConfigValue("accounts", "must hold one table per account")
    tables = {}
    for name, table in raw.items():
        if not is_name(name):
            raise InvalidConfigValue(f"accounts.{name}",
                                     "is not a valid account name ([a-z0-9][a-z0-9_-]{0,31})")
        values = {}
        for key, value in table.items():
            if key not in ACCOUNT_KEYS:
                raise UnknownConfigKey(f"accounts.{name}.{key}", ACCOUNT_KEYS)
            # the same range as the [usage] or [supervisor] key it overrides
            section = "usage" if key in UsageConfig._fields else "supervisor"
            values[key] = _check_value(f"accounts.{name}.{key}", value, ACCOUNT_KEYS[key],
                                       RANGES.get(f"{section}.{key}"))
        tables[name] = values
    return tables


def _check_value(key: str, value: Any, kind: type,
                 allowed: NumberRange | None = None) -> Any:
    value = _check_type(key, value, kind)
    if kind in (int, float):
        check_number(key, value, allowed or RANGES[key])
    return value


def _check_type(key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigWrongType(key, _kind_name(kind), value)
    return value


def _kind_name(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[kind]


def _sender_weights(key: str, raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise ConfigWrongType(key, "a table")
    weights = {}
    for sender, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or not -4 <= value <= 4:
            raise ConfigWrongType(f"{key}.{sender}", "an integer from -4 to 4", value)
        weights[sender] = value
    return weights


def _wake_rules(key: str, raw: Any) -> dict[str, dict[str, str]]:
    tiers = [t.value for t in Tier]
    if not isinstance(raw, dict):
        raise ConfigWrongType(key, "a table")
    for tier, rules in raw.items():
        if tier not in tiers:
            raise InvalidConfigValue(f"{key}.{tier}", f"is not a tier ({', '.join(tiers)})")
        if not isinstance(rules, dict):
            raise ConfigWrongType(f"{key}.{tier}", "a table of name = regex")
        for name, pattern in rules.items():
            _check_regex(f"{key}.{tier}.{name}", pattern)
    return raw


def is_quiet_hours(text: str) -> bool:
    r"""Whether `text` is empty or a span of two clock times, `22:00-07:00` (00:00 to 23:59
    each). What the regex `^$|^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$` matched,
    trailing newline included, without compiling one on the hook path."""
    text = text[:-1] if text.endswith("\n") else text
    start, dash, end = text.partition("-")
    return text == "" or (dash == "-" and _is_clock_time(start) and _is_clock_time(end))


def _is_clock_time(text: str) -> bool:
    r"""`HH:MM`, 00:00 to 23:59; a digit is what the regex `\d` took (Unicode decimals)."""
    if len(text) != 5 or text[2] != ":" or not (text[:2] + text[3:]).isdecimal():
        return False
    hours, minutes = text[:2], text[3:]
    return (hours[0] in "01" or (hours[0] == "2" and hours[1] in "0123")) and minutes[0] in "012345"


def _check_regex(key: str, pattern: Any) -> None:
    import re

    if not isinstance(pattern, str):
        raise ConfigWrongType(key, "a string (a regex)", pattern)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise InvalidConfigValue(key, f"is not a valid regex: {exc}") from None


def _personality_tables(raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise InvalidConfigValue("personalities", "must hold one table per personality")
    from torchsm.personalities import validate_table

    for name, table in raw.items():
        validate_table(name, table)
    return raw


_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def is_host_name(text: str) -> bool:
    """Whether `text` can name a cluster host: `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`, what a
    machine's host name holds; never a `:`, which separates host and Nova in a consumer."""
    return (0 < len(text) <= 64 and text[0] not in "_.-"
            and all(c in _HOST_CHARACTERS for c in text))


def _check_cluster(cluster: ClusterConfig) -> None:
    if cluster.host and not is_host_name(cluster.host):
        raise InvalidConfigValue("cluster.host", "must be a host name "
                                 f"([A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}), got {cluster.host!r}")
    if cluster.lease_s <= cluster.heartbeat_s:
        raise InvalidConfigValue("cluster.lease_s", "must be longer than cluster.heartbeat_s "
                                 f"({cluster.heartbeat_s:g}), got {cluster.lease_s:g}: a live "
                                 "host would look dead between two heartbeats")
