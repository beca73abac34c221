"""What a session used: the model and the tokens (input, output, cache write, cache read)
read from Claude Code's own result line, as recorded from the real CLI
(tests/fixtures/claude-code-results), every number range-checked like the cost."""

import json
from pathlib import Path

import pytest

from torchsm.agent.session import SessionOutput
from torchsm.usage.ledger import MAX_TOKENS, checked_report, main_model, reported

RESULTS = Path(__file__).parent / "fixtures" / "claude-code-results"
# what the stand-in answered in the recorded session (README there): two requests
RECORDED = {"model": "claude-opus-5-5", "input_tokens": 1500, "output_tokens": 65,
            "cache_creation_tokens": 3100, "cache_read_tokens": 4000, "num_turns": 2,
            "cost_usd": 0.0236}


def read(name: str) -> SessionOutput:
    output = SessionOutput(claude_code=True)
    output.feed_block((RESULTS / name).read_text())
    return output


def usage_of(fields: dict) -> dict:
    return {key: fields[key] for key in RECORDED}


@pytest.mark.parametrize("name", ["stream-json-tool-round.jsonl", "json-result.json"])
def test_the_recorded_result_gives_model_and_tokens(name):
    output = read(name)
    assert usage_of(reported(output.result, output.started_model)) == RECORDED


def test_stream_json_names_the_model_the_session_started_with():
    assert read("stream-json-tool-round.jsonl").started_model == "claude-opus-5-5"


def test_without_a_result_the_started_model_is_kept():
    # a session killed before its result line: the model it ran is still known
    output = SessionOutput(claude_code=True)
    output.feed_block((RESULTS / "stream-json-tool-round.jsonl").read_text().splitlines(True)[0])
    fields = reported(output.result or {}, output.started_model)
    assert fields["model"] == "claude-opus-5-5" and fields["input_tokens"] is None


def per_model(**output_tokens) -> dict:
    return {name: {"inputTokens": 10, "outputTokens": out} for name, out in output_tokens.items()}


@pytest.mark.parametrize("model_usage, expected", [
    (per_model(**{"claude-opus-5-5": 65}), "claude-opus-5-5"),
    # a small model that read a lot (titles, summaries) but wrote little is not the main one
    (per_model(**{"claude-haiku-4-5": 30, "claude-sonnet-4-5": 900}), "claude-sonnet-4-5"),
    (per_model(**{"claude-sonnet-4-5": 900, "claude-haiku-4-5": 30}), "claude-sonnet-4-5"),
    (per_model(**{"claude-opus-4-1@20250805": 7}), "claude-opus-4-1@20250805"),
    ({}, None),
    (None, None),
    ("claude-opus", None),
    ({"claude-opus": "many"}, "claude-opus"),  # the name is good; its count is not
])
def test_the_main_model_is_the_one_that_wrote_most(model_usage, expected):
    assert main_model(model_usage)[0] == expected


@pytest.mark.parametrize("name", ["", "x" * 65, "claude\nopus", "rm -rf /", "-opus"])
def test_a_model_name_that_is_no_name_is_dropped_with_a_warning(name):
    fields, warnings = checked_report({"modelUsage": {name: {"outputTokens": 5}}})
    assert fields["model"] is None and any("model" in w for w in warnings)


def test_a_bad_started_model_is_dropped_with_a_warning():
    fields, warnings = checked_report({}, "x" * 200)
    assert fields["model"] is None and any("model" in w for w in warnings)


@pytest.mark.parametrize("field", ["cache_creation_input_tokens", "cache_read_input_tokens",
                                   "input_tokens", "output_tokens"])
@pytest.mark.parametrize("value", [-1, MAX_TOKENS + 1, 2.5, "12", True, float("nan")])
def test_token_counts_are_range_checked(field, value):
    fields, warnings = checked_report({"usage": {field: value}})
    column = {"cache_creation_input_tokens": "cache_creation_tokens",
              "cache_read_input_tokens": "cache_read_tokens"}.get(field, field)
    assert fields[column] is None
    assert [w for w in warnings if w.startswith(f"usage.{field} ")]


def test_the_json_fixture_is_one_result_object():
    assert json.loads((RESULTS / "json-result.json").read_text())["type"] == "result"


def test_the_init_is_looked_for_until_the_first_assistant_message():
    init = json.dumps({"type": "system", "subtype": "init", "model": "claude-opus-5-5"})
    hook = json.dumps({"type": "system", "subtype": "hook_response", "output": "context"})
    assistant = json.dumps({"type": "assistant", "message": {"content": [
        {"type": "text", "text": "hi"}]}})
    late = SessionOutput(claude_code=True)
    for line in (hook, init):  # separate blocks, a line before it
        late.feed(line)
    assert late.started_model == "claude-opus-5-5"
    after = SessionOutput(claude_code=True)
    for line in (assistant, init):  # an "init" after the conversation began is no init
        after.feed(line)
    assert after.started_model is None
