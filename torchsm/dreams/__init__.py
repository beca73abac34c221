"""Dreams and memory: a Nova's idle time turned into insight, and what the next session is given."""
