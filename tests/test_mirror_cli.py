"""`mirror status|flush` as a user sees them: output, --json, one-line errors."""

from __future__ import annotations

import subprocess

from torchsm.mirror.streams import MESSAGES_STREAM, OPS_STREAM

from helpers import torchsm_executable as torchsm_command


def test_status_masks_the_password_and_reports_the_outage(cli, refused_url):
    url = refused_url.replace("redis://", "redis://user:s3cret@")
    cli("nova", "add", "torch")
    cli("transition", "torch", "cool", "--for", "5", TORCHSM_REDIS_URL=url)
    status = cli("mirror", "status", "--json", TORCHSM_REDIS_URL=url).json()
    masked = refused_url.replace("redis://", "redis://user:****@")
    assert status["url"] == masked and "s3cret" not in str(status)
    assert (status["enabled"], status["reachable"]) == (True, False)
    assert status["error"] == "connection refused" and status["last_success"] is None
    assert status["last_outage"]["error"] == "connection refused"
    assert status["outage_remembered"] is True
    assert status["queued"] == {OPS_STREAM: 1, MESSAGES_STREAM: 0}
    text = cli("mirror", "status", TORCHSM_REDIS_URL=url).out
    assert f"url                                {masked}\n" in text
    assert "reachable                          no (connection refused)\n" in text
    assert "queued torch.continuous.ops        1\n" in text and "s3cret" not in text


def test_status_when_up(cli, redis_db):
    status = cli("mirror", "status", "--json", TORCHSM_REDIS_URL=redis_db.url).json()
    assert status["reachable"] is True and status["error"] is None
    assert status["latency_ms"] > 0 and status["last_success"].endswith("Z")
    assert "reachable                          yes (" in cli(
        "mirror", "status", TORCHSM_REDIS_URL=redis_db.url).out


def test_status_when_off(cli):
    status = cli("mirror", "status", "--json").json()
    assert (status["url"], status["enabled"], status["reachable"]) == ("off", False, None)
    assert 'reachable                          off (redis_url = "off")' in cli(
        "mirror", "status").out


def test_flush_output(cli, redis_db, refused_url):
    cli("nova", "add", "torch")
    assert cli("mirror", "flush", TORCHSM_REDIS_URL=redis_db.url).out == "nothing queued\n"
    cli("transition", "torch", "cool", "--for", "5", TORCHSM_REDIS_URL=refused_url)
    cli("message", "send", "torch", "torch", "note to self", TORCHSM_REDIS_URL=refused_url)
    report = cli("mirror", "flush", "--json", TORCHSM_REDIS_URL=redis_db.url).json()
    assert (report["published"], report["duplicates"], report["rejected"]) == (2, 0, 0)
    assert report["streams"][MESSAGES_STREAM]["published"] == 1


def test_flush_errors_are_one_line(cli, refused_url):
    cli("nova", "add", "torch")
    cli("transition", "torch", "cool", "--for", "5", TORCHSM_REDIS_URL=refused_url)
    down = cli.fails("mirror", "flush", TORCHSM_REDIS_URL=refused_url)
    assert down.err == (f"torchsm: error: mirror unreachable at {refused_url}: "
                        "connection refused; 1 entry stays queued\n")
    off = cli.fails("mirror", "flush")
    assert off.err == ('torchsm: error: the mirror is off (redis_url = "off"): '
                       "there is nothing to flush to\n")


def test_a_bad_url_is_a_config_error(cli):
    assert cli.fails("mirror", "flush", TORCHSM_REDIS_URL="http://x").err == \
        "torchsm: error: redis_url: not a redis URL: 'http://x'\n"


def test_the_url_comes_from_the_config_file(cli, home, redis_db):
    home.config_path.write_text(f'redis_url = "{redis_db.url}"\n')
    env = cli.env()
    env.pop("TORCHSM_REDIS_URL")
    out = subprocess.run([*torchsm_command(), "mirror", "status", "--json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert f'"url": "{redis_db.url}"' in out and '"reachable": true' in out
