"""The export snippet on a store too big for one JavaScript string, in headless Chromium.

    .venv/bin/python benchmarks/bench_snippet.py [--tickets 1000000] [--ndjson-mb 64] [--naive]

A page on 127.0.0.1 creates the app's database (tests/fixtures/browser/app.html) and
fills `tickets` with generated records of about the sample's size (~1.3 KB each, so
1M tickets are ~1.3 GB of JSON: more than V8's longest string, about 2^29 characters);
the snippet then runs (a store over --ndjson-mb is written as NDJSON); its downloads
are checked with `etl export`. With --naive it first tries what a hand-written export does,
JSON.stringify of the whole store, to show that it fails at this size.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import sys
import threading
import time

from common import OUT, ROOT

sys.path.insert(0, str(ROOT))
from etl import export  # noqa: E402
from etl.source.snippet import snippet_source  # noqa: E402

PAGE_DIR = ROOT / "tests" / "fixtures" / "browser"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

# Generated in the page, in batches (one readwrite transaction each): no multi-GB payload through Playwright.
FILL = """async ([n, batch]) => {
  await seedDatabase({});  // creates the database and its stores
  const pad = (i) => String(i).padStart(8, "0");
  const text = "Pelanggan melaporkan internet putus sejak pagi; sudah dicek redaman ONT dan port ODP. ";
  const open = () => new Promise((res, rej) => { const r = indexedDB.open("InsightTicketDatabase"); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  const db = await open();
  for (let start = 0; start < n; start += batch) {
    await new Promise((res, rej) => {
      const tx = db.transaction("tickets", "readwrite");
      const store = tx.objectStore("tickets");
      for (let i = start; i < Math.min(n, start + batch); i++) {
        const d = { rawHours: (i % 97) / 3, formatted: `${i % 97}:00:00` };
        store.put({ id: `t-${pad(i)}`, customerId: String(4110300000 + (i % 2250)), name: `Pelanggan ${i % 2800} 😀`,
          category: ["Nexa", "ZiGY", "Fiberstream"][i % 3], description: text.repeat(3), cause: text, handling: text,
          openTime: "2024-07-15T17:35:00", closeTime: "2024-07-17T15:43:00.000Z", duration: d,
          closeHandling: "2024-07-17T15:43:00.000Z", handlingDuration: d, classification: "Gangguan Kabel",
          subClassification: "Feeder", status: "Closed", handling1: text, handling2: "", handlingDuration1: d,
          handlingDuration2: d, handlingDuration3: d, handlingDuration4: d, handlingDuration5: d,
          openBy: "Putu Ari", cabang: "Semarang", uploadTimestamp: 1752600000000 + i, repClass: "Non Repeat",
          batchId: null, fileName: null, fileHash: null, uploadSessionId: null, createdAt: new Date(1752600000000 + i) });
      }
      tx.oncomplete = res; tx.onerror = () => rej(tx.error);
    });
  }
  db.close();
  return n;
}"""

NAIVE = """async () => {
  const db = await new Promise((res, rej) => { const r = indexedDB.open("InsightTicketDatabase"); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  const all = await new Promise((res, rej) => { const r = db.transaction("tickets").objectStore("tickets").getAll(); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  db.close();
  try { return "ok: " + JSON.stringify(all).length + " characters"; } catch (e) { return "failed: " + e; }
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--ndjson-mb", type=int, default=64)
    ap.add_argument("--naive", action="store_true")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    work = OUT / "bench-snippet"
    shutil.rmtree(work, ignore_errors=True)
    downloads = work / "downloads"
    downloads.mkdir(parents=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(PAGE_DIR)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(work / "profile"), executable_path="/usr/bin/chromium",
                                                       args=ARGS, accept_downloads=True, headless=True)
        page = browser.new_page()
        page.set_default_timeout(0)
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/app.html")
        t0 = time.perf_counter()
        page.evaluate(FILL, [args.tickets, 10_000])
        fill = time.perf_counter() - t0
        print(f"filled {args.tickets:,} tickets in {fill:.1f} s", flush=True)
        if args.naive:
            t0 = time.perf_counter()
            print(f"JSON.stringify of the whole store: {page.evaluate(NAIVE)} ({time.perf_counter() - t0:.1f} s)", flush=True)
        got = []
        page.on("download", lambda d: got.append(d))
        page.evaluate("([k, v]) => { window[k] = v; }", ["__ETL_EXPORT_NDJSON_BYTES", args.ndjson_mb * 2**20])
        t0 = time.perf_counter()
        summary = page.evaluate(snippet_source())
        snippet = time.perf_counter() - t0
        expected = 1 + sum(len(f) for f in summary["files"].values())
        while len(got) < expected:
            page.wait_for_timeout(200)
        for d in got:
            d.save_as(downloads / d.suggested_filename)
        saved = time.perf_counter() - t0
        browser.close()
    server.shutdown()
    files = summary["files"]["tickets"]
    size = sum((downloads / f["path"]).stat().st_size for f in files) / 2**20
    result = export(downloads, work / "export")
    assert result.counts["tickets"] == args.tickets, result.counts
    print("\n| tickets | JSON (MB) | file | snippet: read + serialize (s) | downloads saved (s) | etl export (s) |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.tickets:,} | {size:,.0f} | {', '.join(f['path'] for f in files)} | {snippet:.1f} | {saved:.1f} | "
          f"{result.seconds:.1f} |")
    print(json.dumps({k: summary[k] for k in ("counts", "files")})[:400])
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
