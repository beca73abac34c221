"""`torchsm dashboard [--out FILE] [--since DURATION] [--utc]`."""

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
@click.option("--since", "since", default=None, metavar="DURATION", type=DURATION,
              help="The window: 30m, 6h, 2d, ... [default: the home's age, from 1h to 24h]")
@click.option("--utc", is_flag=True, help="Times in UTC, not the machine's time zone.")
@common_options
@pass_env
def dashboard(env: Env, out: str, since: str | None, utc: bool) -> None:
    """Write one self-contained HTML page (inline CSS and SVG charts: no script, no
    network) of the window: health scores with their trend and recommendations, each
    Nova's status and why, alerts open and resolved, a timeline of each Nova's states on
    one time axis, counts per bucket as bars (items, hook runs, sessions, cooldowns), the
    queue's depth and cost, recent sessions, the open queue, each Nova's log tail, usage
    windows. Times are local (with how long ago) unless --utc. Prints the file's path (with --json,
    {"path": ...}). `torchsm serve` serves the same page, refreshed."""
    from torchsm.observe.dashboard import render
    from torchsm.usage.report import parse_duration

    window = None if since is None else parse_duration(since)
    page = render(env.home, env.config, time.time(), window, utc=utc)
    if out == "-":
        click.echo(page, nl=False)
        return
    path = Path(out).absolute()
    user_files.write(path, page.encode("utf-8"), streams=True)
    env.emit({"path": str(path)}, str(path))
