"""Several hosts on one Redis/Dragonfly server (issue 23): hosts, heartbeats and shared work."""
