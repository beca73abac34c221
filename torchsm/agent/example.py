"""A small example agent, for running a Nova end to end without an agent CLI:

    torchsm run torch -- python -m torchsm.agent.example {prompt}

It takes the prompt from its arguments (else $TORCHSM_PROMPT, else stdin), "works" on it
for a moment, marks its work item done the way a real agent may (`torchsm queue done
$TORCHSM_ITEM`), and prints what it did. `--fail` makes it fail instead, to watch the
supervisor cool the Nova down.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torchsm.agent.example",
                                     description="torchsm's example agent")
    parser.add_argument("prompt", nargs="*", help="the task (default: $TORCHSM_PROMPT)")
    parser.add_argument("--work-s", type=float, default=0.3, metavar="SECONDS",
                        help="how long the work takes (default: 0.3)")
    parser.add_argument("--fail", action="store_true", help="fail instead (exit status 1)")
    args = parser.parse_args(argv)
    prompt = " ".join(args.prompt) or os.environ.get("TORCHSM_PROMPT") or sys.stdin.read()
    task = (prompt.strip().splitlines() or ["(no prompt)"])[0]
    time.sleep(args.work_s)
    if args.fail:
        print(f"example agent: could not do {task!r}", file=sys.stderr)
        return 1
    item = os.environ.get("TORCHSM_ITEM")
    summary = f"example agent: did {task!r} in {args.work_s:g}s"
    if item:
        _mark_done(item, summary)
        summary += f" and marked item {item} done"
    print(summary)
    return 0


def _mark_done(item: str, result: str) -> None:
    # As an agent would: through the command line, with the home from the environment.
    subprocess.run([sys.executable, "-m", "torchsm", "queue", "done", item, "--result", result],
                   stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=False)


if __name__ == "__main__":
    sys.exit(main())
