"""What a usage limit learned by one Nova does to every Nova on its account.

Whoever hears the provider (the supervisor reading a session's `rate_limit_event` as it
comes, the StopFailure hook, a finished session's result) stores it for the account, and
the account's verdict (torchsm.usage.pacing) is then enforced on all of its Novas: at a stop each
is held until the reset plus the margin, following the structured reset earlier or later
than one read from a message; when a structured word says the windows no longer stop, a
limit hold begun before it ends.
"""

from __future__ import annotations


from torchsm.config import Config, Home, usage_for
from torchsm.storage import store
from torchsm.usage import accounts, pacing

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only: the Stop hook imports this module
    from typing import Iterable


def learn(db: store.Store, home: Home, config: Config, account: str,
          rows: Iterable[accounts.WindowRow], now: float,
          answered_by: int | None = None) -> pacing.Verdict:
    """Store what was heard of the account's windows and enforce what they now say.
    `answered_by`: the Nova whose request this answer was (its grant ends in the same
    transaction)."""
    rows = list(rows)

    def write(conn) -> None:
        if answered_by is not None:
            accounts.answered(conn, answered_by)
        accounts.learn(conn, account, rows, now)

    db.write(write)
    structured = any(row.structured for row in rows)
    return enforce(db, home, config, account, now, after_structured=structured)


def learn_shared(db: store.Store, home: Home, config: Config, account: str,
                 rows: Iterable[accounts.WindowRow], now: float) -> pacing.Verdict | None:
    """What the cluster's hosts heard of the account, merged on its server
    (torchsm.cluster.accounts): stored and enforced as if a Nova here had heard it, so a
    limit heard on another host holds this host's Novas. None: nothing new."""
    rows = list(rows)
    news = db.read(lambda conn: accounts.news(conn, account, rows))
    return learn(db, home, config, account, news, now) if news else None


def verdict(conn, config: Config, account: str, now: float,
            nova_id: int | None = None) -> pacing.Verdict:
    """The account's verdict; with `nova_id`, counting the other Novas' requests in flight
    (what a Nova about to send one must share)."""
    flying = accounts.in_flight(conn, account, nova_id, now) if nova_id is not None else 0
    return pacing.verdict(accounts.load_windows(conn, account), usage_for(config, account),
                          now, flying)


def enforce(db: store.Store, home: Home, config: Config, account: str, now: float,
            after_structured: bool = False) -> pacing.Verdict:
    def read(conn):
        return verdict(conn, config, account, now), store.novas_on_account(conn, account)

    found, members = db.read(read)
    if found.kind == "stop":
        hold(home, config, members, found, now)
    elif after_structured:
        _release(db, members, now)
    return found


def hold(home: Home, config: Config, members: list[store.NovaRow], stop: pacing.Verdict,
         now: float) -> list:
    """Hold every Nova of the account until the stop's time (those held so already are
    left alone: a limit is read again with every answer). Returns the transitions."""
    from torchsm import novas  # the state machine loads only when a limit is hit

    results = []
    for nova in members:
        if nova.limit_hold and nova.until == stop.until:
            continue
        results.append(novas.hold_for_limit(home, config, nova.name, until=stop.until,
                                            reason=stop.why, now=now))
    return results


def _release(db: store.Store, members: list[store.NovaRow], now: float) -> None:
    from torchsm import novas

    held = [n for n in members if novas.held_for_limit(n) and (n.until or 0) > now]
    if not held:
        return

    def write(conn) -> None:
        for nova in held:
            current = store.load_nova(conn, nova.name)
            if current is not None:
                novas.release_limit_hold(conn, current, now)

    db.write(write)


def refused(db: store.Store, home: Home, config: Config, nova: store.NovaRow, message: str,
            now: float, source: str = "text") -> tuple[pacing.Verdict, str | None]:
    """A request of `nova` was refused for a limit (a 429, a usage-limit message, an
    api_retry): hold the account. The window refused is the fullest live one the provider
    announced (its structured reset stands); with none, the message's reset (capped to
    what its window can last). With no reset anywhere the Nova cools with its backoff
    (growing, toward meditation: a limit nobody explains may be ours) and the account's
    other Novas hold as long, unless that refusal is already being waited out (the hook
    and the end of the same session both report it). Returns the verdict and a warning."""
    from torchsm.usage import resets

    windows = db.read(lambda conn: accounts.load_windows(conn, nova.account))
    live = [w for w in windows if w.resets_at and w.resets_at > now]
    announced = [w for w in live if w.structured]
    warning = None
    if announced:
        w = max(announced, key=lambda w: (w.utilization or 0, w.resets_at))
        row = w._replace(status="rejected", updated_at=now, nova=nova.name)
    else:
        reset, warning = resets.text_reset(message, now)
        window = resets.window_from_text(message) or "unknown"
        if reset is None:
            if any(w.source == "backoff" for w in live):
                return enforce(db, home, config, nova.account, now), None
            reset, source = _back_off(home, config, nova, message, now), "backoff"
        row = accounts.WindowRow(window, "rejected", None, reset, now, source, nova.name)
    return learn(db, home, config, nova.account, [row], now), warning


def _back_off(home: Home, config: Config, nova: store.NovaRow, message: str,
              now: float) -> float:
    from torchsm import novas

    why = f"rate limit: {message or 'request refused'}"[:300]
    return novas.safety_cool(home, config, nova.name, reason=why, now=now).until
