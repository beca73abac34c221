"""`torchsm queue ...`: the work queue (torchsm.work.work_queue)."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, pass_env, table, warn
from torchsm.cli.complete import nova_names
from torchsm.cli.numbers import ITEM_STATUS, TIER, Seconds, count, parse_id
from torchsm.cli.times import text_clock
from torchsm.clock import format_time
from torchsm.config import MAX_COUNT
from torchsm.errors import InvalidWorkItem, ItemNotFound
from torchsm.tiers import TIER_NAMES
from torchsm.work import work_queue

STATUS_NAMES = ", ".join(s.value for s in work_queue.ItemStatus)


@click.group()
@common_options
def queue() -> None:
    """Work items for Novas: add, claim, finish, import.

    A claim holds a lease ([queue] lease_s); an expired lease puts the item back, and
    after [queue] max_attempts expired claims it is dead. Order: tier, then age."""


@queue.command("add")
@click.argument("text")
@click.option("--nova", metavar="NAME", help="Only this Nova may claim it (default: any).",
              shell_complete=nova_names)
@click.option("--priority", "-p", metavar="TIER", default="medium", show_default=True, type=TIER,
              help=f"One of {TIER_NAMES}.")
@click.option("--max-attempts", type=count(1, MAX_COUNT), metavar="N",
              help="Expired claims before the item is dead (default: [queue] max_attempts).")
@click.option("--cluster/--local", "to_cluster", default=None,
              help="On the cluster's work streams, for every host's Novas, or on this "
                   "home's queue (default: [cluster] default).")
@common_options
@pass_env
def queue_add(env: Env, text: str, nova: str | None, priority: str,
              max_attempts: int | None, to_cluster: bool | None) -> None:
    """Add a work item; prints its id."""
    if _goes_to_cluster(env.config.cluster.default, to_cluster, nova, max_attempts):
        from torchsm.cluster.pending import Kept, add_or_keep

        found = add_or_keep(env.home, env.config, text, priority, on_set_aside=warn)
        if isinstance(found, Kept):  # stdout keeps to the id, for scripts, either way
            warn(f"cluster server away: {found.item_id} is kept here and goes to the "
                 "cluster when the server answers")
        env.emit(found.as_json(), found.item_id)
        return
    with work_queue.open_queue(env.home, env.config) as q:
        item = q.add(text, nova=nova, priority=priority, max_attempts=max_attempts)
    env.emit(item.as_json(), str(item.id))


def _goes_to_cluster(default: bool, chosen: bool | None, nova: str | None,
                     max_attempts: int | None) -> bool:
    """--cluster or --local when given; else [cluster] default, unless the item is for one
    Nova of this home or has attempts of its own (both only this home's queue knows)."""
    local_only = nova is not None or max_attempts is not None
    if chosen and local_only:
        raise click.UsageError("--cluster takes neither --nova nor --max-attempts (they are "
                               "for this home's queue)")
    return default and not local_only if chosen is None else chosen


@queue.command("list")
@click.option("--nova", metavar="NAME", help="Only items addressed to or claimed by NAME.",
              shell_complete=nova_names)
@click.option("--status", "-s", metavar="S", type=ITEM_STATUS,
              help=f"Only items in this status ({STATUS_NAMES}).")
@common_options
@pass_env
def queue_list(env: Env, nova: str | None, status: str | None) -> None:
    """List work items in claim order."""
    with work_queue.open_queue(env.home, env.config) as q:
        items = q.items(nova=nova, status=status)
    env.emit([i.as_json() for i in items], lambda: _items_table(items) if items else "no items")


def _items_table(items: list[work_queue.WorkItem]) -> str:
    when = text_clock().relative
    return table([[i.id, i.status.value, i.priority.value, i.nova, i.claimed_by,
                   f"{i.attempts}/{i.max_attempts}", when(i.created_at),
                   _shorten(i.text)] for i in items],
                 ["ID", "STATUS", "PRIORITY", "NOVA", "CLAIMED_BY", "TRIES", "CREATED",
                  "TEXT"])


def _shorten(text: str, width: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 3] + "..."


@queue.command("show")
@click.argument("item_id", metavar="ID")
@common_options
@pass_env
def queue_show(env: Env, item_id: str) -> None:
    """Show work item ID: its fields, then its whole text (hooks and prompts cut a long
    text and point here)."""
    with work_queue.open_queue(env.home, env.config) as q:
        item = q.get(parse_item_id(item_id))
    env.emit(item.as_json(), lambda: _item_details(item))


def _item_details(item: work_queue.WorkItem) -> str:
    when = text_clock().relative
    fields = [("id", item.id), ("status", item.status.value), ("priority", item.priority.value),
              ("nova", item.nova), ("claimed_by", item.claimed_by),
              ("attempts", f"{item.attempts}/{item.max_attempts}"),
              ("lease_until", when(item.lease_until)),
              ("created", when(item.created_at)),
              ("updated", when(item.updated_at)),
              ("finished", when(item.finished_at)),
              ("result", item.result), ("error", item.error)]
    lines = [f"{name + ':':<13}{'-' if value is None else value}" for name, value in fields]
    return "\n".join(lines) + "\n\n" + item.text


@queue.command("claim")
@click.option("--nova", metavar="NAME", required=True, help="The Nova that takes the item.",
              shell_complete=nova_names)
@click.option("--lease", "lease_s", type=Seconds(positive=True), metavar="SECONDS",
              help="How long the claim holds (default: [queue] lease_s).")
@common_options
@pass_env
def queue_claim(env: Env, nova: str, lease_s: float | None) -> None:
    """Claim the next item for NAME (exit 1 when nothing is claimable)."""
    with work_queue.open_queue(env.home, env.config) as q:
        item = q.claim(nova, lease_s=lease_s)
    env.emit(item.as_json(), lambda: (
        f"{item.id}\t{item.text}\n"
        f"(claimed by {nova}: {item.priority.value}, attempt {item.attempts} of "
        f"{item.max_attempts}, lease until {format_time(item.lease_until)}; "
        f"finish with `torchsm queue done {item.id}` or `torchsm queue fail {item.id}`)"))


@queue.command("done")
@click.argument("item_id", metavar="ID")
@click.option("--result", metavar="TEXT", help="What came of it; kept with the item.")
@common_options
@pass_env
def queue_done(env: Env, item_id: str, result: str | None) -> None:
    """Mark item ID done."""
    with work_queue.open_queue(env.home, env.config) as q:
        item = q.done(parse_item_id(item_id), result=result)
    env.emit(item.as_json(), f"{item.id}: done")


@queue.command("fail")
@click.argument("item_id", metavar="ID")
@click.option("--error", "-e", metavar="E", help="What went wrong; kept with the item.")
@common_options
@pass_env
def queue_fail(env: Env, item_id: str, error: str | None) -> None:
    """Mark item ID failed (final)."""
    with work_queue.open_queue(env.home, env.config) as q:
        item = q.fail(parse_item_id(item_id), error=error)
    env.emit(item.as_json(), f"{item.id}: failed")


@queue.command("import")
@click.argument("file", metavar="FILE")
@common_options
@pass_env
def queue_import(env: Env, file: str) -> None:
    """Add the items of a legacy text queue (one item a line; `WORK_PROCESSED: text`
    keeps its text) or a JSONL file ({"text": ..., "nova": ..., "priority": ...}).

    Blank lines are skipped, malformed ones reported by line number. Safe twice, by
    content: importing the file again, a copy of it or the same lines through a pipe
    (FILE may be /dev/stdin or a FIFO) adds only lines not imported before (a repeated
    line counts once per occurrence). At most 64 MiB are read."""
    with work_queue.open_queue(env.home, env.config) as q:
        report = q.import_file(file)
    for number, why in report.malformed:
        warn(f"{file}:{number}: {why}")
    env.emit(report.as_json(),
             f"{file}: {report.added} added, {report.duplicates} already imported, "
             f"{len(report.malformed)} malformed, {report.blank} blank")


def parse_item_id(text: str) -> int:
    return parse_id(text, "work item", InvalidWorkItem, ItemNotFound)
