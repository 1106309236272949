"""The load through the API against the direct load, of the same stage.

    .venv/bin/python benchmarks/bench_load_api.py [--tickets 30000]

Both into fresh databases of the private benchmark server (benchmarks/common.py), each as its own
`etl load` process (wall time and peak memory of the loader); the via-API run against an `etl serve`
process over its database, with CHUNK_SIZE 200 (the seed's). The machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ETL, OUT, ROOT, run, stage_for  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=30_000)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import httpx

    from etl import LocalServer, MySQLTarget, apply_schema

    stage = stage_for("apiload", args.tickets)
    base = MySQLTarget.parse(LocalServer(OUT / "api-mysql", buffer_pool="2G").up().uri)
    targets = {}
    for name in ("direct", "viaapi"):
        t = MySQLTarget(base.host, base.port, base.user, base.password, f"apiload_{name}", base.unix_socket)
        with t.connect(database=False) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS apiload_{name}")
        apply_schema(t)
        targets[name] = t
    direct = run("apiload direct", [*ETL, "load", "--stage", str(stage), "--mysql", targets["direct"].uri, "--quiet"])
    token = "bench-" + os.urandom(8).hex()
    url = f"http://127.0.0.1:{19000 + os.getpid() % 1000}"
    env = {"API_TOKEN": token, "BASE_URL": url, "MYSQL_URI": targets["viaapi"].uri, "CHUNK_SIZE": "200"}
    server = subprocess.Popen([*ETL, "serve"], cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        via = run("apiload via-api", [*ETL, "load", "--via-api", "--stage", str(stage), "--quiet"], env=env)
        again = run("apiload via-api again", [*ETL, "load", "--via-api", "--stage", str(stage), "--quiet"], env=env)
    finally:
        server.terminate()
        server.wait(60)
    print(f"tickets {args.tickets:,}: direct {direct.seconds:.1f} s ({direct.peak_mb:.0f} MB), "
          f"via API {via.seconds:.1f} s ({via.peak_mb:.0f} MB), ratio {via.seconds / direct.seconds:.1f}x; "
          f"via API again (writes nothing) {again.seconds:.1f} s")
    print(via.output)


if __name__ == "__main__":
    main()
