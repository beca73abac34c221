"""`torchsm sessions [NAME] [--limit N]`: the session ledger, newest first."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, pass_env, table
from torchsm.cli.complete import nova_names
from torchsm.cli.numbers import count
from torchsm.cli.times import WallClock, shown, text_clock

HEADER = ["ID", "STARTED", "NOVA", "ITEM", "OUTCOME", "DURATION", "COST", "TOKENS", "CACHE",
          "MODEL"]


@click.command()
@click.argument("name", required=False, shell_complete=nova_names)
@click.option("--limit", "-n", type=count(), default=20, show_default=True,
              help="How many of the latest sessions.")
@common_options
@pass_env
def sessions(env: Env, name: str | None, limit: int) -> None:
    """List the agent sessions the supervisors ran (of Nova NAME, or of all), newest
    first: start, Nova, item, outcome, duration, cost in USD, the input/output tokens
    and cache write/read tokens Claude Code reported, and the model that wrote most
    (`-` where the agent reported none)."""
    from torchsm.usage.report import recent_sessions

    rows = [row.as_json() for row in recent_sessions(env.home, env.config, name, limit)]
    clock = text_clock()
    env.emit(rows, lambda: table([_cells(r, clock) for r in rows], HEADER)
             if rows else "no sessions")


def _cells(row: dict, clock: WallClock) -> list:
    return [row["id"], shown(row["started_at"], clock), row["nova"], row["item"], row["outcome"],
            _duration(row["duration_s"]), _cost(row["cost_usd"]),
            _pair(row["input_tokens"], row["output_tokens"]),
            _pair(row["cache_creation_tokens"], row["cache_read_tokens"]), row["model"]]


def _duration(seconds: float | None) -> str:
    return "running" if seconds is None else f"{seconds:.1f}s"


def _cost(usd: float | None) -> str | None:
    return None if usd is None else f"${usd:.4f}"


def _pair(first: int | None, second: int | None) -> str | None:
    """`in/out` (or `write/read`) tokens; None when neither was reported."""
    if first is None and second is None:
        return None
    return f"{first or 0}/{second or 0}"
