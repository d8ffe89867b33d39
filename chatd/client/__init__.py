"""The command-line client: REST (api), a resuming WebSocket (live), the terminal UI."""
