"""Alerts that reach a person: the conditions, raised once each, and their delivery aside."""
