"""`torchsm sessions [NAME] [--limit N]`: the session ledger, newest first."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, pass_env, table
from torchsm.cli.numbers import count

HEADER = ["ID", "STARTED", "NOVA", "ITEM", "OUTCOME", "DURATION", "COST", "TOKENS"]


@click.command()
@click.argument("name", required=False)
@click.option("--limit", "-n", type=count(), default=20, show_default=True,
              help="How many of the latest sessions.")
@common_options
@pass_env
def sessions(env: Env, name: str | None, limit: int) -> None:
    """List the agent sessions the supervisors ran (of Nova NAME, or of all), newest
    first: start, Nova, item, outcome, duration, cost in USD, and the input/output
    tokens Claude Code reported (`-` where the agent reported none)."""
    from torchsm.usage.report import recent_sessions

    rows = [row.as_json() for row in recent_sessions(env.home, env.config, name, limit)]
    env.emit(rows, lambda: table([_cells(r) for r in rows], HEADER) if rows else "no sessions")


def _cells(row: dict) -> list:
    return [row["id"], row["started_at"], row["nova"], row["item"], row["outcome"],
            _duration(row["duration_s"]), _cost(row["cost_usd"]), _tokens(row)]


def _duration(seconds: float | None) -> str:
    return "running" if seconds is None else f"{seconds:.1f}s"


def _cost(usd: float | None) -> str | None:
    return None if usd is None else f"${usd:.4f}"


def _tokens(row: dict) -> str | None:
    if row["input_tokens"] is None and row["output_tokens"] is None:
        return None
    return f"{row['input_tokens'] or 0}/{row['output_tokens'] or 0}"
