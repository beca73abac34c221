"""`torchsm run`'s signal handling (process.stop_on_signals) never takes a lock in a signal
handler: the supervisor's main thread sleeps in `stop.wait()`, and a SIGTERM whose handler
ran while that wait held the Event's lock (just woken, not yet out of `with self._cond`)
deadlocked the supervisor for good (a SIGTERM round of bench_alerts hung past 120 s)."""

from __future__ import annotations

import subprocess
import sys

# The main thread holds the Event's internal lock when the signal arrives: the state in
# which Event.wait sits between waking and returning. Then the stop must still come.
HELD_LOCK_AT_THE_SIGNAL = """
import os, signal, sys, threading
from torchsm.supervisor import process
stop = threading.Event()
with process.stop_on_signals(stop) as received:
    with stop._cond:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass  # the handler runs here, between bytecodes, the lock held
    print(stop.wait(5), [signal.Signals(s).name for s in received])
"""


def run_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)


def test_a_signal_while_the_stop_event_is_locked_still_stops():
    try:
        done = run_child(HELD_LOCK_AT_THE_SIGNAL)
    except subprocess.TimeoutExpired:
        raise AssertionError("deadlocked: the signal handler waited for a lock its own "
                             "thread held") from None
    assert (done.returncode, done.stdout, done.stderr) == (0, "True ['SIGTERM']\n", "")


def test_each_signal_is_reported_once_in_order():
    code = """
import os, signal, threading
from torchsm.supervisor import process
stop = threading.Event()
with process.stop_on_signals(stop) as received:
    os.kill(os.getpid(), signal.SIGHUP)
    stop.wait(5)
    os.kill(os.getpid(), signal.SIGINT)
    threading.Event().wait(0.5)
print([signal.Signals(s).name for s in received], signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
"""
    done = run_child(code)
    assert (done.returncode, done.stdout, done.stderr) == (
        0, "['SIGHUP', 'SIGINT'] True\n", "")
