"""`torchsm mirror status|flush`."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, pass_env
from torchsm.mirror import streams as mirror_lib


@click.group()
@common_options
def mirror() -> None:
    """The Redis/Dragonfly mirror and its file queues."""


@mirror.command("status")
@common_options
@pass_env
def mirror_status(env: Env) -> None:
    """Show the mirror URL, whether the server answers, and what is queued."""
    status = mirror_lib.mirror_status(env.home, env.config)
    env.emit(status, lambda: _status_text(status))


def _status_text(status: dict) -> str:
    if not status["enabled"]:
        reachable = 'off (redis_url = "off")'
    elif status["reachable"]:
        reachable = f"yes ({status['latency_ms']:.2f} ms)"
    else:
        reachable = f"no ({status['error']})"
    outage = status["last_outage"]
    lines = [("url", status["url"]), ("reachable", reachable),
             ("last success", status["last_success"] or "never")]
    if outage:
        remembered = " (remembered: publishing goes to the file queue)" \
            if status["outage_remembered"] else ""
        lines.append(("last outage", f"{outage['at']}: {outage['error']}{remembered}"))
    lines += [(f"queued {stream}", str(count)) for stream, count in status["queued"].items()]
    lines += [(f"rejected {stream}", str(count))
              for stream, count in status["rejected"].items() if count]
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in lines)


@mirror.command("flush")
@common_options
@pass_env
def mirror_flush(env: Env) -> None:
    """Replay the file queues to the server, in order; each entry lands once."""
    report = mirror_lib.flush(env.home, env.config)
    env.emit(report.as_json(), lambda: _flush_text(report.as_json()))


def _flush_text(report: dict) -> str:
    if not (report["published"] or report["duplicates"] or report["rejected"]):
        return "nothing queued"
    lines = [f"replayed {report['published']} entries"
             + (f" ({report['duplicates']} more were already in the stream)"
                if report["duplicates"] else "")]
    for stream, path in report["rejected_files"].items():
        count = report["streams"][stream]["rejected"]
        lines.append(f"moved {count} corrupt line{'s' if count != 1 else ''} to {path}")
    return "\n".join(lines)
