"""Observing: metrics, health, alerts, the dashboard, the HTTP server and doctor."""
