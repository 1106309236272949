"""The list endpoint of `etl serve` at 1M tickets: a page of 100, 16 concurrent clients.

    .venv/bin/python benchmarks/bench_api.py [--clients 16] [--pages 40] [--reuse]

Loads the 1M-ticket sample once into a private server (benchmarks/common.py: 2 GB buffer pool),
starts `etl serve` in a process of its own, then:
1. closed loop: 16 client threads, each walking the ticket list by keyset (after=<cursor>) for
   --pages pages of 100, latency per request: p50/p95/p99 (the issue's target: p95 <= 50 ms);
2. the same with the backend's OFFSET paging at a few depths (with its COUNT(*) for the total);
3. `etl bench` (open model: 2 pages a second per client, keyset) against the same server, for its
   percentiles, the bulk chunks and its own peak memory.
With `--baseline REV`, `etl serve` of git revision REV (a worktree under benchmarks/out) answers
the same closed loop too, in turn with this code (`--rounds` each, alternated): the ratio is
measured in one run.
Results go to benchmarks/out/api-<time>.json. The machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ETL, OUT, ROOT, loaded_target, stage_for  # noqa: E402

TOKEN = "bench-token-" + os.urandom(6).hex()


def pct(values, q):
    s = sorted(values)
    return s[max(0, int(round(q / 100 * len(s))) - 1)] if s else None


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 1), "p95_ms": round(pct(ms, 95), 1),
            "p99_ms": round(pct(ms, 99), 1), "max_ms": round(max(ms), 1)}


def walk(url: str, pages: int, out: list, errors: list, start_cursor: str = "") -> None:
    import httpx

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
        after = start_cursor
        for _ in range(pages):
            t0 = time.perf_counter()
            r = c.get("/api/tickets", params={"limit": 100, "after": after})
            out.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                errors.append(r.status_code)
                return
            after = r.json()["pagination"]["nextCursor"] or ""


def closed_loop(url: str, clients: int, pages: int, starts: list[str]) -> dict:
    ms, errors = [], []
    threads = [threading.Thread(target=walk, args=(url, pages, ms, errors, starts[i % len(starts)])) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {**summary(ms), "errors": len(errors), "requests_per_s": round(len(ms) / wall, 1), "clients": clients}


@contextmanager
def serving(target, code: Path, clients: int):
    """`etl serve` of the code under `code` in a process of its own: yields (url, env)."""
    import httpx

    port = 18000 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "API_TOKEN": TOKEN, "MYSQL_URI": target.uri, "BASE_URL": url,
           "RUNTIME_DIR": str(OUT / "api-runtime")}
    env.pop("ETL_SERVE_STALL", None)
    server = subprocess.Popen([*ETL, "serve", "--pool-size", str(clients)], cwd=code, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url, env
    finally:
        server.terminate()
        server.wait(60)


def walk_starts(url: str, clients: int) -> list[str]:
    """Cursors at different depths (from a first walk), so the walkers do not read the same pages."""
    import httpx

    starts, after = [""], ""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
        for _ in range(clients - 1):
            after = c.get("/api/tickets", params={"limit": 1000, "after": after}).json()["pagination"]["nextCursor"]
            starts.append(after)
    return starts


def offset_and_bench(url: str, env: dict, clients: int) -> dict:
    """The backend's OFFSET pages at three depths (best of 3), then `etl bench` (open model)."""
    import httpx

    offset = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300) as c:
        for page in (1, 100, 5000):
            ms = []
            for _ in range(3):
                t0 = time.perf_counter()
                c.get("/api/tickets", params={"limit": 100, "page": page})
                ms.append((time.perf_counter() - t0) * 1000)
            offset[f"page {page}"] = round(min(ms), 1)
    # Open model: 16 users each asking for a page every half second (32/s), keyset paging.
    done = subprocess.run([*ETL, "bench", "--rate", str(2 * clients), "--duration", "20", "--bulk-chunks", "5",
                           "--endpoint", "/api/tickets?limit=100&after="], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    return {"offset_best_of_3_ms": offset, "etl_bench": done.stdout, "etl_bench_exit": done.returncode}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--pages", type=int, default=40)
    ap.add_argument("--reuse", action="store_true", help="reuse the loaded database when it holds the tickets")
    ap.add_argument("--baseline", metavar="REV", help="also measure `etl serve` of this git revision, in turn")
    ap.add_argument("--rounds", type=int, default=1, help="closed loops per code (alternated with --baseline)")
    args = ap.parse_args()

    stage = stage_for("api", args.tickets)
    target, _ = loaded_target("api", stage, args.tickets, args.reuse)
    codes = {"this code": ROOT}
    if args.baseline:
        from bench_migrate import baseline_tree

        short, tree = baseline_tree(args.baseline)
        codes[f"code of {short}"] = tree
    result: dict = {"tickets": args.tickets, "keyset": {name: [] for name in codes}}
    for i in range(args.rounds):
        for name in (list(codes) if i % 2 == 0 else list(codes)[::-1]):  # neither always goes first
            last = i == args.rounds - 1 and name == "this code"
            with serving(target, codes[name], args.clients) as (url, env):
                starts = walk_starts(url, args.clients)
                closed_loop(url, args.clients, 3, starts)  # warm-up
                one = closed_loop(url, args.clients, args.pages, starts)
                result["keyset"][name].append(one)
                print(f"  {name}: keyset p50 {one['p50_ms']} ms, p95 {one['p95_ms']} ms, {one['requests_per_s']}/s",
                      flush=True)
                if last:
                    result.update(offset_and_bench(url, env, args.clients))
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (OUT / f"api-{stamp}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "etl_bench"}, indent=2))
    if len(codes) > 1:
        import statistics

        p95 = {name: statistics.median(r["p95_ms"] for r in runs) for name, runs in result["keyset"].items()}
        rate = {name: statistics.median(r["requests_per_s"] for r in runs) for name, runs in result["keyset"].items()}
        for name in codes:
            print(f"{name}: median p95 {p95[name]} ms, median {rate[name]} answered/s")
    print(result["etl_bench"])


if __name__ == "__main__":
    main()
