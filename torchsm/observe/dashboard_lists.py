"""The dashboard's lists, as HTML tables: each Nova's status with its current reason, the
alerts (open and resolved), the recent sessions, the open queue, each Nova's log tail.

What a night away left behind is read here row by row; the charts
(torchsm.observe.dashboard) show its shape. Every stored or printed text reaches the page
through `html_text` (escaped, its control and bidi characters shown as escapes): a log
line is the agent's output, and may be hostile.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Sequence

from torchsm.alerts.conditions import Alert
from torchsm.observe.local_time import WallClock, span
from torchsm.storage.store import NovaRow
from torchsm.terminal import html_text
from torchsm.usage.ledger import SessionRow
from torchsm.work.work_queue import WorkItem

ITEM_TEXT = 120  # characters of an item's text in the queue's list


def section(name: str, title: str, *parts: str) -> str:
    return f'<section id="{name}"><h2>{html_text(title)}</h2>{"".join(parts)}</section>'


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "none") -> str:
    """A table of plain values (None shows as -), scrolling sideways on a narrow screen;
    `empty` when there is no row."""
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    if not body:
        return f'<p class="quiet">{html_text(empty)}</p>'
    heads = "".join(f"<th>{html_text(h)}</th>" for h in head)
    return f'<div class="scroll"><table><tr>{heads}</tr>{body}</table></div>'


def _cell(value: Any) -> str:
    return "-" if value is None else html_text(str(value))


def status(rows: list[dict[str, Any]], novas: dict[str, NovaRow], clock: WallClock) -> str:
    """Each Nova's state, since and until on the reader's clock, and why, as `torchsm
    status` says it."""
    def row(r: dict[str, Any]) -> list[Any]:
        nova = novas.get(r["nova"])
        return [r["nova"], r["state"], clock.when(nova.since) if nova else r["since"],
                clock.when(nova.until) if nova and nova.until else None,
                _next_start(r.get("next_start"), clock), r["why"]]
    return section("novas", "Novas", table(
        ("Nova", "state", "since", "until", "next start", "why"), map(row, rows)))


def _next_start(value: str | None, clock: WallClock) -> str | None:
    """The supervisor's plan says its next start in ISO 8601 UTC; the page, on its clock."""
    if not value:
        return None
    try:
        return clock.when(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return value


def alerts(found: list[Alert], clock: WallClock) -> str:
    opened = sum(1 for a in found if a.resolved_at is None)
    rows = (["open" if a.resolved_at is None else f"resolved {clock.ago(a.resolved_at)}",
             clock.when(a.at), a.kind, a.nova or "all", a.message] for a in found)
    return section("alerts", f"Alerts ({opened} open)", table(
        ("status", "raised", "kind", "Nova", "message"), rows))


def sessions(found: list[SessionRow], clock: WallClock) -> str:
    rows = ([clock.when(s.started_at), s.nova, s.kind, s.item_id, s.outcome,
             None if s.duration_s is None else span(s.duration_s), _cost(s.cost_usd),
             _tokens(s.input_tokens, s.output_tokens)] for s in found)
    return section("sessions", f"Recent sessions (latest {len(found)})", table(
        ("started", "Nova", "kind", "item", "outcome", "duration", "cost", "tokens"), rows))


def _cost(usd: float | None) -> str | None:
    return None if usd is None else f"${usd:.2f}"


def _tokens(given: int | None, taken: int | None) -> str | None:
    if given is None and taken is None:
        return None
    return f"{given or 0} in / {taken or 0} out"


def queue(items: list[WorkItem], depth: int, clock: WallClock) -> str:
    rows = ([i.id, i.priority.value, span(clock.now - i.created_at), i.status.value,
             i.nova or "any", i.claimed_by, _cut(i.text)] for i in items)
    shown = f"the oldest {len(items)} of {depth}" if len(items) < depth else str(depth)
    return section("queue", f"Queue ({shown} open, oldest first)", table(
        ("item", "tier", "age", "status", "for", "claimed by", "text"), rows))


def _cut(text: str) -> str:
    return text if len(text) <= ITEM_TEXT else text[:ITEM_TEXT - 1] + "…"


def logs(tails: dict[str, list[str]], count: int) -> str:
    """Each Nova's last `count` log lines, as text: a line is the agent's, shown as
    `torchsm logs` shows it (controls as escapes), never as markup."""
    parts = []
    for name, lines in tails.items():
        text = "\n".join(html_text(line.rstrip("\n")) for line in lines)
        body = f"<pre>{text}</pre>" if lines else '<p class="quiet">no log yet</p>'
        parts.append(f"<h3>{html_text(name)}</h3>{body}")
    return section("logs", f"Log tails (last {count} lines; `torchsm logs NAME` for more)",
                   *parts)
