#!/usr/bin/python3
"""A stand-in for a team's own service in the lab. It serves /metrics in Prometheus text format
the way prometheus-client instrumentators do for FastAPI or Express services:
http_requests_total{method,path,status} and the histogram http_request_duration_seconds{method,path},
plus two business counters a KPI is computed from (checkouts and orders: the conversion rate;
the LLM spend per order). It logs a request line with a trace id now and then.
/legacy-metrics serves the same text the way many homegrown endpoints do, as
application/octet-stream, which Prometheus 3 refuses without a fallback protocol.
/control?conversion=0.02&errors=0.3 changes how the simulated traffic behaves, so the lab and
the tests can push a KPI or the error ratio across a threshold. It is the lab's application
target, not part of the stack."""
import http.server
import random
import secrets
import sys
import threading
import time
import urllib.parse

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ROUTES = ("/checkout", "/cart", "/products")
settings = {"conversion": 0.35, "errors": 0.02}
requests = {}       # (method, path, status) -> count
durations = {}      # (method, path) -> [bucket counts..., count, sum]
business = {"checkouts": 0, "orders": 0, "llm_cost": 0.0}
lock = threading.Lock()


def traffic():
    while True:
        path = random.choice(ROUTES)
        status = "500" if random.random() < settings["errors"] else "200"
        seconds = random.expovariate(1 / 0.08)
        with lock:
            requests[("GET", path, status)] = requests.get(("GET", path, status), 0) + 1
            stats = durations.setdefault(("GET", path), [0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                stats[i] += seconds <= bound
            stats[-2] += 1
            stats[-1] += seconds
            if path == "/checkout" and status == "200":
                business["checkouts"] += 1
                if random.random() < settings["conversion"]:
                    business["orders"] += 1
                    business["llm_cost"] += random.uniform(0.002, 0.006)
        if path == "/checkout":
            print(f"method=GET path={path} status={status} trace_id={secrets.token_hex(16)}", flush=True)
        time.sleep(random.uniform(0.1, 0.4))


def exposition():
    lines = ["# HELP http_requests_total Requests served.", "# TYPE http_requests_total counter"]
    with lock:
        lines += [f'http_requests_total{{method="{m}",path="{p}",status="{s}"}} {n}' for (m, p, s), n in sorted(requests.items())]
        lines += ["# HELP http_request_duration_seconds Time spent serving requests.",
                  "# TYPE http_request_duration_seconds histogram"]
        for (m, p), stats in sorted(durations.items()):
            labels = f'method="{m}",path="{p}"'
            lines += [f'http_request_duration_seconds_bucket{{{labels},le="{b}"}} {stats[i]}' for i, b in enumerate(BUCKETS)]
            lines += [f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {stats[-2]}',
                      f"http_request_duration_seconds_count{{{labels}}} {stats[-2]}",
                      f"http_request_duration_seconds_sum{{{labels}}} {stats[-1]:.6f}"]
        lines += ["# HELP shop_checkouts_total Checkouts started.", "# TYPE shop_checkouts_total counter",
                  f"shop_checkouts_total {business['checkouts']}",
                  "# HELP shop_orders_total Orders placed.", "# TYPE shop_orders_total counter",
                  f"shop_orders_total {business['orders']}",
                  "# HELP shop_llm_cost_dollars_total What the order assistant's LLM calls cost.",
                  "# TYPE shop_llm_cost_dollars_total counter",
                  f"shop_llm_cost_dollars_total {business['llm_cost']:.6f}"]
    return "\n".join(lines) + "\n"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/control":
            for key, values in urllib.parse.parse_qs(url.query).items():
                if key in settings:
                    settings[key] = min(max(float(values[-1]), 0.0), 1.0)
            self.reply(200, "application/json", str(settings).replace("'", '"') + "\n")
        elif url.path in ("/metrics", "/legacy-metrics"):
            self.reply(200, "text/plain; version=0.0.4" if url.path == "/metrics" else "application/octet-stream",
                       exposition())
        else:
            self.send_error(404)

    def reply(self, code, content_type, text):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


threading.Thread(target=traffic, daemon=True).start()
http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
