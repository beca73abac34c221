"""Shared accounts: what any host hears of an account reaches every host of the cluster.

Each host publishes what it heard of the account's windows itself (a rate-limit event, a
refusal, a hold: a hold is a window `rejected` until its reset), its requests in flight,
its running sessions and its latest start; the server merges the windows (the later reset
wins; at an equal reset the higher utilization; a stored reset already past, by the
server's TIME, yields to any new report: torchsm.cluster.account_scripts) and answers with
the merged windows and the other hosts' counts. The host then stores them in its own
SQLite: the merged windows through the usage side's `limits.learn_shared` (so a limit
heard on host A holds host B's Novas of the account, and B's hooks, which read the local
SQLite only, decide on it), the others' counts in `account_peers` (the pacing verdict and
admission count them).

A supervisor with `[cluster] enabled` runs a `Syncer` beside its loop: every `sync_s`,
at once when something heard on this host changes the account's windows or its requests
in flight, and at once when the server says another host's sync changed the merged state
(`News`): so a host hears the others' news in tens of milliseconds, not at its next turn,
and the last request of a window is not sent from two hosts that each missed the other. When the
server stops answering nothing is written: `account_peers.answered_at` ages, and past
`lease_s` admission starts no new session of the account (fail closed), while running
sessions go on and what this host hears itself still holds it.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager, nullcontext

from torchsm.agent import orphans
from torchsm.cluster import account_scripts
from torchsm.cluster.server import Server, connect
from torchsm.cluster.settings import ClusterSettings, cluster_settings, server_url
from torchsm.config import Config, Home
from torchsm.errors import ClusterError
from torchsm.records import record
from torchsm.storage import store
from torchsm.usage import accounts, ledger, limits
from torchsm.usage.server_grants import window_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

WATCH_POLL_S = 0.025  # how soon news heard here is published (one PRAGMA per poll)
START_LOOKBACK_S = 3600.0  # a start older than this spaces no other start


@record
class Local:
    """What this host publishes of an account."""

    windows: list[accounts.WindowRow]  # heard here
    grants: list[str]  # its requests in flight: NOVA@TOKEN (accounts.grant_token)
    running: list[str]  # the ids of the sessions whose agent runs
    last_start: float | None  # this host's clock


@record
class Merged:
    """What the server answers: the merged windows and the other hosts' counts."""

    server_time: float
    windows: list[accounts.WindowRow]
    others_in_flight: int
    others_running: int
    others_last_start: float | None  # the server's clock


SOURCES = ("event", "retry", "text", "backoff")  # accounts.WindowRow.source's words


def window_row(raw: str | bytes, now: float) -> accounts.WindowRow | None:
    """A merged window as the local account_windows stores it (`nova`: HOST:NOVA), its
    numbers checked as any window heard from outside is (another host wrote it); None
    when it cannot be read."""
    try:
        w = json.loads(raw)
        name, heard = str(w["window"]), accounts._number(w.get("heard_at"))
    except (ValueError, TypeError, KeyError):
        return None
    part = {"utilization": w.get("utilization"), "resetsAt": w.get("resets_at"),
            "status": w.get("status")}
    by = w.get("by") if isinstance(w.get("by"), str) else None
    heard = now if heard is None or heard > now else heard
    source = w.get("source") if w.get("source") in SOURCES else "event"
    row, _ = accounts.checked_window(name, part, now, heard, source, by and by[:100])
    return row


class SharedAccounts:
    """One account's sync with the server, from this host."""

    def __init__(self, server: Server, settings: ClusterSettings):
        self.server = server
        self.settings = settings
        self._sync = server.script(account_scripts.SYNC)
        self.offset = 0.0  # the server's clock minus ours, at the latest exchange

    def exchange(self, account: str, local: Local, now: float) -> Merged:
        """Publish what this host knows of `account` (at `now`, its clock) and read the
        merged state back."""
        start = "" if local.last_start is None else repr(local.last_start + self.offset)
        windows = [window_json(w, self.settings.host) for w in local.windows]
        reply = self.server.run(
            self._sync, account_scripts.account_keys(account),
            [account, self.settings.host, self.settings.lease_s, start, len(windows),
             *windows, json.dumps(local.grants), json.dumps(local.running),
             account_scripts.news_channel(account)])
        merged = _merged(reply)
        self.offset = merged.server_time - now
        return merged


def _merged(reply: list) -> Merged:
    server_time, flat, in_flight, running, latest = reply
    rows = (window_row(flat[i + 1], float(server_time)) for i in range(0, len(flat), 2))
    windows = [row for row in rows if row is not None]
    return Merged(float(server_time), windows, int(in_flight), int(running),
                  float(latest) if latest else None)


# --- this host's side: read what to publish, store what was answered ----------------------

def read_local(conn, account: str, now: float) -> Local:
    windows = [w for w in accounts.load_windows(conn, account) if accounts.heard_locally(w)]
    # as admission.running_agents counts: a session not launched yet counts, a dead agent not
    running = [str(sid) for sid, pid, ticks in ledger.running_on_account(conn, account)
               if pid is None or ticks is None or orphans.alive_as_recorded(pid, ticks)]
    # no Nova has id 0: the latest start of all the account's Novas here
    last = ledger.latest_start_of_others(conn, account, 0, now - START_LOOKBACK_S)
    return Local(windows, accounts.grant_tokens(conn, account, now), running, last)


def peers_of(merged: Merged, offset: float, now: float) -> accounts.Peers:
    """The others' counts on this host's clock, answered at `now`."""
    last = None if merged.others_last_start is None else merged.others_last_start - offset
    return accounts.Peers(merged.others_in_flight, merged.others_running, last, now)


# --- the supervisor's sync -----------------------------------------------------------------

class News:
    """The server's word that another host's sync changed an account's merged state
    (account_scripts.news_channel): a wait that ends when it comes. A server away reads
    as no news: the periodic sync finds it away and says so."""

    def __init__(self, server: Server, host: str):
        self.host = host
        self._pubsub = server.client.pubsub(ignore_subscribe_messages=True)
        self._account: str | None = None

    def follow(self, account: str) -> None:
        """Listen to `account` (only: a Nova moved to another account follows it)."""
        if account == self._account:
            return
        if self._account is not None:
            self._pubsub.unsubscribe(account_scripts.news_channel(self._account))
        self._pubsub.subscribe(account_scripts.news_channel(account))
        self._account = account

    def wait(self, timeout_s: float) -> bool:
        """Whether another host said it had news within `timeout_s` (all waiting news is
        read: one sync answers it all)."""
        message = self._pubsub.get_message(timeout=timeout_s)
        told = False
        while message is not None:
            told = told or _said_by_other(message, self.host)
            message = self._pubsub.get_message(timeout=0)
        return told

    def close(self) -> None:
        self._pubsub.close()


def _said_by_other(message: dict, host: str) -> bool:
    data = message.get("data")
    return message.get("type") == "message" and (
        data.decode() if isinstance(data, bytes) else str(data)) != host


class Syncer:
    """Syncs the account of one Nova with the cluster, in a thread beside its supervisor."""

    def __init__(self, home: Home, config: Config, nova: str, report: Callable,
                 clock: Callable[[], float]):
        self.home, self.config, self.nova = home, config, nova
        self.report, self.clock = report, clock
        self.settings = cluster_settings(config)
        self.server = connect(server_url(config))
        self.shared = SharedAccounts(self.server, self.settings)
        self.news = News(self.server, self.settings.host)
        self.stop = threading.Event()
        self.account: str | None = None  # as of the latest sync
        self._published: tuple | None = None
        self._cut_off_said = False

    def sync_once(self) -> Merged | None:
        """One exchange for the Nova's current account; None when the server did not
        answer (nothing is written: the cut-off is told by the age of the last answer)."""
        now = self.clock()
        with store.open_store(self.home, self.config.db.lock_timeout_s) as db:
            account, local = db.read(lambda conn: self._local(conn, now))
            self.account = account
            db.write(lambda conn: accounts.share(conn, account, now))
            try:
                merged = self.shared.exchange(account, local, now)
            except ClusterError as exc:
                self._say_cut_off(str(exc))
                return None
            peers = peers_of(merged, self.shared.offset, now)
            db.write(lambda conn: accounts.store_peers(conn, account, peers))
            limits.learn_shared(db, self.home, self.config, account, merged.windows, now)
        self._published = _signature(local)
        self._say_back()
        return merged

    def _local(self, conn, now: float) -> tuple[str, Local]:
        account = store.nova_named(conn, self.nova).account
        return account, read_local(conn, account, now)

    def run(self) -> None:
        """Sync every `sync_s`, and at once when news is heard here or told by another
        host."""
        from torchsm.storage.change_watch import ChangeWatch

        next_sync = 0.0
        with ChangeWatch(self.home) as watch:
            while not self.stop.is_set():
                told = self._told(WATCH_POLL_S)
                now = self.clock()
                if told or now >= next_sync or (watch.changed() and self._heard_news(watch)):
                    self._sync_quietly()
                    next_sync = now + self.config.cluster.sync_s

    def _told(self, timeout_s: float) -> bool:
        """Wait for another host's news (at most `timeout_s`); a server that does not
        answer is waited out as a plain pause."""
        try:
            with self.server.answers():
                if self.account is not None:
                    self.news.follow(self.account)
                return self.news.wait(timeout_s)
        except ClusterError:
            self.stop.wait(timeout_s)
            return False

    def _heard_news(self, watch) -> bool:
        found = watch.read(lambda conn: self._local(conn, self.clock()))
        return found is not None and _signature(found[1]) != self._published

    def _sync_quietly(self) -> None:
        # the sync serves the loop beside it: a failure is reported, never raised
        try:
            self.sync_once()
        except Exception as exc:  # noqa: BLE001 - a locked database, a Nova removed
            self.report({"event": "warning", "nova": self.nova,
                         "message": f"cluster sync: {type(exc).__name__}: {exc}"})

    def _say_cut_off(self, detail: str) -> None:
        if not self._cut_off_said:
            self._cut_off_said = True
            self.report({"event": "warning", "nova": self.nova, "message":
                         f"{detail}; after lease_s ({self.settings.lease_s:g} s) no new "
                         "session of a shared account starts"})

    def _say_back(self) -> None:
        if self._cut_off_said:
            self._cut_off_said = False
            self.report({"event": "cluster", "nova": self.nova,
                         "message": "the cluster server answers again"})

    def close(self) -> None:
        self.stop.set()
        self.news.close()
        self.server.close()


def _signature(local: Local) -> tuple:
    """What of this host's word is news when it changes: its windows and its requests in
    flight."""
    windows = tuple((w.window, w.status, w.utilization, w.resets_at) for w in local.windows)
    return windows, tuple(local.grants)


@contextmanager
def _syncing(home: Home, config: Config, nova: str, report: Callable,
             clock: Callable[[], float]) -> Iterator[Syncer]:
    syncer = Syncer(home, config, nova, report, clock)
    syncer._sync_quietly()  # before the loop: its first admission sees the cluster
    thread = threading.Thread(target=syncer.run, name=f"cluster-sync-{nova}", daemon=True)
    thread.start()
    try:
        yield syncer
    finally:
        syncer.stop.set()
        thread.join(timeout=5)
        syncer.close()


def syncing(home: Home, config: Config, nova: str, report: Callable[[dict[str, Any]], None],
            clock: Callable[[], float]):
    """While the supervisor of `nova` runs: its account synced with the cluster, when the
    home's `[cluster] enabled`; nothing otherwise (one host, as before)."""
    if not config.cluster.enabled:
        return nullcontext()
    return _syncing(home, config, nova, report, clock)


# --- what `cluster status` shows -------------------------------------------------------------

def accounts_status(server: Server, now: float) -> list[dict[str, Any]]:
    """Each shared account's merged windows, and its requests in flight and running
    sessions per host (`now`: the server's time; what lapsed is left out)."""
    from torchsm.clock import format_time

    with server.answers():
        names = sorted(n.decode() for n in server.client.smembers(account_scripts.ACCOUNTS_KEY))
    found = []
    for account in names:
        windows_key, grants_key, running_key, _, taken_key, _ = account_scripts.account_keys(
            account)
        with server.answers():
            windows = server.client.hgetall(windows_key)
            grants = {*server.client.zrangebyscore(grants_key, now, "+inf"),
                      *server.client.zrangebyscore(taken_key, now, "+inf")}
            running = server.client.zrangebyscore(running_key, now, "+inf")
        rows = [row for _, raw in sorted(windows.items())
                if (row := window_row(raw, now)) is not None]
        found.append({"account": account, "windows": [
            {"window": w.window, "utilization": w.utilization, "status": w.status,
             "resets_at": format_time(w.resets_at), "heard_at": format_time(w.updated_at),
             "heard_by": w.nova} for w in rows],
            "in_flight": _per_host(grants), "running": _per_host(running)})
    return found


def _per_host(members) -> dict[str, int]:
    counts: dict[str, int] = {}
    for member in members:
        host = member.decode().split(":", 1)[0]
        counts[host] = counts.get(host, 0) + 1
    return counts
