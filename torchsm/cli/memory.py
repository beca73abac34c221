"""`torchsm memory add|list|show|forget`: what Novas remember (torchsm.dreams.memory)."""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

import click

from torchsm.cli.common import Env, common_options, pass_env, printable, table, warn
from torchsm.cli.complete import nova_names
from torchsm.cli.numbers import count, parse_id
from torchsm.cli.times import text_clock
from torchsm.clock import format_time
from torchsm.dreams import memory as memory_lib, recall
from torchsm.dreams.recall import written_by
from torchsm.errors import InvalidMemory, MemoryNotFound
from torchsm.storage import store
from torchsm.work.prompts import json_size

T = TypeVar("T")


@click.group()
@common_options
def memory() -> None:
    """What Novas remember from one session to the next.

    Notes (`memory add`, also by the agent itself from inside a session), an episode per
    finished work item, and insights from dreams. A session is given its Nova's memories
    and the shared ones, strongest first, within [memory] context_chars: `memory show
    NAME` prints exactly that."""


@memory.command("add")
@click.argument("name", shell_complete=nova_names)
@click.argument("text")
@click.option("--shared", is_flag=True,
              help="For every Nova of the home (NAME shares it); mirrored for other hosts.")
@click.option("--kind", type=click.Choice(memory_lib.KINDS), default="note", show_default=True,
              help="Only `note`: insights come from dreams, episodes from finished items.")
@common_options
@pass_env
def memory_add(env: Env, name: str, text: str, shared: bool, kind: str) -> None:
    """Remember TEXT for Nova NAME, written by the Nova whose session runs this
    ($TORCHSM_NOVA), else by you (`user:NAME`). The same text again (case and spacing
    aside) strengthens the memory when its writer is a new one, else changes nothing; a
    text longer than [memory] max_text_chars is cut, with a warning."""
    writer = memory_lib.command_line_writer(os.environ.get("TORCHSM_NOVA"))
    added, where = memory_lib.remember(env.home, env.config, name, text, writer=writer,
                                       kind=kind, shared=shared, source=_source(name))
    if added.cut:
        limit = env.config.memory.max_text_chars
        warn(f"the memory text is {len(text):,} characters: cut to {limit:,} "
             "([memory] max_text_chars)")
    row = added.memory
    env.emit({**row.as_json(), "created": added.created, "strengthened": added.strengthened,
              "cut": added.cut, "mirror": where}, _added_text(added, writer))


def _source(name: str) -> str:
    """`agent` from inside a session of Nova `name` (the supervisor sets TORCHSM_NOVA),
    else `cli`."""
    return "agent" if os.environ.get("TORCHSM_NOVA") == name else "cli"


def _added_text(added: memory_lib.Added, writer: str) -> str:
    row = added.memory
    verb = ("remembered" if added.created else "strengthened" if added.strengthened
            else "already remembered")  # the same writer again: each counts once
    details = [] if added.created and row.nova else [written_by(writer)]
    if not added.created:
        details.append(f"strength {row.strength}")
    return (f"{verb} {row.id} for {row.nova or 'every Nova'}"
            + (f" ({'; '.join(details)})" if details else ""))


@memory.command("list")
@click.argument("name", required=False, shell_complete=nova_names)
@click.option("--all", "include_forgotten", is_flag=True, help="Forgotten memories too.")
@click.option("--limit", "-n", type=count(), metavar="N",
              help="At most N memory_lib.")
@common_options
@pass_env
def memory_list(env: Env, name: str | None, include_forgotten: bool,
                limit: int | None) -> None:
    """List Nova NAME's memories and the shared ones, in the order a session gets them
    (strength, then insight, note, episode, then the latest first); without NAME, every
    memory of the home."""
    rows = _read(env, lambda conn: memory_lib.listing(
        conn, name, include_forgotten=include_forgotten, limit=limit))
    env.emit([r.as_json() for r in rows],
             lambda: _table(rows, include_forgotten) if rows else
             f"{name + ': ' if name else ''}no memories")


def _table(rows: list[memory_lib.MemoryRow], include_forgotten: bool) -> str:
    header = ["ID", "NOVA", "KIND", "STRENGTH", "UPDATED", "WRITER", "SOURCE", "TEXT"]
    cells = [[r.id, r.nova or "(shared)", r.kind, r.strength, format_time(r.updated_at),
              r.writer, r.source, memory_lib.shorten(r.text, 60)] for r in rows]
    if include_forgotten:
        header.insert(5, "FORGOTTEN")
        for cell, r in zip(cells, rows):
            cell.insert(5, format_time(r.forgotten_at))
    return table(cells, header)


@memory.command("show")
@click.argument("target", metavar="NAME|ID")
@common_options
@pass_env
def memory_show(env: Env, target: str) -> None:
    """Show memory ID whole, or, for Nova NAME, its memory exactly as its next session
    gets it (within [memory] context_chars). A number is a memory's id."""
    if target.isascii() and target.isdigit():
        row = _read(env, lambda conn: memory_lib.get(conn, parse_memory_id(target)))
        env.emit(row.as_json(), lambda: _details(row))
        return
    budget = env.config.memory.context_chars
    context = _read(env, lambda conn: recall.context_for(conn, env.config, target, budget))
    env.emit({"nova": target, "budget": budget, "size": json_size(context),
              "context": context}, context or f"{target}: no memories")


def _details(row: memory_lib.MemoryRow) -> str:
    when = text_clock().relative
    fields = [("id", row.id), ("nova", row.nova or "(shared)"), ("kind", row.kind),
              ("strength", row.strength), ("writer", row.writer), ("source", row.source),
              ("key", row.key),
              ("created", when(row.created_at)),
              ("updated", when(row.updated_at)),
              ("forgotten", when(row.forgotten_at)),
              ("why", row.forgotten_why)]
    lines = [f"{name + ':':<11}{'-' if value is None else printable(str(value), multiline=False)}"
             for name, value in fields]
    return "\n".join(lines) + "\n\n" + row.text


@memory.command("forget")
@click.argument("memory_id", metavar="ID")
@click.option("--why", metavar="TEXT", default="forgotten by hand", show_default=True,
              help="Why; kept with the memory.")
@common_options
@pass_env
def memory_forget(env: Env, memory_id: str, why: str) -> None:
    """Forget memory ID: no session gets it any more. It stays, marked, for the record
    (`memory list --all`)."""
    row, where = memory_lib.forget_one(env.home, env.config, parse_memory_id(memory_id), why)
    env.emit({**row.as_json(), "mirror": where}, f"forgot {row.id}")


def parse_memory_id(text: str) -> int:
    return parse_id(text, "memory", InvalidMemory, MemoryNotFound)


def _read(env: Env, work: Callable[[Any], T]) -> T:
    """`work` on the home's memories, once what other hosts shared is taken in."""
    from torchsm.cluster.intake import take_in_quietly

    take_in_quietly(env.home, env.config)
    with store.open_store(env.home, env.config.db.lock_timeout_s) as db:
        return db.read(work)
