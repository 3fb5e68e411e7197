"""A test peer: Python's standard xmlrpc.server, recording every call it gets.

Usage: xmlrpc_server.py OUT_FILE [--slow SECONDS] [--fault] [--http10]

Prints the port it listens on (127.0.0.1) as the first line of stdout, then serves until
killed. Each call is appended to OUT_FILE as one JSON line:
{"method": ..., "params": [...], "client_port": ...}. With --fault every call answers an
XML-RPC fault; with --slow each call waits before answering. By default the handler speaks
HTTP/1.1 (keep-alive); --http10 keeps the stdlib default (one request per connection).
"""
import json
import sys
import threading
import time
import xmlrpc.client
from socketserver import ThreadingMixIn
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

out_path = sys.argv[1]
slow = float(sys.argv[sys.argv.index("--slow") + 1]) if "--slow" in sys.argv else 0.0
fault = "--fault" in sys.argv
lock = threading.Lock()


class Handler(SimpleXMLRPCRequestHandler):
    protocol_version = "HTTP/1.0" if "--http10" in sys.argv else "HTTP/1.1"

    def _dispatch(self, method, params):
        rec = {"method": method, "params": list(params), "client_port": self.client_address[1]}
        if slow:
            time.sleep(slow)
        with lock, open(out_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        if fault:
            raise xmlrpc.client.Fault(4, "no <way> & never")
        return True

    def log_message(self, *args):
        pass


class Server(ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True


server = Server(("127.0.0.1", 0), requestHandler=Handler, logRequests=False, allow_none=True)
print(server.server_address[1], flush=True)
server.serve_forever()
