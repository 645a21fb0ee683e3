"""The web console: agent and supervisor pages, pushed live over WebSockets."""
