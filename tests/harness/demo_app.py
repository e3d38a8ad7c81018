#!/usr/bin/python3
"""A stand-in for a team's own service in the lab: serves /metrics in Prometheus text format
(the kind of endpoint a FastAPI or Celery exporter offers) and logs a request line with a
trace id now and then. /legacy-metrics serves the same text the way many homegrown endpoints
do, as application/octet-stream, which Prometheus 3 refuses without a fallback protocol. It is the lab's application target, not part of the stack."""
import http.server
import random
import secrets
import sys
import threading
import time

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
counts = {"200": 0, "500": 0}
lock = threading.Lock()


def traffic():
    while True:
        code = "500" if random.random() < 0.02 else "200"
        with lock:
            counts[code] += 1
        print(f"method=GET path=/checkout status={code} trace_id={secrets.token_hex(16)}", flush=True)
        time.sleep(random.uniform(0.5, 2))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path not in ("/metrics", "/legacy-metrics"):
            self.send_error(404)
            return
        with lock:
            body = ("# HELP shop_http_requests_total Requests served.\n# TYPE shop_http_requests_total counter\n"
                    + "".join(f'shop_http_requests_total{{code="{c}"}} {n}\n' for c, n in counts.items()))
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4" if self.path == "/metrics"
                         else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


threading.Thread(target=traffic, daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
