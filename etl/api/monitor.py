"""`etl monitor`: the API's health and latency, the database's health and the API's pool, sampled
every few seconds, each sample appended to RUNTIME_DIR/monitor/<time>.jsonl, breaches named.

Thresholds follow the Prometheus mysqld_exporter alert rules (its mixin, and the widely copied
"awesome-prometheus-alerts" set) where they have one:
* connections in use > 80 % of max_connections (MySQLTooManyConnections);
* Threads_running > 60 % of max_connections (MySQLHighThreadsRunning);
* slow queries: any (rate > 0, MySQLSlowQueries);
* restarted: Uptime < 60 s (MySQLRestarted), or Uptime went down between samples;
* replica lag > 30 s, or replication not running (MySQLReplicationLag / replica threads);
and, with no exporter rule: InnoDB buffer-pool hit ratio < 95 % over a sample with at least
1,000 page reads (a working set that no longer fits), and aborted connection attempts > 1 per
second (clients failing to log in). Rates need two samples: the first sample reports the
counters, later ones their rate over the interval.

All SQL is SHOW GLOBAL STATUS / VARIABLES ... WHERE and SHOW REPLICA STATUS, which MySQL 8.0.22+
and MariaDB 10.5.1+ both accept (MySQL names the lag Seconds_Behind_Source, MariaDB
Seconds_Behind_Master).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import httpx
import pymysql

from ..core.config import mask_secrets
from ..mysql.db import MySQLTarget
from ..core.errors import ApiError, EtlError
from ..core.result import Result
from .metrics import parse as parse_metrics

STATUS = ("Threads_running", "Threads_connected", "Slow_queries", "Aborted_connects", "Innodb_buffer_pool_reads",
          "Innodb_buffer_pool_read_requests", "Uptime", "Questions")


@dataclass(frozen=True)
class Thresholds:
    error_rate: float = 0.01  # --threshold-error: failed / all API requests in a sample
    latency_p95_ms: float = 2000.0  # --threshold-latency-p95
    connections_ratio: float = 0.80
    threads_running_ratio: float = 0.60
    slow_queries_per_s: float = 0.0
    aborted_connects_per_s: float = 1.0
    buffer_pool_hit_ratio: float = 0.95  # a floor
    replication_lag_s: float = 30.0
    min_uptime_s: float = 60.0  # a floor
    pool_timeouts: float = 0.0  # requests the API turned away for want of a connection, per sample


@dataclass(frozen=True)
class Breach:
    metric: str
    value: float
    threshold: float
    op: str  # ">" : the value must not exceed the threshold; "<": must not fall below it

    def __str__(self) -> str:
        return f"{self.metric} = {_fmt(self.value)} {self.op} threshold {_fmt(self.threshold)}"


def _fmt(v) -> str:
    return f"{v:,.4g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class MonitorResult(Result):
    samples: int
    breaches: tuple[tuple[int, Breach], ...]  # (sample number, breach)
    series: str  # the JSONL file

    @property
    def ok(self) -> bool:
        return not self.breaches

    def __str__(self) -> str:
        lines = [f"monitor: {self.samples} sample(s), {len(self.breaches)} breach(es); series in {self.series}"]
        for n, b in self.breaches:
            lines.append(f"  BREACH at sample {n}: {b}")
        return "\n".join(lines)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# ---------------------------------------------------------------- probes


def probe_api(client: httpx.Client, probes: int, with_token: bool) -> dict:
    """/health once, then `probes` reads of a page of 100 tickets (keyset, as a UI scrolls)."""
    latencies, errors, classes = [], 0, {}
    up = True
    t0 = time.perf_counter()
    try:
        health = client.get("/health")
        health_ok = health.status_code == 200
    except httpx.HTTPError as e:
        health_ok, up = False, False
        classes[type(e).__name__] = classes.get(type(e).__name__, 0) + 1
    health_ms = (time.perf_counter() - t0) * 1000
    paths = ["/api/tickets?limit=100&after="] if with_token else ["/health"]
    for i in range(probes if up else 0):
        t0 = time.perf_counter()
        try:
            r = client.get(paths[i % len(paths)])
            if r.status_code >= 400:
                errors += 1
                cls = f"{r.status_code // 100}xx"
                classes[cls] = classes.get(cls, 0) + 1
        except httpx.HTTPError as e:
            errors += 1
            classes[type(e).__name__] = classes.get(type(e).__name__, 0) + 1
        latencies.append((time.perf_counter() - t0) * 1000)
    sent = len(latencies) + 1
    failed = errors + (0 if health_ok else 1)
    return {"up": int(up and health_ok), "health_ms": round(health_ms, 2), "requests": sent, "errors": failed,
            "error_rate": failed / sent, "error_classes": classes,
            "p50_ms": _round(percentile(latencies, 50)), "p95_ms": _round(percentile(latencies, 95)),
            "max_ms": _round(max(latencies) if latencies else None)}


def _round(v):
    return round(v, 2) if v is not None else None


def probe_metrics(client: httpx.Client) -> dict | None:
    """The API's own figures from /metrics: pool gauges, request and 5xx totals (None: no /metrics)."""
    try:
        r = client.get("/metrics")
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    s = parse_metrics(r.text)
    requests = sum(v for k, v in s.items() if k.startswith("etl_api_requests_total"))
    server_errors = sum(v for k, v in s.items() if k.startswith("etl_api_requests_total") and 'status="5' in k)
    return {"size": s.get("etl_api_pool_size"), "checked_out": s.get("etl_api_pool_checked_out"),
            "overflow": s.get("etl_api_pool_overflow"), "timeouts_total": s.get("etl_api_pool_timeouts_total"),
            "requests_total": requests, "server_errors_total": server_errors}


def probe_db(target: MySQLTarget) -> dict:
    try:
        conn = target.connect(database=False, connect_timeout=5)
    except EtlError as e:
        return {"up": 0, "error": str(e)}
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN (" + ", ".join(["%s"] * len(STATUS)) + ")", STATUS)
            status = {k: float(v) for k, v in cur.fetchall()}
            cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name = 'max_connections'")
            max_conn = float(cur.fetchone()[1])
            replica = _replica(cur)
    finally:
        conn.close()
    return {"up": 1, "max_connections": max_conn, **{k.lower(): status.get(k) for k in STATUS}, **replica}


def _replica(cur) -> dict:
    try:
        cur.execute("SHOW REPLICA STATUS")
    except pymysql.err.MySQLError as e:  # no REPLICATION CLIENT privilege, or an older server
        return {"replica": None, "replica_error": e.args[-1]}
    row = cur.fetchone()
    if row is None:
        return {"replica": False}
    info = dict(zip((d[0] for d in cur.description), row))
    lag = info.get("Seconds_Behind_Source", info.get("Seconds_Behind_Master"))
    return {"replica": True, "replication_lag_s": float(lag) if lag is not None else None}


# ---------------------------------------------------------------- judging a sample


def judge(sample: dict, previous: dict | None, t: Thresholds) -> tuple[dict, list[Breach]]:
    """Derived figures (ratios, rates over the interval) and the breaches of one sample."""
    api, db, pool = sample["api"], sample["db"], sample.get("pool")
    derived: dict = {}
    out: list[Breach] = []

    def over(metric, value, limit):
        if value is not None and value > limit:
            out.append(Breach(metric, value, limit, ">"))

    def under(metric, value, limit):
        if value is not None and value < limit:
            out.append(Breach(metric, value, limit, "<"))

    under("api.up", api["up"], 1)
    over("api.error_rate", api["error_rate"], t.error_rate)
    over("api.p95_ms", api["p95_ms"], t.latency_p95_ms)
    if not db.get("skipped"):
        under("db.up", db["up"], 1)
    if db.get("up") and not db.get("skipped"):
        derived["db.connections_ratio"] = db["threads_connected"] / db["max_connections"]
        derived["db.threads_running_ratio"] = db["threads_running"] / db["max_connections"]
        over("db.connections_ratio", derived["db.connections_ratio"], t.connections_ratio)
        over("db.threads_running_ratio", derived["db.threads_running_ratio"], t.threads_running_ratio)
        under("db.uptime_s", db["uptime"], t.min_uptime_s)
        if db.get("replica"):
            lag = db.get("replication_lag_s")
            if lag is None:
                out.append(Breach("db.replication_running", 0, 1, "<"))
            over("db.replication_lag_s", lag, t.replication_lag_s)
        prev = previous["db"] if previous and previous["db"].get("up") and not previous["db"].get("skipped") else None
        if prev:
            seconds = max(sample["elapsed_s"] - previous["elapsed_s"], 1e-3)
            if db["uptime"] < prev["uptime"]:
                out.append(Breach("db.restarted", 1, 0, ">"))
            else:
                rate = lambda k: (db[k] - prev[k]) / seconds  # noqa: E731
                derived["db.slow_queries_per_s"] = rate("slow_queries")
                derived["db.aborted_connects_per_s"] = rate("aborted_connects")
                derived["db.queries_per_s"] = rate("questions")
                over("db.slow_queries_per_s", derived["db.slow_queries_per_s"], t.slow_queries_per_s)
                over("db.aborted_connects_per_s", derived["db.aborted_connects_per_s"], t.aborted_connects_per_s)
                reads = db["innodb_buffer_pool_read_requests"] - prev["innodb_buffer_pool_read_requests"]
                if reads >= 1000:
                    misses = db["innodb_buffer_pool_reads"] - prev["innodb_buffer_pool_reads"]
                    derived["db.buffer_pool_hit_ratio"] = 1 - misses / reads
                    under("db.buffer_pool_hit_ratio", derived["db.buffer_pool_hit_ratio"], t.buffer_pool_hit_ratio)
    prev_pool = (previous or {}).get("pool")
    if pool and prev_pool:
        derived["pool.timeouts"] = pool["timeouts_total"] - prev_pool["timeouts_total"]
        over("pool.timeouts", derived["pool.timeouts"], t.pool_timeouts)
        served = pool["requests_total"] - prev_pool["requests_total"]
        if served > 0:
            derived["api.server_error_rate"] = (pool["server_errors_total"] - prev_pool["server_errors_total"]) / served
            over("api.server_error_rate", derived["api.server_error_rate"], t.error_rate)
    return derived, out


# ---------------------------------------------------------------- the loop


def monitor(base_url: str, token: str | None, target: MySQLTarget | None, runtime_dir: Path, *,
            thresholds: Thresholds = Thresholds(), interval: float = 5.0, count: int = 12, probes: int = 5,
            fail_fast: bool = False, on_sample: Callable[[dict], None] | None = None) -> MonitorResult:
    """Take `count` samples `interval` seconds apart (a bounded run); every sample lands in the JSONL."""
    if count < 1 or interval < 0 or probes < 1:
        raise ApiError("monitor: --count and --probes must be at least 1, --interval not negative")
    folder = runtime_dir / "monitor"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + ".jsonl")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx.Timeout(max(10.0, thresholds.latency_p95_ms / 1000 * 3))
    breaches: list[tuple[int, Breach]] = []
    previous = None
    start = time.monotonic()
    with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as client, open(path, "a", encoding="utf-8") as out:
        for n in range(1, count + 1):
            wait = start + (n - 1) * interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            sample = {"sample": n, "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                      "elapsed_s": round(time.monotonic() - start, 3), "api": probe_api(client, probes, bool(token)),
                      "pool": probe_metrics(client) if token else None,
                      "db": probe_db(target) if target else {"up": None, "skipped": True}}
            derived, found = judge(sample, previous, thresholds)
            sample["derived"] = {k: round(v, 6) for k, v in derived.items()}
            sample["breaches"] = [asdict(b) for b in found]
            # Flushed per sample: a monitor stopped half-way keeps every sample it took.
            out.write(mask_secrets(json.dumps(sample, default=str), token) + "\n")
            out.flush()
            breaches += [(n, b) for b in found]
            if on_sample:
                on_sample(sample)
            previous = sample
            if found and fail_fast:
                break
    return MonitorResult(n, tuple(breaches), str(path))


def rows_for_display(sample: dict, t: Thresholds) -> list[tuple[str, str, str, str]]:
    """(metric, value, threshold, state) rows for the live table."""
    api, db, d = sample["api"], sample["db"], sample.get("derived", {})
    breached = {b["metric"] for b in sample["breaches"]}
    rows = [("api.up", api["up"], "= 1"), ("api.error_rate", api["error_rate"], f"<= {t.error_rate}"),
            ("api.p50_ms", api["p50_ms"], ""), ("api.p95_ms", api["p95_ms"], f"<= {t.latency_p95_ms:g}"),
            ("api.health_ms", api["health_ms"], "")]
    if sample.get("pool"):
        p = sample["pool"]
        rows += [("pool.checked_out", p["checked_out"], f"of {p['size']:g}"), ("pool.overflow", p["overflow"], ""),
                 ("pool.timeouts", d.get("pool.timeouts"), f"<= {t.pool_timeouts:g}")]
    if not db.get("skipped"):
        rows += [("db.up", db.get("up"), "= 1"),
                 ("db.connections_ratio", d.get("db.connections_ratio"), f"<= {t.connections_ratio}"),
                 ("db.threads_running_ratio", d.get("db.threads_running_ratio"), f"<= {t.threads_running_ratio}"),
                 ("db.buffer_pool_hit_ratio", d.get("db.buffer_pool_hit_ratio"), f">= {t.buffer_pool_hit_ratio}"),
                 ("db.slow_queries_per_s", d.get("db.slow_queries_per_s"), f"<= {t.slow_queries_per_s:g}"),
                 ("db.aborted_connects_per_s", d.get("db.aborted_connects_per_s"), f"<= {t.aborted_connects_per_s:g}"),
                 ("db.uptime_s", db.get("uptime"), f">= {t.min_uptime_s:g}"),
                 ("db.replication_lag_s", db.get("replication_lag_s") if db.get("replica") else "no replica",
                  f"<= {t.replication_lag_s:g}")]
    return [(m, "-" if v is None else _fmt(v), th, "BREACH" if m in breached else "ok") for m, v, th in rows]
