"""The Stop hook's cost when its account is shared with a live host (issue 23).

    .venv/bin/python bench/bench_stop_peer.py [--rounds 40]

With another host live on the account, each continuation's grant is also taken on the
cluster's server (torchsm.usage.server_grants): one connection and one script call more
on the hook path. Four cases, interleaved in one run, whole processes, medians: the
foundation's baseline process; `hook stop` continuing in a home alone (no server); the
same in a home of a cluster (`[cluster] enabled`, a redis-server on loopback, so its
mirror publishes too) with no live peer; and in one whose account has a live peer, as its
supervisor's sync would have stored it. The last two differ by the grant taken on the
server. Target (issue 5): stop <= 5x.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import tempfile
import time
from pathlib import Path

from bench_cli import BASELINE
from bench_cluster import start_redis
from bench_hooks import PAYLOAD, timed
from common import bench_setup, machine, median_ms
from torchsm.cluster.server import connect
from torchsm.config import Home
from torchsm.storage import store
from torchsm.usage import accounts

QUIET = "[safety]\nhook_burst = 1000000\n[supervisor]\nmax_continuations = 1000000\n"


def with_items(torchsm: str, home: Path, env: dict[str, str], count: int) -> None:
    items = home / "items.txt"
    items.write_text("".join(f"bench item {n}\n" for n in range(count)))
    subprocess.run([torchsm, "queue", "import", str(items)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cluster_home(torchsm: str, url: str, env: dict[str, str], host: str
                 ) -> tuple[Path, dict]:
    home = Path(tempfile.mkdtemp(prefix=f"torchsm-bench-stop-{host}-"))
    env = {**env, "TORCHSM_HOME": str(home), "TORCHSM_REDIS_URL": url}
    for argv in (["init"], ["nova", "add", "torch"]):
        subprocess.run([torchsm, *argv], env=env, check=True, stdout=subprocess.DEVNULL)
    (home / "torchsm.toml").write_text(
        f'redis_url = "{url}"\n{QUIET}[cluster]\nenabled = true\nhost = "{host}"\n')
    return home, env


def a_live_peer(home: Path) -> None:
    """Another host runs a session of the account, heard a moment ago."""
    now = time.time()
    with store.open_store(Home(home)) as db:
        db.write(lambda conn: accounts.store_peers(
            conn, "default", accounts.Peers(0, 1, now - 1, now)))


def connections(url: str) -> int:
    with connect(url) as server:
        return int(server.client.info("stats")["total_connections_received"])


def main() -> None:
    args, bin_dir, home, env = bench_setup(__doc__.split("\n\n")[0], "torchsm-bench-stop-")
    torchsm = str(bin_dir / "torchsm")
    (home / "torchsm.toml").write_text(QUIET)
    proc, url = start_redis()
    try:
        lone_home, lone_env = cluster_home(torchsm, url, env, "bench-lone")
        peer_home, peer_env = cluster_home(torchsm, url, env, "bench-a")
        for where, where_env in ((home, env), (lone_home, lone_env), (peer_home, peer_env)):
            with_items(torchsm, where, where_env, args.rounds + 10)
        stdin = json.dumps(PAYLOAD).encode()
        stop = [torchsm, "hook", "stop", "--nova", "torch"]
        cases = {
            "baseline: python + sqlite3 + one UPDATE": (
                [str(bin_dir / "python"), "-c", BASELINE, str(home / "torchsm.db")], env),
            "hook stop (continues), home alone": (stop, env),
            "hook stop (continues), in a cluster, no live peer": (stop, lone_env),
            "hook stop (continues), a live peer: grant taken on the server": (stop, peer_env),
        }
        before = connections(url)
        timings: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            a_live_peer(peer_home)
            for name, (argv, case_env) in cases.items():
                timings[name].append(timed(argv, case_env, stdin))
        reached = connections(url) - before
    finally:
        proc.terminate()
        proc.wait(10)
    base = median_ms(timings[next(iter(cases))])
    print(f"# torchsm hook stop with a live cluster peer, {dt.date.today()}, "
          f"{args.rounds} interleaved rounds")
    print(f"# {machine()}; the server was reached {reached} times in {args.rounds} rounds\n")
    print("| process | median ms | ratio to baseline |")
    print("|---|---|---|")
    for name, values in timings.items():
        ms = median_ms(values)
        print(f"| {name} | {ms:.1f} | {ms / base:.2f}x |")


if __name__ == "__main__":
    main()
