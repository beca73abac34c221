"""Claude Code's hooks: the handlers, installing them, and scanning for runaway patterns."""
