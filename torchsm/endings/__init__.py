"""How a turn or a session ended, and the one answer to it."""
