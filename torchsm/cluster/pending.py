"""Cluster adds kept in this home while the server is away, and added when it answers.

`queue add --cluster` with the server away used to fail, and the item was lost unless the
person noticed and tried again. Now the add is kept here, as one small file per item in
the home's `cluster-adds/` (written to a temporary name and renamed: a kill -9 leaves either no
file or a whole one), and is added when the server answers: by the next
`queue add --cluster`, or a supervisor of this home with `[cluster] enabled` (every
cluster turn). A file that is not a whole add (cut short, edited by hand) is set aside as
`NAME.unreadable`, said once, never deleted; the others still go.

Exactly once: the id is chosen when the add is kept and goes with it, and the server's
add script adds nothing for an id it knows (torchsm.cluster.work), so a delivery cut
short by a kill -9 between the add and the file's removal, or two deliveries at once,
add the item once. The file, not the table `outbox`: the outbox is the mirror's, its
entries go to a stream or to the file queue while the server is away, while a cluster add
must go through the cluster's add script; files need no migration, and what is kept is
rare and small.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from torchsm.cluster.server import connect
from torchsm.cluster.settings import cluster_settings, server_url
from torchsm.cluster.work import Added, ClusterWork, check_item_id, new_item_id
from torchsm.config import Config, Home
from torchsm.errors import ClusterUnreachable, TorchsmError
from torchsm.records import record
from torchsm.storage.run_files import write_json
from torchsm.tiers import Tier, parse_tier
from torchsm.work.work_queue import check_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    SetAside = Callable[[str], None]  # told why a kept file was set aside

DIR_NAME = "cluster-adds"
UNREADABLE = ".unreadable"


@record
class Kept:
    """An add kept in this home until the server answers."""

    item_id: str
    priority: Tier

    def as_json(self) -> dict[str, Any]:
        return {"id": self.item_id, "cluster": True, "priority": self.priority.value,
                "added": False, "kept": True}


def add_or_keep(home: Home, config: Config, text: str, priority: Tier | str,
                on_set_aside: SetAside) -> Added | Kept:
    """`queue add --cluster`: the adds kept here first, then this one; kept here too when
    the server does not answer. A bad text or tier is refused now, not at delivery; a
    server that answers but refuses is an error, as before."""
    text, tier, item_id = check_text(text), parse_tier(priority), new_item_id()
    url = server_url(config)  # no server configured at all: an error, nothing kept
    try:
        with connect(url) as server:
            queue = ClusterWork(server, cluster_settings(config))
            deliver(home, queue, on_set_aside)
            return queue.add(text, tier, item_id)
    except ClusterUnreachable:
        return keep(home, text, tier, item_id)


def deliver_kept(home: Home, queue: ClusterWork, on_set_aside: SetAside) -> list[Added]:
    """What a supervisor calls on its turn: the kept adds, when there are any; quiet when
    the server is away (they stay kept)."""
    if not waiting(home):
        return []
    try:
        return deliver(home, queue, on_set_aside)
    except ClusterUnreachable:
        return []


def kept_dir(home: Home) -> Path:
    return home.path / DIR_NAME


def keep(home: Home, text: str, priority: Tier, item_id: str | None = None) -> Kept:
    """Keep an add in this home, durably, under its id (a fresh one when None)."""
    item_id = new_item_id() if item_id is None else item_id
    folder = kept_dir(home)
    folder.mkdir(mode=0o700, exist_ok=True)
    # named by when it was kept: delivered in the order they were added
    name = f"{time.time_ns():020d}-{item_id}.json"
    write_json(folder / name, {"id": item_id, "text": text, "priority": priority.value})
    return Kept(item_id, priority)


def waiting(home: Home) -> list[Path]:
    """The kept adds, oldest first."""
    folder = kept_dir(home)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def deliver(home: Home, queue: ClusterWork, on_set_aside: SetAside) -> list[Added]:
    """Add every kept item to the cluster, oldest first, each file removed once its add is
    answered; a ClusterError (the server away again) stops it, the rest kept. A file that
    is no whole add is set aside, and `on_set_aside` told why."""
    delivered = []
    for path in waiting(home):
        try:
            item = _read(path)
        except (ValueError, TypeError, KeyError, TorchsmError) as exc:
            _set_aside(path, exc, on_set_aside)
            continue
        if item is not None:
            delivered.append(queue.add(*item))
        path.unlink(missing_ok=True)  # another delivery may have removed it first
    return delivered


def _read(path: Path) -> tuple[str, Tier, str] | None:
    """The kept add's text, tier and id, each checked as a new add's would be; None when
    another process delivered it meanwhile."""
    try:
        item = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return (check_text(item["text"]), parse_tier(item["priority"]),
            check_item_id(item["id"]))


def _set_aside(path: Path, exc: Exception, told: SetAside) -> None:
    why = exc.message if isinstance(exc, TorchsmError) else f"{type(exc).__name__}: {exc}"
    try:
        path.rename(path.with_name(path.name + UNREADABLE))
    except FileNotFoundError:
        return  # another delivery set it aside first
    told(f"a kept cluster add cannot be read ({why}): set aside as {path.name}{UNREADABLE}")

