"""Agent processes: one session of an agent CLI, its keeper, what it says, and whether one runs now."""
