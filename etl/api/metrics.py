"""Request counts, latency histograms and pool figures in the Prometheus text format (version 0.0.4).

A few counters need no client library: one lock, a dict per metric, rendered on each scrape.
Routes are labelled by their template (`/api/tickets`, not the URL asked for), so a scraper
sees a bounded number of series whatever the clients send.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

# Seconds; the seed's p95 threshold (2 s) and the 50 ms target both fall on a bucket edge.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)  # (method, route, status) -> n
        self.buckets: dict[tuple[str, str], list[int]] = {}  # (method, route) -> cumulative-free counts
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self.pool_timeouts = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route)
        with self._lock:
            self.requests[(method, route, str(status))] += 1
            counts = self.buckets.setdefault(key, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sums[key] += seconds

    def pool_timeout(self) -> None:
        with self._lock:
            self.pool_timeouts += 1

    def render(self, pool: dict[str, int]) -> str:
        """The exposition text; `pool` holds the pool's size, checked_out and overflow now."""
        out = [
            "# HELP etl_api_requests_total Requests answered, by method, route template and status.",
            "# TYPE etl_api_requests_total counter",
        ]
        with self._lock:
            requests = sorted(self.requests.items())
            buckets = sorted((k, list(v)) for k, v in self.buckets.items())
            sums = dict(self.sums)
            timeouts = self.pool_timeouts
        for (method, route, status), n in requests:
            out.append(f'etl_api_requests_total{{method="{method}",route="{_esc(route)}",status="{status}"}} {n}')
        out += ["# HELP etl_api_request_duration_seconds Time to answer a request, by method and route template.",
                "# TYPE etl_api_request_duration_seconds histogram"]
        for (method, route), counts in buckets:
            labels = f'method="{method}",route="{_esc(route)}"'
            running = 0
            for edge, n in zip((*BUCKETS, "+Inf"), counts):
                running += n
                out.append(f'etl_api_request_duration_seconds_bucket{{{labels},le="{edge}"}} {running}')
            out.append(f"etl_api_request_duration_seconds_sum{{{labels}}} {sums[(method, route)]:.6f}")
            out.append(f"etl_api_request_duration_seconds_count{{{labels}}} {running}")
        for name, help_, value in (
            ("etl_api_pool_size", "Connections the pool keeps open.", pool.get("size", 0)),
            ("etl_api_pool_checked_out", "Connections in use by a request now.", pool.get("checked_out", 0)),
            ("etl_api_pool_overflow", "Connections open beyond the pool size now.", pool.get("overflow", 0)),
        ):
            out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name} {value}"]
        out += ["# HELP etl_api_pool_timeouts_total Requests that waited too long for a connection (answered 503).",
                "# TYPE etl_api_pool_timeouts_total counter", f"etl_api_pool_timeouts_total {timeouts}"]
        return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse(text: str) -> dict[str, float]:
    """Samples of an exposition text as {'name{labels}': value} (what `etl monitor` reads)."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            samples[name] = float(value)
        except ValueError:
            continue
    return samples
