"""A supervisor's membership of the cluster: its host's heartbeat, the reclaim of dead
hosts' items, and whether this host may still hold cluster work (fail closed).

A beat runs in a thread of its own every `heartbeat_s`, whatever the supervisor is doing
(a session runs for hours), and each beat also runs `reclaim`: several supervisors of one
host beat and reclaim alike, and both are idempotent. After a good beat it runs `also`,
when given: the host's intake of shared memories and messages (torchsm.cluster.intake),
whose failure never counts as a failed beat.

Fail closed: the server counts a host's lease from the server's time of its last beat,
which is later than the moment this host sent it. So "no beat sent successfully for
`lease_s - margin` on this host's clock" is reached before the server's lease ends: a
session holding a cluster item is stopped then (its stop takes at most `margin`), and no
new cluster work is taken, so another host's takeover never overlaps it.

The same rule must hold when this supervisor cannot apply it: paused (SIGSTOP, a stall)
or dead, its beats stop but its agent runs on. So each acknowledged beat also sets the
time of the host's beat file (HOME/run/cluster.beat) to when it was sent, and the agent's
keeper stops a cluster session once that time is `beat_limit_s` old (agent/keeper.py).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

from torchsm.cluster.hosts import Hosts
from torchsm.cluster.server import Server, connect
from torchsm.cluster.settings import ClusterSettings
from torchsm.cluster.work import ClusterWork
from torchsm.errors import ClusterRefused, ClusterUnreachable

SERVER_ERRORS = (ClusterUnreachable, ClusterRefused)

Report = Callable[..., None]  # report(event, message, **data)
Also = Callable[[Server], None]  # more for each good beat (the host's intake), its server


def lease_at_risk(last_sent_ok: float | None, now: float, lease_s: float,
                  margin_s: float) -> bool:
    """Whether this host's lease may end before a session it runs could be stopped: no
    beat acknowledged (counted from when it was sent) within `lease_s - margin_s`."""
    return last_sent_ok is None or now - last_sent_ok >= lease_s - margin_s


def stop_margin_s(lease_s: float, heartbeat_s: float, stop_grace_s: float) -> float:
    """Room for the stop of a session (its grace, and a poll) before the lease ends, at
    most what the lease leaves beyond one heartbeat (a shorter margin on a very short
    lease rather than a host that stops its sessions between two good beats)."""
    return min(stop_grace_s + 0.5, max(lease_s - heartbeat_s, 0) * 0.75)


def beat_limit_s(lease_s: float, heartbeat_s: float, stop_grace_s: float) -> float:
    """How old this host's last acknowledged beat may get while a cluster session runs:
    lease_at_risk's bound, which the session's keeper applies to the beat file."""
    return lease_s - stop_margin_s(lease_s, heartbeat_s, stop_grace_s)


def orphan_limit_s(lease_s: float, heartbeat_s: float, stop_grace_s: float) -> float:
    """How long a cluster session's agent may outlive its supervisor (its keeper stops it
    then): its host's last beat may be a heartbeat older than the death, and the stop
    needs its margin, all before the lease ends."""
    margin = stop_margin_s(lease_s, heartbeat_s, stop_grace_s)
    return max(0.0, lease_s - heartbeat_s - margin)


class Membership:
    """This host in the cluster, for one supervisor: a beating thread, and `work` (its own
    connection) for the supervisor's claims and dones."""

    def __init__(self, url: str, settings: ClusterSettings, clock: Callable[[], float],
                 report: Report, stop_grace_s: float, also: Also | None = None,
                 beat_file: Path | None = None):
        self.settings, self.clock, self.report, self.also = settings, clock, report, also
        self.beat_file = beat_file
        self.margin_s = stop_margin_s(settings.lease_s, settings.heartbeat_s, stop_grace_s)
        self._beat_server: Server = connect(url)
        self._beats = Hosts(self._beat_server, settings.lease_s)
        self._reclaimer = ClusterWork(self._beat_server, settings)
        self.work = ClusterWork(connect(url), settings)
        self.last_sent_ok: float | None = None
        self.last_at_risk: float | None = None  # the latest moment the lease was seen at risk
        self._reachable: bool | None = None  # what the last beat found, for reports
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_forever, name="cluster-beat",
                                        daemon=True)

    @property
    def host(self) -> str:
        return self.settings.host

    def start(self) -> "Membership":
        """Beat once now (so work may be taken at once), then every `heartbeat_s`."""
        self.beat()
        self._thread.start()
        return self

    def beat(self) -> bool:
        """One beat and one reclaim; False when the server could not be reached."""
        sent = self.clock()
        self.at_risk(sent)  # a gap since the last beat (a pause) is remembered
        try:
            self._beats.beat(self.host)
            reclaimed = self._reclaimer.reclaim()
        except SERVER_ERRORS as exc:
            self._heard(False, exc.message)
            return False
        self.last_sent_ok = sent
        if self.beat_file is not None:
            touch(self.beat_file, sent)
        self._heard(True, "")
        if reclaimed.pooled or reclaimed.dead:
            self.report("cluster", f"taken over from dead hosts: {reclaimed.pooled or 'none'}; "
                                   f"dead letters: {reclaimed.dead or 'none'}",
                        pooled=reclaimed.pooled, dead=reclaimed.dead)
        self._also()
        return True

    def _also(self) -> None:
        """What else runs with each good beat; its failure is no failed beat (the lease
        is the beat's alone), and is reported only when the beat itself is fine."""
        if self.also is None:
            return
        try:
            self.also(self._beat_server)
        except SERVER_ERRORS as exc:
            self.report("warning", f"cluster: {exc.message}")

    def at_risk(self, now: float | None = None) -> bool:
        """Whether cluster work must stop (and none be taken): see lease_at_risk."""
        now = self.clock() if now is None else now
        risky = lease_at_risk(self.last_sent_ok, now, self.settings.lease_s, self.margin_s)
        if risky:
            self.last_at_risk = now
        return risky

    def at_risk_since(self, since: float) -> bool:
        """Whether the lease was at risk at any time from `since` on (now included): a
        cluster session's keeper stops its agent then, even while this supervisor is
        paused and cannot see it happen."""
        return self.at_risk() or (self.last_at_risk is not None and self.last_at_risk >= since)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._beat_server.close()
        self.work.server.close()

    def _beat_forever(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            self.beat()

    def _heard(self, reachable: bool, why: str) -> None:
        """Report a change only: the server away, the server back."""
        if reachable == self._reachable:
            return
        self._reachable = reachable
        if reachable:
            self.report("cluster", f"host {self.host} beats on the cluster's server")
        else:
            self.report("warning", f"cluster: no heartbeat ({why}): no cluster work is "
                                   "taken, and a running cluster item stops before the lease "
                                   f"of {self.settings.lease_s:g} s ends")

    def __enter__(self) -> "Membership":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def touch(path: Path, at: float) -> None:
    """The file's time set to `at` (several supervisors of a host touch one file: a beat
    acknowledged later but sent earlier sets an earlier time, which errs on the safe side)."""
    path.touch(mode=0o600)
    os.utime(path, (at, at))
