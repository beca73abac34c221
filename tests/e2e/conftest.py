"""Fixtures for end-to-end tests with the real, pinned Claude Code CLI run offline
against a local API stand-in. scripts/test installs the pinned version into .e2e/."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from standin import StandIn

E2E = Path(__file__).resolve().parent
REPO = E2E.parent.parent
PINNED = (E2E / "CLAUDE_CODE_VERSION").read_text().strip()
LOCAL_CLAUDE = REPO / ".e2e" / "node_modules" / ".bin" / "claude"


def _claude_binary() -> Path | None:
    candidate = Path(os.environ.get("TORCHSM_CLAUDE", LOCAL_CLAUDE))
    if not candidate.exists():
        return None
    version = subprocess.run([str(candidate), "--version"], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=60).stdout
    return candidate if version.startswith(PINNED) else None


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    found = _claude_binary()
    if found is None:
        message = f"Claude Code {PINNED} is not installed in .e2e/ (scripts/test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def standin():
    server = StandIn().start()
    yield server
    server.stop()


@dataclass
class Claude:
    """The real CLI in a project folder, with its own config dir, against the stand-in."""

    binary: Path
    project: Path
    config_dir: Path
    standin: StandIn

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANTHROPIC_", "CLAUDE_CODE_", "CLAUDECODE"))}
        env.update(ANTHROPIC_BASE_URL=self.standin.url, ANTHROPIC_API_KEY="sk-standin",
                   CLAUDE_CONFIG_DIR=str(self.config_dir), DISABLE_TELEMETRY="1",
                   DISABLE_ERROR_REPORTING="1", DISABLE_AUTOUPDATER="1",
                   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", CLAUDE_CODE_MAX_RETRIES="1")
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.binary), *args], cwd=self.project, env=self.env(**env),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def settings(self) -> dict:
        path = self.project / ".claude" / "settings.local.json"  # `hooks install` default
        return json.loads(path.read_text()) if path.exists() else {}

    def write_settings(self, settings: dict) -> None:
        path = self.project / ".claude" / "settings.local.json"  # `hooks install` default
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=2))


@pytest.fixture
def claude(claude_bin, standin, tmp_path) -> Claude:
    project = tmp_path / "project"
    project.mkdir()
    return Claude(claude_bin, project, tmp_path / "claude-config", standin)


@pytest.fixture
def wired(torch_cli, claude):
    """The CLI on a home holding Nova torch, torchsm's hooks installed in the Claude
    project."""
    torch_cli("hooks", "install", "--nova", "torch", "--project", str(claude.project))
    return torch_cli
