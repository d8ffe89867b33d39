"""The cyclic garbage collector, tuned for a server that holds many long-lived objects.

A full (generation 2) collection scans every tracked object the process
holds, and each connection and room keeps some alive: the pause grows with
the number of connections, and while it runs no socket is served. So:

- what startup made (modules, the app, routes, metrics) is frozen: moved out
  of the collector's sight for good, since it lives as long as the process;
- the young generation's threshold is raised, so the short-lived objects of
  each delivered message are freed by reference counting between fewer,
  still cheap, young collections (chatd makes few reference cycles).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def settle_collector() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
