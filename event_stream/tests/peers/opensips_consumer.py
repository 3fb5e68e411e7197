"""A test peer: the event consumer of the PyPI `opensips` package, used as OpenSIPS users do.

Usage (with the venv's python): opensips_consumer.py

Uses the package's own `Stream` socket (listen, accept one connection per read, read once,
close) and its `JsonBuffer` incremental parser, shared across connections as its listener
does. Prints the port first, then each decoded object as one JSON line; prints CORRUPT and
exits if the parser gives up (what a cut object would cause).
"""
import json
from opensips.event.json_helper import JsonBuffer, JsonBufferMaxAttempts
from opensips.event.stream import Stream

sock = Stream(ip="127.0.0.1", port=0)
sock.create()
print(sock.port, flush=True)
buf = JsonBuffer()
while True:
    data = sock.read()
    if not data:
        continue
    try:
        buf.push(data)
    except JsonBufferMaxAttempts:
        print("CORRUPT", flush=True)
        raise SystemExit(1)
    obj = buf.pop()
    while obj:
        print(json.dumps(obj), flush=True)
        obj = buf.pop()
