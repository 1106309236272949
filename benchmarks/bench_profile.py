"""`etl export --from PROFILE`: reading a Chromium profile holding a 100k-ticket database offline.

    .venv/bin/python benchmarks/bench_profile.py [--tickets 100000]

The profile is made once (under benchmarks/out/): the sample export of that size written by
Dexie (tests/fixtures/browser/dexie.html; `make node-deps`) in headless Chromium into a
persistent profile, 2,000 records per transaction, then the browser closed. Then, each as its
own process (wall time and peak RSS): `etl export` of the profile, and, for a same-run ratio,
`etl export` of the same records as the snippet downloads them.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import resource
import shutil
import sys
import threading
from pathlib import Path

from common import ETL, OUT, ROOT, run, snippet_layout

sys.path.insert(0, str(ROOT))
PAGE_DIR = ROOT / "tests" / "fixtures" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def make_profile(tickets: int) -> Path:
    user_data = OUT / f"profile-{tickets}"
    if (user_data / ".complete").is_file():
        return user_data
    import duckdb
    from playwright.sync_api import sync_playwright

    from etl import STORES, export
    from etl.source.export import export_files

    source = snippet_layout(tickets)
    normalized = OUT / f"profile-{tickets}-source"
    export(source, normalized, force=True)
    shutil.rmtree(user_data, ignore_errors=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(PAGE_DIR)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"writing {tickets:,} tickets (and the other stores) into {user_data} with Dexie ...", flush=True)
    try:
        with sync_playwright() as p, duckdb.connect() as con:
            ctx = p.chromium.launch_persistent_context(str(user_data), executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = ctx.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/dexie.html")
            for store in STORES:
                for path, fmt in export_files(normalized, store):
                    reader = con.sql(f"SELECT json FROM read_json_objects('{path}', format='{fmt}')").to_arrow_reader(2000)
                    for batch in reader:  # records pass as JSON text: the page parses and revives them
                        page.evaluate("([s, t]) => putRecords({[s]: JSON.parse(t)}, 2000)",
                                      [store.name, "[" + ",".join(batch.column(0).to_pylist()) + "]"])
            page.evaluate("closeDatabase()")
            ctx.close()
    finally:
        server.shutdown()
    (user_data / ".complete").write_text("")
    return user_data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=100_000)
    tickets = ap.parse_args().tickets
    user_data = make_profile(tickets)
    leveldb = next((user_data / "Default" / "IndexedDB").glob("*.indexeddb.leveldb"))
    size = sum(p.stat().st_size for p in leveldb.iterdir()) / 1e6
    files = sorted(p.suffix for p in leveldb.iterdir() if p.suffix in (".ldb", ".log"))
    print(f"profile: {size:,.0f} MB of LevelDB ({files.count('.ldb')} tables, {files.count('.log')} logs)")
    prof, prof_cpu = timed("profile etl export", [*ETL, "export", "--from", str(user_data), "--out",
                                                   str(OUT / "profile-export"), "--force"])
    snip, snip_cpu = timed("snippet etl export", [*ETL, "export", "--from", str(snippet_layout(tickets)), "--out",
                                                  str(OUT / "profile-snippet-export"), "--force"])
    print(prof.output.splitlines()[0])
    print("| input | wall s | CPU s (all processes) | peak RSS of the largest process (MB) |\n|---|---|---|---|")
    print(f"| profile ({size:,.0f} MB LevelDB) | {prof.seconds:.1f} | {prof_cpu:.1f} | {prof.peak_mb:,.0f} |")
    print(f"| snippet download of the same records | {snip.seconds:.1f} | {snip_cpu:.1f} | {snip.peak_mb:,.0f} |")
    print(f"ratio profile / snippet: {prof.seconds / snip.seconds:.1f}x wall, {prof_cpu / snip_cpu:.1f}x CPU")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def timed(label: str, args: list[str]):
    """`run` plus the CPU seconds of the command and every process it started (its workers)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = run(label, args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


if __name__ == "__main__":
    main()
