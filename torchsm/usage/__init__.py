"""Usage: accounts and their windows, pacing, limits and resets, the budgets, and the session ledger they count."""
