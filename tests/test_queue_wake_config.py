"""The [queue] and [wake.rules] sections of torchsm.toml are validated, naming the key."""

from __future__ import annotations

import pytest

from torchsm.config import parse_config
from torchsm.errors import ConfigError


def test_queue_and_wake_rules_parse():
    config = parse_config({"queue": {"lease_s": 90, "max_attempts": 5},
                           "wake": {"rules": {"critical": {"pager": r"\bpage\b"}},
                                    "senders": {"ci": -1}}})
    assert (config.queue.lease_s, config.queue.max_attempts) == (90.0, 5)
    assert config.wake.rules == {"critical": {"pager": r"\bpage\b"}}


@pytest.mark.parametrize("raw,message", [
    ({"queue": {"max_attempts": 0}}, "'queue.max_attempts' must be at least 1"),
    ({"queue": {"lease_s": 0}}, "'queue.lease_s' must be a positive number of seconds"),
    ({"queue": {"lease": 5}}, "unknown key 'queue.lease'"),
    ({"wake": {"rules": {"urgent": {}}}}, "'wake.rules.urgent' is not a tier"),
    ({"wake": {"rules": {"low": "x"}}}, "'wake.rules.low' must be a table of name = regex"),
    ({"wake": {"rules": {"low": {"x": 1}}}}, "'wake.rules.low.x' must be a string"),
    ({"wake": {"rules": {"low": {"x": "("}}}}, "'wake.rules.low.x' is not a valid regex"),
])
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)
