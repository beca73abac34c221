"""`torchsm hooks scan`: find the patterns that turn hooks into runaway loops.

Rules are data: an id, what is wrong, how to fix it, and a line matcher. Shell comments
are ignored; a settings.json is read as JSON (its hook commands and env), and the scripts
its hook commands name are scanned too.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

MAX_FILE_BYTES = 2_000_000


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    rule: str
    text: str
    fix: str

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.text.strip()[:120]}\n    fix: {self.fix}"


_AGENT = r"(?<![\w.$-])(?:claude|codex|gemini|aider)(?![\w./-])"
_AGENT_FLAGS = r"(?:-p|--print|-c|--continue|-r|--resume|exec|--message|-m)"
AGENT_CALL = re.compile(_AGENT + r"""[^\n|;&]*?(?:^|[\s"',\[])""" + _AGENT_FLAGS +
                        r"""(?=[\s"',\]=]|$)""")
NPX_AGENT = re.compile(r"\bnpx\s+(?:-y\s+)?@anthropic-ai/claude-code\b")
SELF_EXEC = re.compile(
    r"""\bexec\s+(?:["']?\$(?:0|\{0\}|\{BASH_SOURCE(?:\[0\])?\}|BASH_SOURCE)(?!\w))"""
    r"""|(?:^|[\s;&(])(?:bash|sh|zsh)\s+["']?\$(?:0|\{0\})\b"""
    r"""|(?:^|[\s;&(|])["']?\$(?:0|\{0\})["']?\s+(?:"\$@"|\$@|&)"""
    r"""|\bos\.exec\w*\(.*\bsys\.argv\b"""
)
ENDLESS_LOOP = re.compile(r"^\s*(?:while\s+(?:true\b|:(?=[\s;])|\[\s*1\s*\])|until\s+false\b)"
                          r"|^\s*for\s*\(\(\s*;\s*;\s*\)\)|^\s*while\s+True\s*:")
API_KEY = re.compile(
    r"""sk-ant-[A-Za-z0-9_-]{16,}"""
    r"""|(?i:(?:anthropic|openai)_api_key|api[_-]?key|auth_token)["']?\s*[:=]\s*["']?"""
    r"""(?!\$|\{\{|<|your|xxx|changeme|\*{3})[A-Za-z0-9_\-]{20,}"""
)

FIXES = {
    "agent-from-hook": "a hook must never start an agent; queue the work "
                       "(`torchsm queue add ...`) and let `torchsm run` start sessions",
    "self-reexec": "do not re-execute the hook; exit and let the supervisor decide "
                   "what runs next",
    "busy-restart-loop": "an endless loop without a sleep spins; bound it, sleep with "
                         "backoff, or use `torchsm run` (it has budgets and cooldowns)",
    "clear-api-key": "remove the key from the file and rotate it; let the agent inherit "
                     "its authentication from the environment",
}


def scan_paths(paths: list[str | os.PathLike]) -> list[Finding]:
    """Every finding in the given files and folders (recursively), sorted by place."""
    findings: list[Finding] = []
    seen: set[Path] = set()
    for path in paths:
        for file in _files(Path(path)):
            findings.extend(_scan_file(file, seen))
    return sorted(findings, key=lambda f: (f.file, f.line, f.rule))


def _files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if d not in (".git", "node_modules", "__pycache__")]
            yield from (Path(root) / name for name in sorted(files))
    elif path.exists():
        yield path
    else:
        raise FileNotFoundError(path)


def _scan_file(path: Path, seen: set[Path]) -> list[Finding]:
    resolved = path.resolve()
    if resolved in seen or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
        return []
    seen.add(resolved)
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return []  # binary or unreadable: not a hook script
    if path.suffix == ".json":
        settings = _parse_settings(text)
        if settings is not None:
            return _scan_settings(path, text, settings, seen)
    return scan_text(str(path), text)


def scan_text(name: str, text: str) -> list[Finding]:
    """The findings in one script's text."""
    lines = text.splitlines()
    code = [_strip_comment(line) for line in lines]
    findings = [Finding(name, number, rule, _shown(rule, lines[number - 1]), FIXES[rule])
                for number, line in enumerate(code, 1)
                for rule, matches in LINE_RULES if matches(line)]
    findings += [Finding(name, number, "busy-restart-loop", lines[number - 1],
                         FIXES["busy-restart-loop"]) for number in _loops_without_sleep(code)]
    findings += _self_calls(name, lines, code)
    return findings


LINE_RULES: list[tuple[str, Callable[[str], bool]]] = [
    ("agent-from-hook", lambda line: bool(AGENT_CALL.search(line) or NPX_AGENT.search(line))),
    ("self-reexec", lambda line: bool(SELF_EXEC.search(line))),
]


def _shown(rule: str, line: str) -> str:
    """The line as reported: a secret is shown only by its first characters."""
    if rule != "clear-api-key":
        return line
    return re.sub(r"(sk-ant-|[=:]\s*[\"']?)([A-Za-z0-9_\-]{20,})",
                  lambda m: m.group(1) + _redact(m.group(2)), line)


def _redact(secret: str) -> str:
    return secret[:6] + "…"


def _strip_comment(line: str) -> str:
    """Drop a shell/Python comment (a `#` at the start or after whitespace, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _loops_without_sleep(code: list[str]) -> list[int]:
    """Line numbers of endless loops whose body (up to its end) never sleeps or waits."""
    found = []
    for start, line in enumerate(code):
        if not ENDLESS_LOOP.search(line):
            continue
        body = _loop_body(code, start)
        if not re.search(r"\b(?:sleep|wait|read|inotifywait|timeout|break|exit|return)\b", body):
            found.append(start + 1)
    return found


def _loop_body(code: list[str], start: int) -> str:
    """The loop's text from its header to its end, without the endless condition itself."""
    header = ENDLESS_LOOP.sub("", code[start], count=1)
    if code[start].rstrip().endswith(":"):  # Python: the indented block
        indent = len(code[start]) - len(code[start].lstrip())
        end = start + 1
        while end < len(code) and (not code[end].strip()
                                   or len(code[end]) - len(code[end].lstrip()) > indent):
            end += 1
        return "\n".join([header, *code[start + 1:end]])
    depth, body = 0, []
    for line in [header, *code[start + 1:]]:
        body.append(line)
        depth += len(re.findall(r"\bdo\b", line)) - len(re.findall(r"\bdone\b", line))
        if depth <= 0 and re.search(r"\bdone\b", line):
            break
    return "\n".join(body)


def _self_calls(name: str, lines: list[str], code: list[str]) -> list[Finding]:
    """A script that runs itself through its own path (`/path/hook.sh`, `bash hook.sh`)."""
    base = re.escape(Path(name).name)
    pattern = re.compile(rf"(?:/|\b(?:bash|sh|zsh|exec|python3?|source)\s+|^\s*){base}"
                         rf"(?=[\s\"';&|)`]|$)")
    return [Finding(name, number, "self-reexec", lines[number - 1], FIXES["self-reexec"])
            for number, line in enumerate(code, 1)
            if pattern.search(line) and not SELF_EXEC.search(line)
            and not re.match(r"\s*(?:echo|printf|logger)\b", line)]


def _parse_settings(text: str) -> dict | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and ("hooks" in data or "env" in data) else None


def _scan_settings(path: Path, text: str, settings: dict, seen: set[Path]) -> list[Finding]:
    findings = []
    for command in _hook_commands(settings):
        line = _line_of(text, command)
        findings += [Finding(str(path), line, rule, command, FIXES[rule])
                     for rule, matches in LINE_RULES if matches(command)]
        for script in _scripts_named(command, path):
            findings += _scan_file(script, seen)
    env = settings.get("env")
    if isinstance(env, dict):
        for key, value in env.items():
            if isinstance(value, str) and API_KEY.search(f"{key}={value}"):
                findings.append(Finding(str(path), _line_of(text, value), "clear-api-key",
                                        f'"{key}": "{_redact(value)}"', FIXES["clear-api-key"]))
    findings += [f for f in scan_text(str(path), text) if f.rule == "clear-api-key"
                 and not any(g.rule == f.rule and g.line == f.line for g in findings)]
    return findings


def _hook_commands(settings: dict) -> Iterator[str]:
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return
    for groups in hooks.values():
        for group in groups if isinstance(groups, list) else []:
            for hook in (group.get("hooks") or []) if isinstance(group, dict) else []:
                if isinstance(hook, dict) and isinstance(hook.get("command"), str):
                    yield hook["command"]


def _scripts_named(command: str, settings_path: Path) -> Iterator[Path]:
    project = settings_path.parent.parent
    for word in re.findall(r"""[^\s;&|]+""", command.replace('"', "").replace("'", "")):
        word = word.replace("$CLAUDE_PROJECT_DIR", str(project)).replace(
            "${CLAUDE_PROJECT_DIR}", str(project))
        candidate = Path(word).expanduser()
        if "/" in word and candidate.is_file():
            yield candidate


def _line_of(text: str, fragment: str) -> int:
    escaped = json.dumps(fragment)[1:-1]
    index = text.find(escaped)
    return text.count("\n", 0, index) + 1 if index >= 0 else 1


# the clear-api-key rule applies to every line of every file
LINE_RULES.append(("clear-api-key", lambda line: bool(API_KEY.search(line))))
