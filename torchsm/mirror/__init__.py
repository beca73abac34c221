"""The mirror: entries recorded in SQLite, copied to Redis streams, or queued in files while the server is away."""
