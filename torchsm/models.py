"""The schema, declared with SQLAlchemy 2. Changed only through migrations/ (Alembic).

Times are REAL seconds since the epoch (UTC): cheap to compare in SQL ("cooldowns in the
last hour"), rendered as ISO 8601 only on output.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
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
