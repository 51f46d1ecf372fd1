"""A small in-house alert intake, as ops teams write them: one Python
process, http.server's ThreadingHTTPServer with its default listen backlog
of 5, a thread per connection, HTTP/1.1 keep-alive. It answers in 2 ms
(30 ms on every 25th request), and 429 with `Retry-After: 1` to the first
attempt of every 10th alert (by Idempotency-Key).

It prints its port on the first line of stdout, then appends one JSON line
per request to the log file given as its argument, once the request's
effect is applied (before the answer is written, so a request whose client
gave up still counts: the target processed it):

    {"seq", "arrived", "applied", "status", "path", "key", "alert",
     "completed"}

with times as seconds since the epoch (`time.time()`).
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    # http.server's default (socketserver.TCPServer.request_queue_size).
    request_queue_size = 5
    daemon_threads = True
    allow_reuse_address = True


lock = threading.Lock()
seq = 0
keys_seen = set()
log = open(sys.argv[1], "a", buffering=1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        global seq
        arrived = time.time()
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        key = self.headers.get("Idempotency-Key", "")
        try:
            alert = json.loads(body).get("alertId", "")
        except Exception:
            alert = ""
        with lock:
            n = seq
            seq += 1
            first = key not in keys_seen
            keys_seen.add(key)
            nth_alert = len(keys_seen)
        time.sleep(0.030 if n % 25 == 24 else 0.002)
        if first and nth_alert % 10 == 0:
            status, answer = 429, b'{"code":429,"error":"too many requests"}'
        else:
            status, answer = 200, b'{"code":0,"data":{}}'
        record = {
            "seq": n,
            "arrived": arrived,
            "applied": time.time(),
            "status": status,
            "path": self.path,
            "key": key,
            "alert": alert,
        }
        completed = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            if status == 429:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(answer)
            self.wfile.flush()
        except OSError:
            completed = False
        record["completed"] = completed
        with lock:
            log.write(json.dumps(record) + "\n")
        if not completed:
            self.close_connection = True


server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
