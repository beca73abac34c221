"""Migration 0011 (memory sources): memories from before it are given the writer their
`source` names, each counted once in memory_writers; and back down again."""

from test_migration_accounts import T0, at_revision, downgrade, execute, query
from torchsm.config import Home
from torchsm.storage import database


def memory(id_: int, nova_id: int | None, source: str | None, strength: int = 1) -> tuple:
    return ("INSERT INTO memories (id, nova_id, kind, text, key, source, strength, created_at,"
            " updated_at) VALUES (?, ?, 'note', ?, ?, ?, ?, ?, ?)",
            (id_, nova_id, f"memory {id_}", f"k{id_}", source, strength, T0 + id_, T0 + id_))


def test_old_memories_get_the_writer_their_source_names(home_dir):
    home = at_revision(Home(home_dir), "0010")
    execute(home, ("INSERT INTO novas (id, name, personality, state, since, cool_streak,"
                   " created_at) VALUES (1, 'torch', 'torch', 'working', ?, 0, ?)", (T0, T0)),
            memory(1, 1, "agent", strength=7), memory(2, 1, "item:12"), memory(3, 1, "dream:4"),
            memory(4, 1, "cli"), memory(5, None, "agent"), memory(6, 1, None))
    assert database.upgrade(home, revision="0011") == "0011"  # 0012 (issue 21) came after it
    assert query(home, "SELECT id, writer, strength FROM memories ORDER BY id") == [
        (1, "torch", 7), (2, "torch", 1), (3, "dream:4", 1), (4, None, 1), (5, None, 1),
        (6, None, 1)]  # strengths as they were; unknown writers stay unknown
    assert query(home, "SELECT memory_id, writer, at FROM memory_writers ORDER BY 1") == [
        (1, "torch", T0 + 1), (2, "torch", T0 + 2), (3, "dream:4", T0 + 3)]
    downgrade(home, "0010")
    assert "writer" not in [c[1] for c in query(home, "PRAGMA table_info(memories)")]
    assert query(home, "SELECT count(*) FROM memories") == [(6,)]
