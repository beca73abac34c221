"""`torchsm wake NAME MESSAGE`, `wake classify MESSAGE`, `wake list [NAME]` (torchsm.work.wake)."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, pass_env, table
from torchsm.cli.complete import nova_names
from torchsm.cli.times import text_clock
from torchsm.work import wake as signals

SEND = "send"


class WakeGroup(click.Group):
    """A group whose default is a command: `wake NAME MESSAGE` runs the hidden `send`.

    The first word that is not an option picks: a subcommand name runs that subcommand,
    anything else is a Nova name. `wake -- list MESSAGE` wakes a Nova named `list`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = _first_word(args)
        if first is not None and (first == "--" or first not in self.commands):
            args = [SEND, *args]
        return super().parse_args(ctx, args)


def _first_word(args: list[str]) -> str | None:
    """The first argument that is neither an option nor an option's value."""
    takes_value = {"--home"}
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--" or not arg.startswith("-"):
            return arg
        elif arg in takes_value:
            skip = True
    return None


@click.group(cls=WakeGroup, subcommand_metavar="NAME MESSAGE | COMMAND [ARGS]...")
@common_options
def wake() -> None:
    """Wake signals: `wake NAME MESSAGE [--sender S]` classifies a signal for Nova NAME
    into a tier (critical, high, medium, low, background), stores it with its due time
    and prints when NAME's supervisor will start the session for it and why (its own
    rules: the rhythm, a cooldown, the budgets...), or that no supervisor runs for NAME.
    A critical signal wakes a cooling or meditating Nova at once.

    `wake classify` shows how a message would be classified; `wake list` shows the
    pending signals. To wake a Nova named like a subcommand: `wake -- list MESSAGE`."""


@wake.command(SEND, hidden=True)
@click.argument("name", shell_complete=nova_names)
@click.argument("message")
@click.option("--sender", "-s", metavar="S", help="Who sends it ([wake.senders] weights).")
@common_options
@pass_env
def wake_send(env: Env, name: str, message: str, sender: str | None) -> None:
    """Classify a signal for Nova NAME, store it, print its tier and when the session
    for it starts, and why (or that no supervisor runs for NAME)."""
    import time

    from torchsm.supervisor import forecast

    load = signals.load_per_core()
    sent = signals.send(env.home, env.config, name, message, sender=sender, load=load)
    start = forecast.for_signal(env.home, env.config, sent.signal, time.time(), load)
    env.emit({**sent.as_json(), "start": start.as_json()}, lambda: _sent_text(sent, start))


def _sent_text(sent: signals.SentSignal, start) -> str:
    when = text_clock().relative
    signal = sent.signal
    text = f"{signal.nova}: wake #{signal.id} {signal.tier.value}: {start.why}"
    if start.at is None and signal.due_at > start.now:
        text += f" (due {when(signal.due_at)})"
    if sent.woke is not None:
        text += f"\n{sent.woke.nova}: {sent.woke.source} -> {sent.woke.target} (forced)"
    return text


@wake.command("classify")
@click.argument("message")
@click.option("--sender", "-s", metavar="S", help="Who sends it ([wake.senders] weights).")
@click.option("--nova", shell_complete=nova_names, metavar="NAME",
              help="Count NAME's recent signals for repetition (reads the database).")
@click.option("--explain", is_flag=True, help="List every rule that fired.")
@common_options
@pass_env
def wake_classify(env: Env, message: str, sender: str | None, nova: str | None,
                  explain: bool) -> None:
    """Show the tier and due time MESSAGE would get; stores nothing."""
    load = signals.load_per_core()
    if nova is None:
        result = signals.classify(message, sender=sender, config=env.config.wake,
                                  load_per_core=load)
    else:
        result = signals.preview(env.home, env.config, nova, message, sender=sender,
                                 load=load)
    env.emit(result.as_json(), result.explain() if explain else result.summary())


@wake.command("list")
@click.argument("name", required=False, shell_complete=nova_names)
@common_options
@pass_env
def wake_list(env: Env, name: str | None) -> None:
    """Pending wake signals (of Nova NAME, or all), the soonest due first."""
    when = text_clock().relative
    pending = signals.pending(env.home, env.config, name)
    env.emit([s.as_json() for s in pending], lambda: table(
        [[s.id, s.nova, s.tier.value, when(s.due_at), s.sender, s.message]
         for s in pending], ["ID", "NOVA", "TIER", "DUE", "SENDER", "MESSAGE"])
        if pending else "no pending wake signals")
