"""`torchsm dashboard [--out FILE] [--since DURATION]`."""

from __future__ import annotations

import time
from pathlib import Path

import click

from torchsm import user_files
from torchsm.cli.common import Env, common_options, pass_env
from torchsm.cli.numbers import DURATION


@click.command()
@click.option("--out", "out", default="dashboard.html", show_default=True, metavar="FILE",
              help="Where to write the page (replaced atomically; through a symlink; a "
                   "FIFO or device is written as a stream); - writes it to stdout.")
@click.option("--since", "since", default="24h", show_default=True, metavar="DURATION",
              type=DURATION,
              help="The window: 30m, 6h, 2d, ...")
@common_options
@pass_env
def dashboard(env: Env, out: str, since: str) -> None:
    """Write one self-contained HTML page (inline CSS and SVG charts: no script, no
    network) of the window: each Nova's states, the queue's depth and age, hook runs,
    sessions and cost, cooldowns, usage windows, health scores with their trend and
    recommendations, and the open alerts. Prints the file's path (with --json,
    {"path": ...}). `torchsm serve` serves the same page, refreshed."""
    from torchsm.observe.dashboard import render
    from torchsm.usage.report import parse_duration

    page = render(env.home, env.config, time.time(), parse_duration(since))
    if out == "-":
        click.echo(page, nl=False)
        return
    path = Path(out).absolute()
    user_files.write(path, page.encode("utf-8"), streams=True)
    env.emit({"path": str(path)}, str(path))
