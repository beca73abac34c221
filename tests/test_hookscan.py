"""`hooks scan`: a table of true and false positives, then files, settings and the CLI."""

import json
import os

import pytest

from torchsm.hooks.scanner import scan_paths, scan_text

A, S, L, K = "agent-from-hook", "self-reexec", "busy-restart-loop", "clear-api-key"

TABLE = [
    # agents started from a hook: the runaway loop
    ('claude -c -p "continue working"', {A}),
    ('claude -p "$PROMPT" --output-format json', {A}),
    ("claude --continue", {A}),
    ('exec claude --model opus --print "next"', {A}),
    ('/usr/local/bin/claude -p "go" &', {A}),
    ('nohup claude --resume "$SID" >/dev/null 2>&1 &', {A}),
    ('subprocess.run(["claude", "-p", prompt])', {A}),
    ('subprocess.Popen(["claude", "--continue"], start_new_session=True)', {A}),
    ('npx -y @anthropic-ai/claude-code -p "hi"', {A}),
    ('codex exec "fix the tests"', {A}),
    ('aider --message "continue"', {A}),
    # ...and what merely mentions them
    ("# never run claude -p from here", set()),
    ('cat "$CLAUDE_PROJECT_DIR/.claude/settings.json"', set()),
    ("claude --version", set()),
    ("mkdir -p ~/.claude/projects", set()),
    ('torchsm hook stop --nova torch', set()),
    ('echo "claude-code hooks installed"', set()),
    ("CLAUDE_CODE_MAX_RETRIES=2", set()),
    # re-executing itself
    ('exec "$0" "$@"', {S}),
    ("exec $0", {S}),
    ('exec "${BASH_SOURCE[0]}"', {S}),
    ('bash "$0" &', {S}),
    ('"$0" "$@" &', {S}),
    ("os.execv(sys.executable, [sys.executable] + sys.argv)", {S}),
    ('echo "usage: $0 EVENT"', set()),
    ('cd "$(dirname "$0")"', set()),
    ('here=$(dirname "$0")', set()),
    # API keys in clear
    ("export ANTHROPIC_API_KEY=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv", {K}),
    ("ANTHROPIC_AUTH_TOKEN: 'abcdefghijklmnopqrstuvwxyz0123'", {K}),
    ('api_key = "abcdefghijklmnopqrstuvwxyz123456"', {K}),
    ('ANTHROPIC_API_KEY="$(cat ~/.secrets/key)"', set()),
    ("export ANTHROPIC_API_KEY=$ANTHROPIC_API_KEY", set()),
    ('api_key = "<your key here>"', set()),
]


@pytest.mark.parametrize("line, rules", TABLE, ids=[row[0][:40] for row in TABLE])
def test_line_table(line, rules):
    assert {f.rule for f in scan_text("hook.sh", line + "\n")} == rules


LOOPS = [
    ("while true; do\n  torchsm hook stop\ndone\n", {L}),
    ("while :; do claude -p go; done\n", {L, A}),
    ("for ((;;)); do\n  ./restart-agent\ndone\n", {L}),
    ("while True:\n    subprocess.run(cmd)\nprint('never')\n", {L}),
    ("while true; do\n  run_once\n  sleep 5\ndone\n", set()),
    ("while true; do\n  read -r line || break\ndone\n", set()),
    ("while True:\n    work()\n    time.sleep(backoff)\n", set()),
    ('while [ "$n" -lt 3 ]; do\n  n=$((n+1))\ndone\n', set()),
]


@pytest.mark.parametrize("text, rules", LOOPS, ids=[row[0][:30] for row in LOOPS])
def test_loop_table(text, rules):
    assert {f.rule for f in scan_text("hook.sh", text)} == rules


def test_reported_lines_never_show_a_whole_key():
    [finding] = scan_text("x.sh", "export ANTHROPIC_API_KEY=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv\n")
    assert "AbCdEfGhIjKlMnOpQrStUv" not in finding.text and finding.text.startswith("export")


def test_a_script_calling_itself_by_path(tmp_path):
    script = tmp_path / "on-stop.sh"
    script.write_text("#!/bin/sh\nsleep 1\n/opt/hooks/on-stop.sh --again\n")
    [finding] = scan_paths([script])
    assert (finding.rule, finding.line, finding.file) == (S, 3, str(script))
    other = tmp_path / "other.sh"
    other.write_text("#!/bin/sh\n# calls on-stop.sh? no: mentions it\necho on-stop.sh\n")
    assert scan_paths([other]) == []


def test_settings_json_commands_env_and_the_scripts_they_name(tmp_path):
    project = tmp_path / "project"
    (project / ".claude").mkdir(parents=True)
    script = project / "hooks" / "continue.sh"
    script.parent.mkdir()
    script.write_text('#!/bin/bash\nclaude -c -p "keep going"\n')
    settings = {
        "env": {"ANTHROPIC_API_KEY": "sk-ant-api03-0123456789abcdefghij", "FOO": "bar"},
        "hooks": {
            "Stop": [{"hooks": [{"type": "command",
                                 "command": '"$CLAUDE_PROJECT_DIR"/hooks/continue.sh'}]}],
            "SessionEnd": [{"hooks": [{"type": "command", "command": "claude -p summarise"}]}],
            "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command",
                                                          "command": "torchsm hook pre-tool-use --nova t"}]}],
        },
    }
    path = project / ".claude" / "settings.json"
    path.write_text(json.dumps(settings, indent=2))
    findings = scan_paths([project / ".claude"])
    assert sorted((f.rule, os.path.basename(f.file)) for f in findings) == [
        (A, "continue.sh"), (A, "settings.json"), (K, "settings.json")]
    by_rule = {f.rule: f for f in findings if f.file == str(path)}
    assert path.read_text().splitlines()[by_rule[A].line - 1].strip().startswith('"command": "claude')
    assert "0123456789abcdefghij" not in str(findings)  # a key is never echoed in full
    assert by_rule[K].text == '"ANTHROPIC_API_KEY": "sk-ant…"'


def test_folders_skip_binary_files(tmp_path):
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "ok.sh").write_text("torchsm hook stop --nova t\n")
    assert scan_paths([tmp_path]) == []


def test_cli_exit_codes_and_output(bare_cli, tmp_path):
    good = tmp_path / "good.sh"
    good.write_text("#!/bin/sh\nexec torchsm hook stop --nova torch\n")
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nwhile true; do\n  claude -c -p next\ndone\n")
    assert bare_cli("hooks", "scan", str(good)).out == "no dangerous patterns found\n"
    result = bare_cli.fails("hooks", "scan", str(good), str(bad))
    assert f"{bad}:2: busy-restart-loop:" in result.out
    assert f"{bad}:3: agent-from-hook: claude -c -p next" in result.out
    assert "fix: a hook must never start an agent" in result.out
    assert result.err == "torchsm: error: 2 dangerous patterns found\n"
    as_json = bare_cli.fails("hooks", "scan", str(bad), "--json").json()
    assert [(f["line"], f["rule"]) for f in as_json] == [(2, L), (3, A)]
    missing = bare_cli.fails("hooks", "scan", str(tmp_path / "nope.sh"))
    assert missing.err == f"torchsm: error: no such file: {tmp_path / 'nope.sh'}\n"
