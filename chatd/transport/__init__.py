"""HTTP and WebSocket: JSON in and out, errors rendered in one place."""
