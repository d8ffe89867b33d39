"""Rooms, connections and fan-out: a task per active room, an outbox per socket."""
