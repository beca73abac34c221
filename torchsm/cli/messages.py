"""`torchsm message send|list`."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, pass_env, warn
from torchsm.cli.complete import nova_names
from torchsm.cli.numbers import count
from torchsm.cli.times import text_clock
from torchsm.mirror.streams import MESSAGES_STREAM, epoch
from torchsm.work import messages


@click.group()
@common_options
def message() -> None:
    """Messages between Novas."""


@message.command("send")
@click.argument("sender", metavar="FROM", shell_complete=nova_names)
@click.argument("recipient", metavar="TO", shell_complete=nova_names)
@click.argument("text")
@common_options
@pass_env
def message_send(env: Env, sender: str, recipient: str, text: str) -> None:
    """Send TEXT from Nova FROM to Nova TO, or to `all`. In a cluster, TO may be a Nova
    of another host."""
    from torchsm.cluster.directory import elsewhere

    sent = messages.send(env.home, env.config, sender, recipient, text,
                         elsewhere=elsewhere(env.config))
    env.emit(sent, f"sent {sent['id']} from {sender} to {recipient}")


@message.command("list")
@click.argument("name", shell_complete=nova_names)
@click.option("--limit", "-n", type=count(), default=20, show_default=True,
              help="How many of the latest messages.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new messages as they come.")
@common_options
@pass_env
def message_list(env: Env, name: str, limit: int, follow: bool) -> None:
    """Show the messages for Nova NAME (to it, or to `all`), oldest first. In a cluster,
    what other hosts sent is taken in first."""
    from torchsm.cluster.intake import take_in_quietly

    take_in_quietly(env.home, env.config)
    if follow:
        # with --json, one object a line, so a reader can take each as it comes
        for item in messages.follow(env.home, env.config, name, limit,
                                    on_malformed=_warn_malformed):
            env.emit(item, _line(item))
        return
    shown = messages.inbox(env.home, env.config, name, limit, on_malformed=_warn_malformed)
    env.emit(shown, lambda: "\n".join(map(_line, shown)) if shown else f"{name}: no messages")


def _warn_malformed(count: int) -> None:
    """Anything that reaches the server may write to the stream: what is not a message
    torchsm can read is skipped, said once per read, and the rest is listed."""
    entries = "entry" if count == 1 else "entries"
    warn(f"skipped {count} malformed {entries} on {MESSAGES_STREAM}")


def _line(item: dict) -> str:
    at = text_clock().relative(epoch(item["at"]))
    return f"{at}  {item['from']} -> {item['to']}: {item['text']}"
