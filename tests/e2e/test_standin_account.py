"""The stand-in playing a subscription account shared by several clients (`Account`):
driven with plain HTTP posts and a hand-wound clock, and once by the real Claude Code."""

import json
import subprocess
import threading
import urllib.error
import urllib.request

import pytest

from standin import Account, StandIn, client_tag, unified_headers

START = 1_000_000  # a whole epoch second: windows of 100 s end at 1_000_100, 1_000_200, ...


class FakeClock:
    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now


def post(url: str, session: str | None = None, body: dict | None = None):
    """One /v1/messages request: (status, headers with lower-cased keys, parsed body)."""
    headers = {"Content-Type": "application/json"}
    if session:
        headers["X-Claude-Code-Session-Id"] = session
    payload = body or {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    request = urllib.request.Request(f"{url}/v1/messages?beta=true", method="POST",
                                     data=json.dumps(payload).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, got, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, got, raw = error.code, error.headers, error.read()
    return status, {k.lower(): v for k, v in got.items()}, json.loads(raw)


def unified(headers: dict) -> dict:
    return {k: v for k, v in headers.items() if k.startswith("anthropic-ratelimit-unified")}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def account_at(clock):
    """A started stand-in with an Account(window_s=100, allowance=N) on the fake clock."""
    servers = []

    def make(allowance: int = 5, **options) -> tuple[StandIn, Account]:
        account = Account(100, allowance, clock=clock, **options)
        servers.append(StandIn(account).start())
        return servers[-1], account

    yield make
    for server in servers:
        server.stop()


def test_each_accepted_request_carries_its_count_as_utilization_and_the_window_end(
        account_at):
    standin, _ = account_at(allowance=5)
    replies = [post(standin.url) for _ in range(5)]
    assert [status for status, _, _ in replies] == [200] * 5
    assert [unified(headers) for _, headers, _ in replies] == [
        unified_headers(utilization, START + 100, status)
        for utilization, status in [(0.2, "allowed"), (0.4, "allowed"), (0.6, "allowed"),
                                    (0.8, "allowed_warning"), (1.0, "allowed_warning")]]
    assert replies[0][1]["anthropic-ratelimit-unified-5h-utilization"] == "0.2"
    assert replies[0][1]["anthropic-ratelimit-unified-representative-claim"] == "five_hour"
    assert replies[0][2]["content"] == [{"type": "text", "text": "Done."}]


def test_past_the_allowance_a_request_is_refused_with_a_rejected_429(account_at):
    standin, account = account_at(allowance=2)
    post(standin.url), post(standin.url)
    status, headers, body = post(standin.url)
    assert status == 429
    assert unified(headers) == unified_headers(1.0, START + 100, "rejected")
    assert body["error"]["type"] == "rate_limit_error"
    assert post(standin.url)[0] == 429
    window = account.window_at(START)
    assert (window.accepted, window.refused) == (2, 2)
    assert [r.accepted for r in account.requests] == [True, True, False, False]


def test_warning_at_sets_where_allowed_turns_to_allowed_warning(account_at):
    standin, _ = account_at(allowance=4, warning_at=0.5)
    statuses = [post(standin.url)[1]["anthropic-ratelimit-unified-status"] for _ in range(4)]
    assert statuses == ["allowed", "allowed_warning", "allowed_warning", "allowed_warning"]


def test_a_fresh_window_begins_every_window_s_seconds_even_after_an_empty_one(
        account_at, clock):
    standin, account = account_at(allowance=1)
    assert post(standin.url)[0] == 200
    clock.now = START + 99.9
    assert post(standin.url)[0] == 429
    clock.now = START + 100  # the window's end is the next one's start
    status, headers, _ = post(standin.url)
    assert status == 200 and headers["anthropic-ratelimit-unified-reset"] == str(START + 200)
    assert headers["anthropic-ratelimit-unified-5h-utilization"] == "1.0"
    clock.now = START + 350  # window 2 passed without a request
    status, headers, _ = post(standin.url)
    assert status == 200 and headers["anthropic-ratelimit-unified-reset"] == str(START + 400)
    assert [(r.window, r.accepted) for r in account.requests] == [
        (0, True), (0, False), (1, True), (3, True)]
    assert [(w["window"], w["used"], w["refused"]) for w in account.report()] == [
        (0, 1, 1), (1, 1, 0), (2, 0, 0), (3, 1, 0)]


def test_start_defaults_to_the_clocks_current_whole_second(clock):
    clock.now = START + 0.7
    account = Account(60, 3, clock=clock)
    assert account.start == START
    assert account(1, {}).headers["anthropic-ratelimit-unified-reset"] == str(START + 60)


def test_an_explicit_start_places_the_windows(clock):
    account = Account(100, 3, clock=clock, start=START - 30)
    assert account(1, {}).headers["anthropic-ratelimit-unified-reset"] == str(START + 70)


@pytest.mark.parametrize("options", [dict(window_s=1.5, allowance=1),
                                     dict(window_s=0, allowance=1),
                                     dict(window_s=10, allowance=0),
                                     dict(window_s=10, allowance=1, start=START + 0.5),
                                     dict(window_s=10, allowance=1, window_name="daily")])
def test_windows_must_be_whole_seconds_and_the_allowance_positive(options, clock):
    with pytest.raises(ValueError):
        Account(clock=clock, **options)


def test_a_seven_day_account_sends_the_7d_headers(clock):
    headers = Account(100, 2, clock=clock, window_name="seven_day")(1, {}).headers
    assert headers["anthropic-ratelimit-unified-7d-utilization"] == "0.5"
    assert headers["anthropic-ratelimit-unified-representative-claim"] == "seven_day"


def test_concurrent_clients_never_get_more_than_the_allowance_in_one_window(
        account_at, clock):
    standin, account = account_at(allowance=10)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for _ in range(4):
            status, headers, _ = post(standin.url, session=f"client-{n}")
            with lock:
                results.append((status, headers))

    def burst() -> list[tuple[int, dict]]:
        results.clear()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        return list(results)

    for window in range(2):
        clock.now = START + window * 100 + 50
        replies = burst()
        accepted = [h for status, h in replies if status == 200]
        assert len(replies) == 32 and len(accepted) == 10
        # each count from 1 to N was handed out exactly once
        assert sorted(float(h["anthropic-ratelimit-unified-5h-utilization"])
                      for h in accepted) == [k / 10 for k in range(1, 11)]
        assert all(h["anthropic-ratelimit-unified-status"] == "rejected"
                   for status, h in replies if status == 429)
    assert [(w["used"], w["refused"]) for w in account.report()] == [(10, 22), (10, 22)]
    assert sum(account.report()[0]["clients"].values()) == 10


def test_report_gives_each_windows_share_and_whether_it_was_observed_whole(
        account_at, clock):
    standin, account = account_at(allowance=4)
    clock.now = START + 150  # the first request falls in window 1; window 0 passed unseen
    for session in ["a", "b", "a"]:
        post(standin.url, session=session)
    clock.now = START + 210
    for _ in range(5):
        post(standin.url, session="b")
    clock.now = START + 320
    post(standin.url)
    assert account.first_window_start == START + 100
    report = account.report(now=START + 399)
    assert report == [
        {"window": 0, "start": START, "end": START + 100, "used": 0, "refused": 0,
         "share": 0.0, "clients": {}, "whole": False},
        {"window": 1, "start": START + 100, "end": START + 200, "used": 3, "refused": 0,
         "share": 0.75, "clients": {"a": 2, "b": 1}, "whole": True},
        {"window": 2, "start": START + 200, "end": START + 300, "used": 4, "refused": 1,
         "share": 1.0, "clients": {"b": 4}, "whole": True},
        {"window": 3, "start": START + 300, "end": START + 400, "used": 1, "refused": 0,
         "share": 0.25, "clients": {None: 1}, "whole": False},
    ]
    assert account.report(now=START + 400)[3]["whole"] is True
    # the clock's now by default, and windows up to it even without a request
    clock.now = START + 650
    assert [(w["window"], w["used"], w["whole"]) for w in account.report()[3:]] == [
        (3, 1, True), (4, 0, True), (5, 0, True), (6, 0, False)]


def test_report_before_any_request_has_no_whole_window(clock):
    account = Account(100, 4, clock=clock)
    clock.now = START + 250
    assert [(w["window"], w["whole"]) for w in account.report()] == [
        (0, False), (1, False), (2, False)]
    assert account.first_window_start is None


def test_the_client_tag_is_the_session_header_else_the_metadata_user_id():
    assert client_tag({"x-claude-code-session-id": "s1"}, {"metadata": {"user_id": "u"}}) \
        == "s1"
    assert client_tag({"X-Claude-Code-Session-Id": "s2"}, {}) == "s2"
    assert client_tag({}, {"metadata": {"user_id": "u"}}) == "u"
    assert client_tag(None, {"metadata": {}}) is None
    assert client_tag({}, {}) is None


def test_the_account_records_each_requests_time_window_and_client(account_at, clock):
    standin, account = account_at(allowance=1)
    post(standin.url, session="s1")
    clock.now = START + 42
    post(standin.url, body={"metadata": {"user_id": "u1"}, "messages": []})
    assert [(r.time, r.window, r.accepted, r.client) for r in account.requests] == [
        (START, 0, True, "s1"), (START + 42, 0, False, "u1")]
    assert standin.request_headers[0]["x-claude-code-session-id"] == "s1"


def test_two_accounts_are_two_stand_ins_counting_apart(account_at):
    first, first_account = account_at(allowance=1)
    second, second_account = account_at(allowance=1)
    assert post(first.url)[0] == 200
    assert post(second.url)[0] == 200
    assert post(first.url)[0] == 429
    assert [w["refused"] for w in first_account.report()] == [1]
    assert [w["refused"] for w in second_account.report()] == [0]


def test_the_plain_call_is_a_policy_too(clock):
    account = Account(100, 1, clock=clock, text="Hello.")
    assert account(1, {}).text == "Hello."
    assert account(2, {}).status == 429
    assert account.requests[0].client is None


def test_claude_code_in_subscription_mode_reports_the_accounts_utilization_and_reset(claude):
    account = Account(3600, 4)
    claude.standin.policy = account
    env = claude.env(CLAUDE_CODE_OAUTH_TOKEN="standin-oauth")
    env.pop("ANTHROPIC_API_KEY")
    done = subprocess.run([str(claude.binary), "-p", "hi", "--output-format", "stream-json",
                           "--verbose"], cwd=claude.project, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    events = [line for line in lines if line.get("type") == "rate_limit_event"]
    assert events, done.stdout
    (request,) = account.requests
    end = account.window_at(request.time).end
    five_hour = events[0]["rate_limit_info"]["unifiedWindows"]["five_hour"]
    assert five_hour["utilization"] == 1 / 4
    assert five_hour["resetsAt"] == end
    assert five_hour["status"] == "allowed"
    # the client tag is Claude Code's session id
    session_ids = {line.get("session_id") for line in lines} - {None}
    assert request.client in session_ids
    assert account.report()[-1]["used"] == 1
