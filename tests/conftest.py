"""Shared fixtures: a fresh home on a real SQLite file, the real `torchsm` CLI, and the
Novas most tests start from. One meaning per name:

- `home` an initialised Home, `cli` the CLI on it, `bare_cli` the CLI on no home yet;
- `torch` the name of Nova torch, added to `home` now (the real clock);
- `torch_cli` the CLI on a home holding Nova torch (added as `torch` is);
- `fast_torch` `torch_cli` with the FAST config (the supervisor's quick rhythm);
- `torch_home` the Home holding Nova torch added two hours before `T0`, for the tests
  that run on the fixed clock;
- `crew` the CLI on a home holding Novas torch, echo and helix (added now);
- `healthy` (project, claude) of a home `torchsm doctor` passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import FAST, T0, Cli, add_novas, claude_of_version, write_config
from torchsm.config import Home, load_config

pytest_plugins = ["redis_server"]  # real redis-server fixtures for the mirror's tests


@pytest.fixture(autouse=True, scope="session")
def no_real_user_home(tmp_path_factory):
    """The per-user default home ($XDG_STATE_HOME/torchsm) of every process a test starts
    is a temporary one: a test that forgets --home never writes into the machine's."""
    import os

    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("xdg-state"))


@pytest.fixture
def home_dir(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def home(home_dir: Path) -> Home:
    """An initialised home (migrated database) with no Novas."""
    from torchsm.storage import database

    h = Home(home_dir)
    database.initialise(h)
    return h


@pytest.fixture
def config(home: Home):
    return load_config(home)


@pytest.fixture
def cli(home: Home) -> Cli:
    return Cli(home.path)


@pytest.fixture
def bare_cli(home_dir: Path) -> Cli:
    """The CLI pointed at a home that does not exist yet."""
    return Cli(home_dir)


@pytest.fixture
def torch(home: Home) -> str:
    add_novas(home, "torch")
    return "torch"


@pytest.fixture
def torch_cli(cli: Cli, torch: str) -> Cli:
    return cli


@pytest.fixture
def fast_torch(torch_cli: Cli, home: Home) -> Cli:
    write_config(home, FAST)
    return torch_cli


@pytest.fixture
def torch_home(home: Home) -> Home:
    add_novas(home, "torch", now=T0 - 7200)
    return home


@pytest.fixture
def crew(cli: Cli, home: Home) -> Cli:
    add_novas(home, "torch", "echo", "helix")
    return cli


@pytest.fixture
def healthy(home: Home, cli: Cli, tmp_path: Path) -> tuple[Path, Path]:
    """A home with one Nova, its hooks in a project, a live supervisor, and a claude:
    the project and the claude."""
    import os

    from torchsm.storage import run_files

    project = tmp_path / "project"
    project.mkdir()
    add_novas(home, "echo")
    cli("hooks", "install", "--nova", "echo", "--project", str(project))
    run_files.write_plan(home, "echo", {"nova": "echo", "pid": os.getpid(), "state": "waiting",
                                       "why": "idle"})
    return project, claude_of_version(tmp_path)
