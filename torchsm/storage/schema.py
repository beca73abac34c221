"""The schema, declared with SQLAlchemy 2. Changed only through migrations/ (Alembic).

Times are REAL seconds since the epoch (UTC): cheap to compare in SQL ("cooldowns in the
last hour"), rendered as ISO 8601 only on output.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Nova(Base):
    __tablename__ = "novas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    personality: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="working")
    since: Mapped[float] = mapped_column(Float)
    until: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    cool_streak: Mapped[int] = mapped_column(Integer, default=0)
    last_cool_until: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    # set by the Stop hook when it let the agent stop with work left; the supervisor
    # honours it within its budget and clears it
    restart_requested_at: Mapped[float | None] = mapped_column(Float)
    restart_reason: Mapped[str | None] = mapped_column(Text)
    # why the Nova waits for a usage window to reset; while set, nothing starts it early
    # (critical wakes included), and with auto_resume = false it waits for a person
    limit_hold: Mapped[str | None] = mapped_column(Text)
    # the account whose usage windows, limit holds and cost budget the Nova shares
    account: Mapped[str] = mapped_column(String(32), server_default="default", index=True)
    # the agent command the Nova keeps, a JSON list of words (0014): it wins over `up`'s
    command: Mapped[str | None] = mapped_column(Text)


class HistoryRow(Base):
    """One accepted transition, written in the same transaction as the state change."""

    __tablename__ = "history"
    __table_args__ = (Index("ix_history_nova_id", "nova_id", "id"),
                      Index("ix_history_event_id", "event_id", unique=True),
                      # a dream's span (0008); covering for `torchsm metrics` (0010)
                      Index("ix_history_nova_at", "nova_id", "at", "id", "event",
                            "limit_hold", "reason"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nova_id: Mapped[int] = mapped_column(ForeignKey("novas.id", ondelete="CASCADE"))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float)
    until: Mapped[float | None] = mapped_column(Float)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    # The mirror entry's id (torchsm.mirror.streams); NULL for rows older than the mirror.
    event_id: Mapped[str | None] = mapped_column(String(32))
    # a usage-limit hold: an announced reset, not overheating (not counted toward meditation)
    limit_hold: Mapped[bool] = mapped_column(Boolean, server_default=text("0"))



class WorkItem(Base):
    """One unit of work for a Nova; claimed under a lease (torchsm.work.work_queue)."""

    __tablename__ = "work_items"
    __table_args__ = (
        # The claim walks this index in claim order (tier rank, then age). It holds open
        # items only, and a claim changes none of its columns, so claiming writes no index
        # page and finishing removes one entry: half the pages of a (status, ...) index.
        Index("ix_work_items_open", "priority_rank", "created_at", "id",
              sqlite_where=text("status IN ('pending', 'claimed')")),
        # a dream reads the items finished in its span (0008)
        Index("ix_work_items_finished", "finished_at",
              sqlite_where=text("finished_at IS NOT NULL")),
        # the item a Nova holds (SessionStart, PreCompact), without a scan (0008)
        Index("ix_work_items_claimed", "claimed_by", "updated_at",
              sqlite_where=text("status = 'claimed'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    # a Nova name, not a foreign key: an item outlives the removal of its Nova
    nova: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    priority_rank: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    lease_until: Mapped[float | None] = mapped_column(Float)
    owner: Mapped[str | None] = mapped_column(String(32))
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # set by `queue import`: makes importing the same file twice add nothing
    source_key: Mapped[str | None] = mapped_column(String(64), unique=True)


class WakeSignal(Base):
    """A classified wake signal for a Nova, pending until it is delivered."""

    __tablename__ = "wake_signals"
    __table_args__ = (
        Index("ix_wake_signals_due", "status", "due_at"),
        Index("ix_wake_signals_nova_received", "nova_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nova_id: Mapped[int] = mapped_column(ForeignKey("novas.id", ondelete="CASCADE"))
    message: Mapped[str] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(String(64))
    tier: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[float] = mapped_column(Float)
    due_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float)
    # the rules that fired, as JSON (what `wake classify --explain` shows)
    rules: Mapped[str] = mapped_column(Text)


class Message(Base):
    """A message from one Nova to another, or to `all`; mirrored by its event_id."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_event_id", "event_id", unique=True),
                      Index("ix_messages_recipient", "recipient", "id"),
                      Index("ix_messages_at", "at", "sender", "recipient"))  # metrics (0010)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(32))
    sender: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(32))  # a Nova's name, or "all"
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float)


class HookRun(Base):
    """One run of a Claude Code hook handler (the hook health monitor counts these)."""

    __tablename__ = "hook_runs"
    # covering for `torchsm metrics` (0010)
    __table_args__ = (Index("ix_hook_runs_nova_event_at", "nova_id", "event", "at", "outcome",
                            "duration_ms"),
                      Index("ix_hook_runs_session", "session_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nova_id: Mapped[int] = mapped_column(ForeignKey("novas.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    session_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    # recorded | continued | allowed | bang | cooled | meditated | context | error
    outcome: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[int | None] = mapped_column(Integer)  # the item a `continued` Stop gave
    detail: Mapped[str | None] = mapped_column(Text)
    # Stop runs: a digest of last_assistant_message (the no-progress breaker compares them)
    message_digest: Mapped[str | None] = mapped_column(String(16))


class AgentSession(Base):
    """The ledger: one agent session started by the supervisor."""

    __tablename__ = "sessions"
    # covering for `torchsm metrics` (0010)
    __table_args__ = (Index("ix_sessions_nova_started", "nova_id", "started_at", "id",
                            "ended_at", "kind", "outcome", "cost_usd", "api_error_status",
                            "signal_id"),
                      # is a session of the Nova live? (torchsm.agent.live; 0011)
                      Index("ix_sessions_running", "nova_id",
                            sqlite_where=text("outcome = 'running'")),
                      # the daily cost budget: sessions by their end (ledger.costs_since; 0013)
                      Index("ix_sessions_nova_ended", "nova_id", "ended_at", "cost_usd"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nova_id: Mapped[int] = mapped_column(ForeignKey("novas.id", ondelete="CASCADE"))
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(16))  # wake | item | dream | restart
    prompt: Mapped[str] = mapped_column(Text)
    item_id: Mapped[int | None] = mapped_column(Integer)
    signal_id: Mapped[int | None] = mapped_column(Integer)
    exit_status: Mapped[int | None] = mapped_column(Integer)
    # running, or a torchsm.outcomes.Outcome
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    agent_session_id: Mapped[str | None] = mapped_column(String(64))
    cost_usd: Mapped[float | None] = mapped_column(Float)
    num_turns: Mapped[int | None] = mapped_column(Integer)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    # what the agent's result reports beside them (0014)
    model: Mapped[str | None] = mapped_column(String(64))
    cache_creation_tokens: Mapped[int | None] = mapped_column(Integer)
    cache_read_tokens: Mapped[int | None] = mapped_column(Integer)
    api_error_status: Mapped[int | None] = mapped_column(Integer)
    limit_events: Mapped[str | None] = mapped_column(Text)  # JSON list
    last_assistant_message: Mapped[str | None] = mapped_column(Text)
    # the agent process (it leads its own group) and its start time in clock ticks after
    # boot (/proc/PID/stat), so that a later supervisor finds it and never a reused pid
    agent_pid: Mapped[int | None] = mapped_column(Integer)
    agent_start_ticks: Mapped[int | None] = mapped_column(Integer)
    # how its ending was answered (torchsm.endings.responses.Kind), by whichever process heard it
    # first: the hook or the supervisor's settle step (0012)
    answer: Mapped[str | None] = mapped_column(String(24))
    answered_at: Mapped[float | None] = mapped_column(Float)


class Snapshot(Base):
    """The work state saved before a context compaction, restored after it."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_nova_at", "nova_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nova_id: Mapped[int] = mapped_column(ForeignKey("novas.id", ondelete="CASCADE"))
    at: Mapped[float] = mapped_column(Float)
    session_id: Mapped[str | None] = mapped_column(String(64))
    trigger: Mapped[str | None] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)  # JSON


class Alert(Base):
    """Something a person should look at (torchsm.alerts.conditions): raised once per condition
    (`key`), open until the condition clears, then resolved; billing and authentication
    failures too."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_at", "at"),
                      # one open alert per condition (0009)
                      Index("ix_alerts_open_key", "key", unique=True,
                            sqlite_where=text("resolved_at IS NULL")),
                      Index("ix_alerts_delivery", "delivery",
                            sqlite_where=text("delivery IN ('pending', 'sending')")))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nova: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    resolved_at: Mapped[float | None] = mapped_column(Float)
    key: Mapped[str | None] = mapped_column(String(128))  # the condition, e.g. bangs:echo
    details: Mapped[str | None] = mapped_column(Text)  # JSON: the value and its threshold
    event_id: Mapped[str | None] = mapped_column(String(32))  # its coordination stream entry
    # [alerts] command: pending | sending | sent | failed (gave up) | none (no command)
    delivery: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    delivery_at: Mapped[float | None] = mapped_column(Float)  # the latest attempt
    last_error: Mapped[str | None] = mapped_column(Text)


class AccountWindow(Base):
    """The latest word of the provider on one usage window (five_hour, seven_day, ...) of
    an account, whichever of its Novas heard it."""

    __tablename__ = "account_windows"
    __table_args__ = (Index("ix_account_windows_account_window", "account", "window",
                            unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(32))
    window: Mapped[str] = mapped_column(String(32))
    status: Mapped[str | None] = mapped_column(String(32))  # allowed | allowed_warning | rejected
    utilization: Mapped[float | None] = mapped_column(Float)  # 0..1
    resets_at: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    # event: a rate_limit_event; text: read from a limit message; retry: an api_retry 429
    source: Mapped[str] = mapped_column(String(8), server_default="event")
    nova: Mapped[str | None] = mapped_column(String(32))  # who heard it
    # the utilization one request costs: the median of `deltas` (JSON, the latest rises)
    per_request: Mapped[float | None] = mapped_column(Float)
    deltas: Mapped[str | None] = mapped_column(Text)


class UsageGrant(Base):
    """A request torchsm let a Nova send (a session start or a Stop continuation) whose
    answer has not been read yet: what the account's Novas share near a window's end."""

    __tablename__ = "usage_grants"
    __table_args__ = (Index("ix_usage_grants_account", "account", "granted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(32))
    nova_id: Mapped[int] = mapped_column(ForeignKey("novas.id", ondelete="CASCADE"))
    granted_at: Mapped[float] = mapped_column(Float)


class AccountPeers(Base):
    """What the cluster's other hosts do on an account (torchsm.cluster.accounts), read
    here so that the hooks, which read the local SQLite only, count it too (0015)."""

    __tablename__ = "account_peers"

    account: Mapped[str] = mapped_column(String(32), primary_key=True)
    in_flight: Mapped[int] = mapped_column(Integer, server_default="0")  # their grants
    running: Mapped[int] = mapped_column(Integer, server_default="0")  # their sessions
    last_start: Mapped[float | None] = mapped_column(Float)  # their latest, on our clock
    # when the server last answered for the account (our clock): the cut-off is told by it
    answered_at: Mapped[float] = mapped_column(Float)


class OutboxEntry(Base):
    """A stream entry committed with the change it reports, waiting to be delivered
    (torchsm.mirror.outbox): ids never reused, so their order is the commit order."""

    __tablename__ = "outbox"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(32))
    nova: Mapped[str] = mapped_column(String(32))
    at: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text)  # JSON


class Dream(Base):
    """One dream of a Nova: deterministic analysis of its stored history (torchsm.dreams.dreaming).
    `status` is `running` until the dream is written whole, in one transaction: a dream
    killed half way stays `running` (shown as interrupted), never as done."""

    __tablename__ = "dreams"
    __table_args__ = (Index("ix_dreams_nova_started", "nova_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nova_id: Mapped[int] = mapped_column(ForeignKey("novas.id", ondelete="CASCADE"))
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))  # running | done | interrupted
    trigger: Mapped[str] = mapped_column(String(16))  # command | supervisor
    # the span of history it read: [span_from, span_to)
    span_from: Mapped[float] = mapped_column(Float)
    span_to: Mapped[float] = mapped_column(Float)
    summary: Mapped[str | None] = mapped_column(Text)
    # what it read, per source, as JSON (counts): evidence of how much it looked at
    read_counts: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(32))


class Insight(Base):
    """What a dream found (phase 0 patterns, 1 reflection) or proposes (phase 2); each
    cites its evidence: ids, counts, time ranges, error text (JSON)."""

    __tablename__ = "insights"
    __table_args__ = (Index("ix_insights_dream", "dream_id", "rank"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dream_id: Mapped[int] = mapped_column(ForeignKey("dreams.id", ondelete="CASCADE"))
    phase: Mapped[int] = mapped_column(Integer)  # 0 patterns | 1 reflection | 2 proposal
    kind: Mapped[str] = mapped_column(String(32))
    # identifies the same finding across dreams (consolidation strengthens it)
    key: Mapped[str] = mapped_column(String(128))
    rank: Mapped[int] = mapped_column(Integer)  # order of importance within the dream
    text: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)  # JSON
    # phase 2: the proposed action as JSON, and the work item it added (propose_work)
    action: Mapped[str | None] = mapped_column(Text)
    work_item_id: Mapped[int | None] = mapped_column(Integer)


class Memory(Base):
    """What a Nova remembers: a note (`memory add`, the agent's own), an episode (a
    finished item), or an insight a dream consolidated. Shared memories (nova_id NULL)
    reach every Nova of the home. Forgotten ones stay, marked, for the history."""

    __tablename__ = "memories"
    __table_args__ = (Index("ix_memories_nova_live", "nova_id", "updated_at",
                            sqlite_where=text("forgotten_at IS NULL")),
                      Index("ix_memories_key", "nova_id", "key"),
                      Index("ix_memories_event_id", "event_id", unique=True))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nova_id: Mapped[int | None] = mapped_column(ForeignKey("novas.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # note | episode | insight
    text: Mapped[str] = mapped_column(Text)
    # the same memory again strengthens it instead of adding a row: a digest of its
    # normalised text (notes, episodes) or the insight's key
    key: Mapped[str] = mapped_column(String(128))
    source: Mapped[str | None] = mapped_column(String(64))  # agent | item:ID | dream:ID | ...
    # who wrote it: the Nova whose session did, dream:ID, user:NAME (None: from before 0011)
    writer: Mapped[str | None] = mapped_column(String(64))
    strength: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    forgotten_at: Mapped[float | None] = mapped_column(Float)
    forgotten_why: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(32))


class MemoryWriter(Base):
    """Each distinct writer of a memory, once: a memory's strength counts its writers, so
    one writer repeating itself never outranks what others agree on (0011)."""

    __tablename__ = "memory_writers"

    memory_id: Mapped[int] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"),
                                           primary_key=True)
    writer: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[float] = mapped_column(Float)
