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


class HistoryRow(Base):
    """One accepted transition, written in the same transaction as the state change."""

    __tablename__ = "history"
    __table_args__ = (Index("ix_history_nova_id", "nova_id", "id"),
                      Index("ix_history_event_id", "event_id", unique=True))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nova_id: Mapped[int] = mapped_column(ForeignKey("novas.id", ondelete="CASCADE"))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float)
    until: Mapped[float | None] = mapped_column(Float)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    # The mirror entry's id (torchsm.mirror); NULL for rows older than the mirror.
    event_id: Mapped[str | None] = mapped_column(String(32))



class WorkItem(Base):
    """One unit of work for a Nova; claimed under a lease (torchsm.workqueue)."""

    __tablename__ = "work_items"
    __table_args__ = (
        # The claim walks this index in claim order (tier rank, then age). It holds open
        # items only, and a claim changes none of its columns, so claiming writes no index
        # page and finishing removes one entry: half the pages of a (status, ...) index.
        Index("ix_work_items_open", "priority_rank", "created_at", "id",
              sqlite_where=text("status IN ('pending', 'claimed')")),
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
                      Index("ix_messages_recipient", "recipient", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(32))
    sender: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(32))  # a Nova's name, or "all"
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float)
