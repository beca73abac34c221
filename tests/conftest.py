"""Shared fixtures: a fresh home on a real SQLite file, and the real `torchsm` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import Cli
from torchsm.config import Home, load_config

pytest_plugins = ["redis_server"]  # real redis-server fixtures for the mirror's tests


@pytest.fixture
def home_dir(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def home(home_dir: Path) -> Home:
    """An initialised home (migrated database) with no Novas."""
    from torchsm import db

    h = Home(home_dir)
    db.initialise(h)
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
