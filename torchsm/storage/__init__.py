"""Storage: the SQLite database, its schema and migrations, the stdlib store the hot paths use, and the files of HOME/run."""
