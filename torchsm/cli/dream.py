"""`torchsm dream NAME | run NAME | list [NAME] | show ID` (torchsm.dreams.dreaming).

`dream NAME` is short for `dream run NAME`. A first word that names a subcommand is the
subcommand: a Nova called `list`, `show` or `run` dreams with `torchsm dream run list`.
"""

from __future__ import annotations

import json
import time

import click

from torchsm.cli.common import Env, common_options, pass_env, table
from torchsm.cli.complete import nova_names
from torchsm.cli.numbers import count, parse_id
from torchsm.cli.times import text_clock
from torchsm.clock import format_time
from torchsm.errors import DreamNotFound, TorchsmError

PHASES = {0: "pattern", 1: "reflection", 2: "plan"}


class DreamGroup(click.Group):
    """A group whose first word, when it is no subcommand, is the Nova to dream for."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


@click.group(cls=DreamGroup, subcommand_metavar="NAME | run NAME | list [NAME] | show ID")
@common_options
def dream() -> None:
    """Dreams: deterministic analysis of a Nova's stored history, no API request.

    `torchsm dream NAME` dreams now: patterns (phase 0), reflection (1) and a plan (2)
    over the history since its last dream, every insight with its evidence. The
    supervisor dreams by itself when the Nova is idle. A subcommand's name wins over a
    Nova's: `torchsm dream run list` dreams for a Nova called `list`."""


@dream.command("run")
@click.argument("name", shell_complete=nova_names)
@common_options
@pass_env
def dream_run(env: Env, name: str) -> None:
    """Dream for Nova NAME now (`torchsm dream NAME` says the same). A due critical wake
    ends it early, as `interrupted`, keeping what the finished phases found."""
    from torchsm.dreams import dreaming

    view = dreaming.dream(env.home, env.config, name, time.time(), trigger="command",
                        should_continue=dreaming.undisturbed(env.home, env.config, name))
    env.emit(view.as_json(), lambda: _brief(view))


@dream.command("list")
@click.argument("name", required=False, shell_complete=nova_names)
@click.option("--limit", "-n", type=count(), default=20, show_default=True,
              help="How many of the latest dreams.")
@common_options
@pass_env
def dream_list(env: Env, name: str | None, limit: int) -> None:
    """The latest dreams (of Nova NAME, or of every Nova), oldest first."""
    from torchsm.dreams import dreaming

    shown = dreaming.list_dreams(env.home, env.config, name, limit)
    env.emit([d.as_json() for d in shown], lambda: _table(shown) if shown else "no dreams")


@dream.command("show")
@click.argument("dream_id", metavar="ID")
@common_options
@pass_env
def dream_show(env: Env, dream_id: str) -> None:
    """Dream ID: what it read, and its insights, the most important first, each with its
    evidence (and, for a proposal, its action)."""
    from torchsm.dreams import dreaming

    view = dreaming.show(env.home, env.config, _parse_id(dream_id))
    env.emit(view.as_json(), lambda: _details(view))


def _parse_id(text: str) -> int:
    return parse_id(text, "dream", TorchsmError, DreamNotFound)


def _brief(view) -> str:
    lines = [f"dream {view.id} of {view.nova}: {view.status}; {view.summary}",
             f"span {format_time(view.span_from)} -> {format_time(view.span_to)}"]
    lines += [_headline(i) for i in view.insights]
    if view.insights:
        lines.append(f"(`torchsm dream show {view.id}` shows the evidence)")
    return "\n".join(lines)


def _headline(insight) -> str:
    work = f" (work item {insight.work_item})" if insight.work_item else ""
    return f"{insight.rank:>2}. [{PHASES.get(insight.phase, insight.phase)}] {insight.text}{work}"


def _table(shown: list) -> str:
    when = text_clock().relative
    return table([[d.id, d.nova, d.status, d.trigger, when(d.started_at),
                   when(d.span_from), d.insight_count, d.summary] for d in shown],
                 ["ID", "NOVA", "STATUS", "TRIGGER", "STARTED", "SPAN_FROM", "INSIGHTS",
                  "SUMMARY"])


def _details(view) -> str:
    when = text_clock().relative
    read = ", ".join(f"{k} {v}" for k, v in view.read.items() if k != "capped")
    capped = ", ".join(view.read.get("capped") or []) or "-"
    lines = [f"dream {view.id} of {view.nova}: {view.status} ({view.trigger})",
             f"started  {when(view.started_at)}",
             f"ended    {when(view.ended_at) or '-'}",
             f"span     {when(view.span_from)} -> {when(view.span_to)}",
             f"read     {read or '-'} (capped: {capped})",
             f"summary  {view.summary or '-'}"]
    for insight in view.insights:
        lines.append(_headline(insight))
        lines.append(f"    {insight.kind} {insight.key}; evidence "
                     + json.dumps(insight.evidence, ensure_ascii=False, sort_keys=True))
        if insight.action is not None:
            lines.append("    action " + json.dumps(insight.action, ensure_ascii=False,
                                                    sort_keys=True))
    if not view.insights:
        lines.append("no insights")
    return "\n".join(lines)
