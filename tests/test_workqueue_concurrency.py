"""Many real processes claiming from one queue: no item handed out twice, none lost."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter

from torchsm import novas
from torchsm.work import work_queue
from torchsm.work.work_queue import ItemStatus

WORKER = """
import json, sys, time
from pathlib import Path
from torchsm.work import work_queue
from torchsm.config import Home, load_config

home, go, nova = Home(Path(sys.argv[1])), Path(sys.argv[2]), sys.argv[3]
claimed = []
with work_queue.open_queue(home, load_config(home)) as queue:
    while not go.exists():
        time.sleep(0.001)
    while (item := queue.try_claim(nova)) is not None:
        claimed.append(item.id)
        queue.done(item.id, owner=item.owner)
print(json.dumps(claimed))
"""

CLAIM_AND_HANG = """
import sys, time
from pathlib import Path
from torchsm.work import work_queue
from torchsm.config import Home, load_config

home = Home(Path(sys.argv[1]))
with work_queue.open_queue(home, load_config(home)) as queue:
    item = queue.claim("torch", lease_s=float(sys.argv[2]))
    print(item.id, flush=True)
    time.sleep(60)
"""


def start(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_eight_processes_never_share_or_lose_an_item(home, config, tmp_path):
    names = ["torch", "echo", "helix", "vaeris"]
    for name in names:
        novas.add(home, config, name)
    with work_queue.open_queue(home, config) as queue:
        for n in range(3000):
            target = names[n % 4] if n % 3 == 0 else None  # a third are targeted
            queue.add(f"item {n}", nova=target, priority=["high", "medium", "low"][n % 3])
        all_items = {i.id: i for i in queue.items()}
    go = tmp_path / "go"
    workers = [(names[n % 4], start(WORKER, home.path, go, names[n % 4])) for n in range(8)]
    time.sleep(0.5)  # let every interpreter start, then release them at once
    go.touch()
    claims: dict[int, str] = {}
    counts: Counter = Counter()
    for nova, proc in workers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        for item_id in json.loads(out):
            counts[item_id] += 1
            claims[item_id] = nova
    assert [i for i, c in counts.items() if c > 1] == []  # none handed out twice
    assert set(counts) == set(all_items)  # none lost
    for item_id, item in all_items.items():
        assert item.nova in (None, claims[item_id])  # targeted items went to their Nova
    with work_queue.open_queue(home, config) as queue:
        finished = queue.items()
    assert {(i.status, i.attempts) for i in finished} == {(ItemStatus.DONE, 1)}
    assert len(set(claims.values())) == 4  # every Nova got work


def test_eight_cli_processes_claiming_five_items(cli):
    cli("nova", "add", "torch")
    ids = {cli("queue", "add", f"task {n}").out.strip() for n in range(5)}
    procs = [subprocess.Popen([*cli_command(), "queue", "claim", "--nova", "torch", "--json"],
                              env=cli.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True) for _ in range(8)]
    results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]
    claimed = [str(json.loads(out)["id"]) for code, out, _ in results if code == 0]
    refusals = [err for code, _, err in results if code == 1]
    assert sorted(claimed) == sorted(ids)
    assert refusals == ["torchsm: error: nothing to claim for torch\n"] * 3


def cli_command() -> list[str]:
    from helpers import torchsm_executable

    return torchsm_executable()


def test_a_killed_claimer_loses_its_item_to_the_next_claim_after_the_lease(home, config):
    novas.add(home, config, "torch")
    with work_queue.open_queue(home, config) as queue:
        queue.add("survives its worker")
    proc = start(CLAIM_AND_HANG, home.path, 30)
    item_id = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with work_queue.open_queue(home, config) as queue:
        assert queue.try_claim("torch") is None  # the dead worker's lease still holds
        retry = queue.claim("torch", now=time.time() + 31)
        assert (retry.id, retry.attempts) == (item_id, 2)
