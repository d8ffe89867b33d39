"""`chatd bench`: bounded load runs against a chatd the bench starts itself, on loopback.

run.py        the command: scratch database, migrations, runs, the report
options.py    the options and their per-scenario defaults
server.py     the chatd under test, its own process; CPU and RSS from /proc
workers.py    client worker processes (worker.py inside each, traffic.py the load)
client.py     a minimal WebSocket client; wire.py what it sends and reads
echo.py fanout.py idle.py flood.py   the scenarios; steps.py a measured interval
report.py     printing: text, or --json
"""
