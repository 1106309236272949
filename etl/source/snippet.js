/*
 * idb2mysql export snippet: copies the helpdesk app's IndexedDB out of the browser.
 *
 * Open the app's page (same site, same browser profile that holds the data), open the
 * developer tools console, paste this whole file and press Enter (or use the bookmarklet
 * that `etl snippet --bookmarklet` prints). It reads every object store of
 * InsightTicketDatabase in ONE read-only transaction, so the files form a consistent
 * snapshot, and then downloads, in the app's export layout:
 *
 *   <store>.json          a JSON array of the store's records, camelCase as stored
 *   <store>.ndjson        a large store (over 64 MB of JSON) instead: one record per line,
 *                         which no JavaScript string has to hold whole and which
 *                         `etl export` reads on every core
 *   export-summary.json   database name and version, exportedAt, the count per store and
 *                         the file list; downloaded last
 *
 * A Date is written as {"$date": <epoch ms>}: it stays an instant and never looks like a
 * plain string. A property whose value is undefined is left out, as JSON.stringify does.
 * Users' password fields are never downloaded (the backend owns users).
 *
 * The browser may ask once whether the page may download several files: allow it. Save
 * the files into an empty folder (a name the browser changed, like "tickets (1).json",
 * is not found), then:   etl export --from THAT_FOLDER
 *
 * Options, set on window before running the snippet:
 *   window.__ETL_EXPORT_NDJSON_BYTES = 64 * 1024 * 1024  a store larger than this is NDJSON
 *   window.__ETL_EXPORT_DB = "InsightTicketDatabase"     the database to export
 */
(async () => {
  "use strict";
  const DB_NAME = window.__ETL_EXPORT_DB || "InsightTicketDatabase";
  // Above this, a store is written as NDJSON: DuckDB parses one JSON array on one thread (and
  // `etl export` cuts a large one into parts, a copy), but NDJSON on every core and cheaper.
  const NDJSON_BYTES = Number(window.__ETL_EXPORT_NDJSON_BYTES) || 64 * 1024 * 1024;
  const BATCH = 2000; // records per getAll() request
  // Text is gathered into Blobs of this size: no JavaScript string ever holds a whole store,
  // and the browser may keep the Blobs on disk instead of in memory.
  const PIECE_CHARS = 4 * 1024 * 1024;
  const OMIT = { users: ["password"] };
  const SUMMARY = "export-summary.json";
  const warnings = new Set();

  const request = (r) =>
    new Promise((resolve, reject) => {
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const typeOf = (v) => Object.prototype.toString.call(v).slice(8, -1); // "Date", "Blob", ...

  function openDatabase() {
    return new Promise((resolve, reject) => {
      let absent = false;
      const r = indexedDB.open(DB_NAME); // no version: the current one, never an upgrade
      r.onupgradeneeded = () => {
        absent = true; // the database did not exist: do not leave an empty one behind
        r.transaction.abort();
      };
      r.onsuccess = () => resolve(r.result);
      r.onerror = (e) => {
        e.preventDefault();
        reject(new Error(absent ? `no IndexedDB database ${DB_NAME} on ${location.origin}: run this on the app's page`
                                : `cannot open ${DB_NAME}: ${r.error}`));
      };
      r.onblocked = () => reject(new Error(`${DB_NAME} is blocked: close the app's other tabs and retry`));
    });
  }

  // JSON text of one record: Dates become {"$date": ms}; values JSON cannot hold are reported.
  function recordJson(storeName, record) {
    const omit = OMIT[storeName];
    if (omit && record && typeof record === "object") {
      record = Object.fromEntries(Object.entries(record).filter(([k]) => !omit.includes(k)));
    }
    return JSON.stringify(record, function (key, value) {
      const raw = this[key]; // before Date.prototype.toJSON turned it into text
      const type = typeOf(raw);
      if (type === "Date") {
        const ms = raw.getTime();
        return { $date: Number.isNaN(ms) ? null : ms };
      }
      if (type === "BigInt") {
        warnings.add(`${storeName}.${key}: a BigInt, written as text`);
        return String(raw);
      }
      if (["Blob", "File", "ArrayBuffer", "Map", "Set", "RegExp"].includes(type) || ArrayBuffer.isView(raw)) {
        warnings.add(`${storeName}.${key}: a ${type}, which JSON cannot hold: written as null`);
        return null;
      }
      return value;
    });
  }

  // One store's file. Records are kept as strings until the store passes NDJSON_BYTES: a
  // smaller store becomes a JSON array (the app's layout), a larger one NDJSON, gathered into
  // Blobs as it is read (sizes are counted in UTF-16 characters: about bytes).
  function storeWriter() {
    let records = [];
    let chars = 0;
    let count = 0;
    let blobs = null; // NDJSON from here on
    let pieces = [];
    let pieceChars = 0;
    const flush = () => {
      if (pieces.length) blobs.push(new Blob(pieces));
      pieces = [];
      pieceChars = 0;
    };
    const line = (text) => {
      pieces.push(text + "\n");
      pieceChars += text.length + 1;
      if (pieceChars >= PIECE_CHARS) flush();
    };
    return {
      add(text) {
        count += 1;
        if (blobs) return line(text);
        records.push(text);
        chars += text.length;
        if (chars > NDJSON_BYTES) {
          blobs = [];
          records.forEach(line);
          records = null;
        }
      },
      finish() {
        if (blobs) {
          flush();
          return { format: "ndjson", count, blob: new Blob(blobs, { type: "application/x-ndjson" }) };
        }
        const body = records.length ? "[\n" + records.join(",\n") + "\n]\n" : "[]\n"; // an empty store is []
        return { format: "array", count, blob: new Blob([body], { type: "application/json" }) };
      },
    };
  }

  function download(fileName, blob) {
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = fileName;
    a.style.display = "none";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  const db = await openDatabase();
  const names = Array.from(db.objectStoreNames);
  const exportedAt = new Date().toISOString();
  const counts = {};
  const written = {};
  try {
    const tx = db.transaction(names, "readonly"); // one transaction: one consistent snapshot
    const finished = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onabort = () => reject(tx.error || new Error("the export transaction was aborted"));
    });
    for (const name of names) {
      const store = tx.objectStore(name);
      const expected = await request(store.count());
      const writer = storeWriter();
      let last;
      let n = 0;
      for (;;) {
        // Next batch after the last key read; keys and values of one range come back aligned.
        const range = last === undefined ? null : IDBKeyRange.lowerBound(last, true);
        const [keys, values] = await Promise.all([
          request(store.getAllKeys(range, BATCH)),
          request(store.getAll(range, BATCH)),
        ]);
        for (const value of values) writer.add(recordJson(name, value));
        n += values.length;
        if (values.length < BATCH) break;
        last = keys[keys.length - 1];
      }
      if (n !== expected) throw new Error(`${name}: read ${n} records but the store holds ${expected}`);
      counts[name] = n;
      written[name] = writer.finish();
      console.log(`[etl export] ${name}: ${n} records (${written[name].format})`);
    }
    await finished;
  } finally {
    db.close();
  }

  const files = {};
  const downloads = [];
  for (const name of names) {
    const { format, count, blob } = written[name];
    const path = `${name}.${format === "ndjson" ? "ndjson" : "json"}`;
    files[name] = [{ path, format, count }];
    downloads.push([path, blob]);
  }
  const summary = {
    databaseName: db.name,
    // Dexie opens IndexedDB at ten times its schema version (7 -> 70).
    databaseVersion: db.version % 10 === 0 ? db.version / 10 : db.version,
    indexedDbVersion: db.version,
    exportedAt,
    exportedBy: "idb2mysql export snippet",
    origin: location.origin,
    counts,
    files,
    omittedFields: Object.fromEntries(Object.entries(OMIT).filter(([s]) => names.includes(s))),
    warnings: Array.from(warnings),
  };
  downloads.push([SUMMARY, new Blob([JSON.stringify(summary, null, 2) + "\n"], { type: "application/json" })]);
  for (const [fileName, blob] of downloads) {
    download(fileName, blob);
    await sleep(300); // browsers drop downloads started too close together
  }
  console.log(`[etl export] downloaded ${downloads.length} files; next: etl export --from <the folder holding them>`);
  return summary;
})();
