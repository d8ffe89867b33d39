"""chatd's own WebSocket server path: the handshake, frames, and coalesced socket writes."""
