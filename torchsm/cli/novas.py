"""`torchsm nova ...`, `status`, `transition`, `history`."""

from __future__ import annotations

import click

from torchsm import novas
from torchsm.cli import colour
from torchsm.cli.common import Env, Printed, common_options, pass_env, printable, table
from torchsm.cli.complete import nova_names
from torchsm.cli.numbers import Seconds, count
from torchsm.cli.times import WallClock, shown, text_clock
from torchsm.machine import Event
from torchsm.names import DEFAULT_ACCOUNT, check_account
from torchsm.usage import accounts


@click.group()
@common_options
def nova() -> None:
    """Add, list, show, set and remove Novas."""


command_option = click.option(
    "--command", metavar="'COMMAND [ARG...]'",
    help="The agent command the Nova keeps, one string split as a shell would (no "
         "expansion): `torchsm up` runs it, and it wins over `up -- COMMAND`, so the fleet "
         "starts with no arguments. '' keeps none.")


def _kept_command(text: str | None) -> list[str] | None:
    if text is None:
        return None
    from torchsm.agent import session

    words = novas.command_words(text)
    session.check_template(words or [])  # {prompt} as a whole argument, as `run` checks it
    return words


@nova.command("add")
@click.argument("name")
@click.option("--personality", "-p", metavar="P",
              help="torch, echo, helix, vaeris, synergy, or one from torchsm.toml "
                   "(default: the one named like the Nova, else torch).")
@click.option("--account", "-a", metavar="ACCOUNT", default=DEFAULT_ACCOUNT,
              show_default=True,
              help="The subscription it shares usage windows, limit holds and the daily "
                   "cost budget with (`[accounts.ACCOUNT]` in torchsm.toml may tune them).")
@command_option
@common_options
@pass_env
def nova_add(env: Env, name: str, personality: str | None, account: str,
             command: str | None) -> None:
    """Add a Nova; it starts `working`."""
    words = _kept_command(command)
    shown = novas.add(env.home, env.config, name, personality, account=check_account(account),
                      command=words)
    env.emit(shown, f"added {name} ({shown['personality']}) on account {shown['account']}, "
                    f"{shown['state']}")


@nova.command("set")
@click.argument("name", shell_complete=nova_names)
@click.option("--account", "-a", metavar="ACCOUNT",
              help="Move it to this account: from now on it shares that account's usage "
                   "windows, limit holds and cost budget (a hold for its old account's "
                   "limit ends).")
@command_option
@common_options
@pass_env
def nova_set(env: Env, name: str, account: str | None, command: str | None) -> None:
    """Change a Nova's settings (its account, its agent command); prints the Nova."""
    if account is None and command is None:
        raise click.UsageError("nothing to set: give --account ACCOUNT or --command "
                               "'COMMAND'")
    words = _kept_command(command)
    if command is not None:
        shown = novas.set_command(env.home, env.config, name, words)
    if account is not None:
        shown = accounts.move_nova(env.home, env.config, name, account)
    env.emit(shown, lambda: _show_text(shown))


@nova.command("list")
@common_options
@pass_env
def nova_list(env: Env) -> None:
    """List the Novas."""
    rows = novas.status(env.home, env.config)
    keys = ("nova", "personality", "account", "state")
    env.emit([{k: r[k] for k in keys} for r in rows],
             lambda: table([[r[k] for k in keys] for r in rows],
                           ["NOVA", "PERSONALITY", "ACCOUNT", "STATE"]) if rows else "no Novas")


@nova.command("show")
@click.argument("name", shell_complete=nova_names)
@common_options
@pass_env
def nova_show(env: Env, name: str) -> None:
    """Show one Nova: state, personality profile, transitions made."""
    shown = novas.show(env.home, env.config, name)
    env.emit(shown, lambda: _show_text(shown))


def _show_text(shown: dict) -> str:
    import shlex

    profile = shown.pop("personality_profile") or {}
    if shown.get("command"):
        shown["command"] = shlex.join(shown["command"])
    lines = [f"{key}: {'-' if value is None else value}" for key, value in shown.items()]
    lines += [f"  {key}: {value}" for key, value in profile.items() if key != "name"]
    return "\n".join(lines)


@nova.command("remove")
@click.argument("name", shell_complete=nova_names)
@common_options
@pass_env
def nova_remove(env: Env, name: str) -> None:
    """Remove a Nova and its history."""
    novas.remove(env.home, env.config, name)
    env.emit({"nova": name, "removed": True}, f"removed {name}")


@click.command()
@click.argument("name", required=False, shell_complete=nova_names)
@click.option("--watch", "-w", is_flag=True,
              help="Redraw the status every --interval seconds until Ctrl-C.")
@click.option("--interval", type=Seconds(0.05, 86400), default=2.0,
              show_default=True, metavar="S", help="With --watch: seconds between redraws.")
@common_options
@pass_env
def status(env: Env, name: str | None, watch: bool, interval: float) -> None:
    """Show the state of every Nova, or of one, and when its supervisor (`torchsm run`)
    plans to start the next session, and why.

    \b
    REASON (`why` in --json) is the current reason: the wait and its cause for a cooling
    or meditating Nova, what its supervisor does or waits for for a working one, or that
    no supervisor runs. `reason` in --json is the last transition's, as in `history`.

    \b
    With --watch the table is redrawn until Ctrl-C (exit 0): on a terminal the screen is
    cleared before each frame; otherwise frames follow each other, a blank line between
    (with --json, one line of JSON per frame)."""
    if watch:
        _watch(env, name, interval)
        return
    _emit_status(env, name)


def _emit_status(env: Env, name: str | None) -> None:
    from torchsm.observe.nova_status import status_rows

    rows = status_rows(env.home, env.config, name)
    env.emit(rows, lambda: _status_text(rows) if rows else
             f"no Novas in {env.home_described()}; add one with `torchsm nova add NAME`")


CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _watch(env: Env, name: str | None, interval: float) -> None:
    """Redraw until Ctrl-C, which ends it quietly."""
    import sys
    import time

    from torchsm.clock import format_time

    on_terminal = sys.stdout.isatty()
    try:
        first = True
        while True:
            if on_terminal:
                click.echo(CLEAR_SCREEN, nl=False)
            elif not first and not env.json:
                click.echo()
            if not env.json:
                click.echo(f"every {interval:g} s, Ctrl-C to stop; {format_time(time.time())}")
            _emit_status(env, name)
            sys.stdout.flush()
            first = False
            time.sleep(interval)
    except KeyboardInterrupt:
        if on_terminal:
            click.echo()


def _status_text(rows: list[dict]) -> str:
    clock = text_clock()
    lines = [table([[r["nova"], r["state"], shown(r["since"], clock), shown(r["until"], clock),
                     r["personality"], r["account"], shown(_next_start(r), clock), r["why"]]
                    for r in rows],
                   ["NOVA", "STATE", "SINCE", "UNTIL", "PERSONALITY", "ACCOUNT", "NEXT START",
                    "REASON"], {"STATE": colour.state})]
    lines += [f"{r['nova']}: supervised (pid {r['plan']['pid']}): {r['plan']['why']}"
              for r in rows if r["plan"]]
    lines += [_usage_line(r["nova"], r["plan"]["usage"], clock) for r in rows
              if r["plan"] and r["plan"].get("usage")]
    return Printed("\n".join([lines[0], *(printable(line) for line in lines[1:])]))


def _usage_line(nova: str, usage: dict, clock: WallClock) -> str:
    what = "holds" if usage.get("verdict") == "stop" else "slows"
    until = shown(usage.get("until"), clock) or "?"
    return f"{nova}: usage {what} it: {usage.get('why')} (until {until})"


def _next_start(row: dict) -> str | None:
    plan = row["plan"]
    if plan is None:
        return None  # no supervisor runs: nothing is planned
    return "running" if plan.get("state") == "running" else plan.get("next_start")


EVENTS = [e.value for e in Event]


@click.command()
@click.argument("name", shell_complete=nova_names)
@click.argument("event", metavar="EVENT", type=click.Choice(EVENTS))
@click.option("--reason", "-r", help="Why; kept in the history.")
@click.option("--for", "for_s", type=float, metavar="SECONDS",
              help="cool/meditate: this long instead of the configured backoff.")
@click.option("--force", is_flag=True, help="Leave cooling/meditating before `until`.")
@common_options
@pass_env
def transition(env: Env, name: str, event: str, reason: str | None, for_s: float | None,
               force: bool) -> None:
    """Fire EVENT (work, cool, meditate, dream, compact) at Nova NAME."""
    result = novas.transition(env.home, env.config, name, event, reason=reason,
                              for_s=for_s, force=force)
    env.emit(result.as_json(), result.describe)


@click.command()
@click.argument("name", shell_complete=nova_names)
@click.option("--limit", "-n", type=count(), default=20, show_default=True,
              help="How many of the latest transitions.")
@common_options
@pass_env
def history(env: Env, name: str, limit: int) -> None:
    """Show a Nova's latest transitions, oldest first."""
    rows = novas.history(env.home, env.config, name, limit)
    clock = text_clock()
    env.emit(rows, lambda: table(
        [[shown(r["at"], clock), r["from"], r["to"], r["event"], shown(r["until"], clock),
          r["reason"]] for r in rows],
        ["AT", "FROM", "TO", "EVENT", "UNTIL", "REASON"]) if rows else f"{name}: no transitions")

