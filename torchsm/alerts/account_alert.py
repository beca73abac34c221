"""The alert an account error raises (billing, authentication, permission): written by
whichever process answers the ending (torchsm.endings.answers, on the StopFailure hook's
path, so it stays light), announced and resolved by torchsm.alerts.conditions."""

from __future__ import annotations


def raise_for(conn, *, nova: str | None, at: float, kind: str, message: str) -> None:
    """One open alert per Nova, however many hooks and sessions report the same failure;
    it resolves once the Nova has left its meditation."""
    conn.execute("INSERT OR IGNORE INTO alerts (nova, at, kind, message, key)"
                 " VALUES (?, ?, ?, ?, ?)", (nova, at, kind, message, f"account:{nova}"))
