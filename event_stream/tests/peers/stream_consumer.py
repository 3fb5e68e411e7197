"""A test peer: a TCP consumer that keeps its connections and parses the byte stream
incrementally (back-to-back JSON objects, no framing), as OpenSIPS's own consumers do.

Usage: stream_consumer.py [--reply]

Prints the port first, then one JSON line per object received:
{"conn": N, "obj": {...}}. With --reply it answers every object that has an "id" (reliable
mode): an error reply when its params contain "fail", no reply when they contain "ignore",
else a result; before the first answer on each connection it also writes an object without
an id, which the sender must skip. Replies go back to back too.
"""
import json
import socket
import sys
import threading

reply = "--reply" in sys.argv
lock = threading.Lock()
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
print(srv.getsockname()[1], flush=True)


def serve(conn, n):
    dec = json.JSONDecoder()
    buf = ""
    raw = b""
    sent_junk = False
    while True:
        data = conn.recv(65536)
        if not data:
            return
        raw += data
        try:
            buf += raw.decode("utf-8")
            raw = b""
        except UnicodeDecodeError:
            continue  # a multi-byte character cut by the read: wait for the rest
        while buf:
            try:
                obj, end = dec.raw_decode(buf)
            except json.JSONDecodeError:
                break
            buf = buf[end:].lstrip()
            with lock:
                print(json.dumps({"conn": n, "obj": obj}, ensure_ascii=False), flush=True)
            if reply and "id" in obj:
                text = json.dumps(obj.get("params"))
                if "ignore" in text:
                    continue
                out = ""
                if not sent_junk:
                    out += '{"jsonrpc":"2.0","id":"not-a-number","result":1}'
                    sent_junk = True
                if "fail" in text:
                    out += json.dumps({"jsonrpc": "2.0", "id": obj["id"],
                                       "error": {"code": -32000, "message": "refused by consumer"}})
                else:
                    out += json.dumps({"jsonrpc": "2.0", "id": obj["id"], "result": "OK"})
                conn.sendall(out.encode())


n = 0
while True:
    c, _ = srv.accept()
    n += 1
    threading.Thread(target=serve, args=(c, n), daemon=True).start()
