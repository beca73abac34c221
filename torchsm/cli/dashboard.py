"""`torchsm dashboard [--out FILE] [--since DURATION]`."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import click

from torchsm.cli.common import Env, common_options, pass_env
from torchsm.errors import TorchsmError


@click.command()
@click.option("--out", "out", default="dashboard.html", show_default=True, metavar="FILE",
              help="Where to write the page; - writes it to stdout.")
@click.option("--since", "since", default="24h", show_default=True, metavar="DURATION",
              help="The window: 30m, 6h, 2d, ...")
@common_options
@pass_env
def dashboard(env: Env, out: str, since: str) -> None:
    """Write one self-contained HTML page (inline CSS and SVG charts: no script, no
    network) of the window: each Nova's states, the queue's depth and age, hook runs,
    sessions and cost, cooldowns, usage windows, health scores with their trend and
    recommendations, and the open alerts. Prints the file's path (with --json,
    {"path": ...}). `torchsm serve` serves the same page, refreshed."""
    from torchsm.dashboard import render
    from torchsm.usage_report import parse_duration

    page = render(env.home, env.config, time.time(), parse_duration(since))
    if out == "-":
        click.echo(page, nl=False)
        return
    path = Path(out).absolute()
    write_atomically(path, page)
    env.emit({"path": str(path)}, str(path))


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: a reader sees the old page or the new."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise TorchsmError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise TorchsmError(f"cannot write {path}: {exc.strerror}") from None
