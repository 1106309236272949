// idb2mysql cutover adapter: makes a Dexie app read and write where the cutover flags say.
// Printed by `etl adapter`, which fills in __ETL_CUTOVER_CONFIG__ (the stages of etl/cutover/stages.py
// and the stores of etl/core/stores.py), so neither list is written twice. Include it with a <script> tag:
//
//   const cut = await IdbCutover.create({ db, baseUrl: "https://api.example", token: "..." });
//   const tickets = await cut.list("tickets", { cabang: "Semarang" });  // records as Dexie holds them
//   await cut.put("tickets", [record]);                                 // bulkPut where the stage says
//   cut.events.addEventListener("fallback", (e) => console.warn(e.detail));
//
// Flags come from GET /api/feature-flags (cached for refreshMs, revalidated by ETag). When the API
// cannot be reached the adapter reads and writes IndexedDB only, and says so (console + "fallback").
// In a stage that compares (shadow, live) a sample of reads also reads the other origin, compares
// record by record ignoring representation only (key order; a Date, ISO text or epoch ms of the
// same instant; the camelCase record vs the API's snake_case row; a number as text vs as a
// number; 1/0 vs true/false) and posts each differing record once, with its buckets, to
// POST /api/migration/mismatches. Writes go to the authoritative origin first; when that fails the
// other is not written and the error is thrown.
(function (global) {
  "use strict";
  const CONFIG = __ETL_CUTOVER_CONFIG__;
  const STAGES = CONFIG.stages;
  const STORES = CONFIG.stores;
  const FALLBACK = STAGES.find((s) => s.name === "off"); // IndexedDB only

  function get(obj, path) {
    return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
  }

  function put(obj, path, value) {
    const parts = path.split(".");
    let o = obj;
    for (const k of parts.slice(0, -1)) o = o[k] = o[k] || {};
    o[parts[parts.length - 1]] = value;
  }

  function instant(v) {
    // A time as epoch ms: Date, epoch number, ISO text with a zone, or zone-less text (UTC wall clock).
    if (v instanceof Date) return v.getTime();
    if (typeof v === "number") return v;
    if (typeof v === "string" && v.trim() !== "") {
      const text = /[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : v.replace(" ", "T") + "Z";
      const ms = Date.parse(text);
      return Number.isNaN(ms) ? v : ms;
    }
    return v;
  }

  function canonical(v) {
    if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
    if (v && typeof v === "object") return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canonical(v[k])).join(",") + "}";
    return JSON.stringify(v);
  }

  const TEXT = new Set(["varchar", "text", "mediumtext", "json"]);

  // One value in a form both origins agree on when they hold the same value (null for absent/null,
  // and for "" in a column that is not text: the transform stores "" in an optional time as NULL).
  function normalize(col, v) {
    if (v === undefined || v === null || (v === "" && !TEXT.has(col.kind))) return null;
    switch (col.kind) {
      case "datetime": case "epoch_ms": return instant(v);
      case "bool": return v === true || v === 1 || v === "1" || v === "true";
      case "double": case "int": case "bigint": return Number.isFinite(Number(v)) ? Number(v) : v;
      case "json": {
        if (typeof v === "string") { try { return canonical(JSON.parse(v)); } catch (_) { return v; } }
        return canonical(v);
      }
      default: return v; // text: byte for byte ("" is not null, "a " is not "a")
    }
  }

  function toRow(store, record) {
    const row = {};
    for (const c of store.columns) {
      if (!c.source) continue;
      let v = get(record, c.source);
      if (v === "" && !TEXT.has(c.kind)) v = null;
      else if (v instanceof Date) v = v.toISOString();
      else if (typeof v === "number" && c.kind === "datetime") v = new Date(v).toISOString();
      row[c.name] = v === undefined ? null : v;
    }
    return row;
  }

  function toRecord(store, row) {
    const record = {};
    for (const c of store.columns) {
      if (!c.source || row[c.name] === undefined || row[c.name] === null) continue;
      let v = row[c.name];
      if (c.kind === "double" || c.kind === "int" || c.kind === "bigint" || c.kind === "epoch_ms") v = Number(v);
      else if (c.kind === "bool") v = v === true || v === 1;
      put(record, c.source, v);
    }
    return record;
  }

  function differingFields(store, record, row) {
    return store.columns.filter((c) => {
      if (!c.source) return false;
      const mine = normalize(c, get(record, c.source));
      if (mine === null && store.filled.includes(c.name)) return false; // the migration fills it in
      return mine !== normalize(c, row[c.name]);
    }).map((c) => c.name);
  }

  function buckets(store, row) {
    const out = { day: null, cabang: null, status: null, category: null };
    if (store.time && row[store.time] != null) {
      const ms = instant(row[store.time]);
      if (typeof ms === "number") out.day = new Date(ms).toISOString().slice(0, 10);
    }
    for (const b of ["cabang", "status", "category"]) if (store.buckets.includes(b) && row[b] != null) out[b] = String(row[b]).slice(0, 100);
    return out;
  }

  class ApiError extends Error {}

  class Cutover {
    constructor(opts) {
      this.db = opts.db;
      this.baseUrl = (opts.baseUrl || "").replace(/\/$/, "");
      this.token = opts.token || null;
      this.refreshMs = opts.refreshMs ?? 15000;
      this.sampleRate = opts.sampleRate ?? 0.1;
      this.pageSize = opts.pageSize ?? 5000;
      this.fetch = opts.fetch || global.fetch.bind(global);
      this.clientId = opts.clientId || Cutover.clientId();
      this.events = new EventTarget();
      this.stage = FALLBACK;
      this.flags = null;
      this.fallback = null; // why the adapter is on IndexedDB only, when it is
      this.fetchedAt = 0;
      this.etag = null;
      this.body = null; // the last flags the API sent (a 304 means they still hold)
      this.reported = new Set(); // table + key of mismatches already posted
      this.timer = null;
    }

    static async create(opts) {
      const cut = new Cutover(opts);
      await cut.refreshFlags(true);
      if (opts.autoRefresh) cut.timer = setInterval(() => cut.refreshFlags(true), cut.refreshMs);
      return cut;
    }

    static clientId() {
      const k = "idb2mysql-cutover-client";
      try {
        let id = global.localStorage.getItem(k);
        if (!id) global.localStorage.setItem(k, (id = global.crypto.randomUUID()));
        return id;
      } catch (_) { return global.crypto.randomUUID(); }
    }

    emit(type, detail) {
      this.events.dispatchEvent(new CustomEvent(type, { detail }));
    }

    async api(path, init = {}) {
      const headers = { ...(init.headers || {}) };
      if (this.token) headers.Authorization = "Bearer " + this.token;
      if (init.body) headers["Content-Type"] = "application/json";
      let res;
      try {
        res = await this.fetch(this.baseUrl + path, { ...init, headers });
      } catch (e) {
        throw new ApiError(`${init.method || "GET"} ${path}: ${e.message}`);
      }
      if (res.status === 304) return { notModified: true, res };
      if (!res.ok) throw new ApiError(`${init.method || "GET"} ${path}: HTTP ${res.status} ${await res.text()}`.slice(0, 500));
      return { body: await res.json(), res };
    }

    // The flags, from the API unless fetched less than refreshMs ago (force: ask anyway, by ETag).
    async refreshFlags(force = false) {
      if (!force && Date.now() - this.fetchedAt < this.refreshMs) return this.stage;
      try {
        const { body, res, notModified } = await this.api("/api/feature-flags", {
          cache: "no-cache", headers: this.etag ? { "If-None-Match": this.etag } : {} });
        this.fetchedAt = Date.now();
        if (notModified && !this.fallback) return this.stage;
        if (!notModified) {
          this.etag = res.headers.get("ETag");
          this.body = body;
        }
        const flags = this.body.flags || {};
        const stage = STAGES.find((s) => s.name === this.body.stage) ||
          STAGES.find((s) => Object.entries(s.flags).every(([k, v]) => flags[k] === v));
        if (!stage) return this.useFallback(`the flags ${canonical(flags)} match no cutover stage`);
        const changed = stage !== this.stage || this.fallback;
        this.flags = flags; this.stage = stage; this.fallback = null;
        if (changed) this.emit("stage", { stage: stage.name, flags });
        return stage;
      } catch (e) {
        this.fetchedAt = Date.now();
        return this.useFallback(`feature flags unavailable (${e.message})`);
      }
    }

    useFallback(why) {
      this.fallback = why;
      this.stage = FALLBACK;
      console.warn(`[idb2mysql] reading and writing IndexedDB only: ${why}`);
      this.emit("fallback", { reason: why });
      return this.stage;
    }

    store(name) {
      const s = STORES[name] || Object.values(STORES).find((x) => x.table === name);
      if (!s) throw new Error(`unknown store ${name}; the stores are ${Object.keys(STORES).join(", ")}`);
      return s;
    }

    async readIdb(store, filters) {
      const records = await this.db.table(store.name).toArray();
      const wanted = Object.entries(filters || {});
      return records.filter((r) => wanted.every(([col, v]) => get(r, store.columns.find((c) => c.name === col).source) === v));
    }

    async readMysql(store, filters) {
      const rows = [];
      let after = "";
      for (;;) {
        const q = new URLSearchParams({ limit: String(this.pageSize), after, ...(filters || {}) });
        const { body } = await this.api(`${store.path}?${q}`);
        rows.push(...body.data);
        after = body.pagination && body.pagination.nextCursor;
        if (!after) return rows;
      }
    }

    // Records of a store (equality filters by column name, e.g. {cabang: "Semarang"}), as Dexie holds them.
    async list(name, filters = {}) {
      const store = this.store(name);
      const stage = await this.refreshFlags();
      let records;
      if (stage.read_from === "mysql") {
        try {
          const rows = await this.readMysql(store, filters);
          records = rows.map((r) => toRecord(store, r));
          if (stage.compare_with && Math.random() < this.sampleRate) await this.compare(store, await this.readIdb(store, filters), rows, stage);
          return records;
        } catch (e) {
          if (!(e instanceof ApiError)) throw e;
          this.useFallback(`reading ${store.table} from the API failed (${e.message})`);
          return this.readIdb(store, filters);
        }
      }
      records = await this.readIdb(store, filters);
      if (stage.compare_with && Math.random() < this.sampleRate) {
        try {
          await this.compare(store, records, await this.readMysql(store, filters), stage);
        } catch (e) {
          if (!(e instanceof ApiError)) throw e;
          console.warn(`[idb2mysql] comparison of ${store.table} skipped: ${e.message}`);
        }
      }
      return records;
    }

    // Compare IndexedDB records with MySQL rows by key; post the differing records not posted before.
    async compare(store, records, rows, stage) {
      const byKey = new Map(rows.map((r) => [String(r[store.key]), r]));
      const keys = new Set([...records.map((r) => String(get(r, store.keySource))), ...byKey.keys()]);
      const recs = new Map(records.map((r) => [String(get(r, store.keySource)), r]));
      const mismatches = [];
      let compared = 0;
      for (const key of keys) {
        if (this.reported.has(store.table + "\u0000" + key)) continue; // counted once, when first reported
        compared += 1;
        const rec = recs.get(key), row = byKey.get(key);
        const fields = !rec ? ["(missing in indexeddb)"] : !row ? ["(missing in mysql)"] : differingFields(store, rec, row);
        if (fields.length) {
          mismatches.push({ key, fields, buckets: buckets(store, row || toRow(store, rec)) });
          this.reported.add(store.table + "\u0000" + key);
        }
      }
      const report = { clientId: this.clientId, stage: stage.name, table: store.table, compared, mismatches };
      for (const m of mismatches) this.emit("mismatch", { table: store.table, ...m });
      if (compared) await this.api("/api/migration/mismatches", { method: "POST", body: JSON.stringify(report) });
      return report;
    }

    async writeIdb(store, records) { await this.db.table(store.name).bulkPut(records); }

    async writeMysql(store, records) {
      await this.api(`${store.path}/bulk`, { method: "POST", body: JSON.stringify({ records: records.map((r) => toRow(store, r)) }) });
    }

    // bulkPut where the stage says: the authoritative origin first; the other only when that worked.
    async put(name, records) {
      const store = this.store(name);
      const stage = await this.refreshFlags();
      const write = { indexeddb: (r) => this.writeIdb(store, r), mysql: (r) => this.writeMysql(store, r) };
      const result = { stage: stage.name, written: [], failed: null };
      try {
        await write[stage.write_first](records);
      } catch (e) {
        this.emit("write-error", { origin: stage.write_first, table: store.table, error: e.message, skipped: stage.write_second });
        throw e; // the authority did not take it: the other origin is not written either
      }
      result.written.push(stage.write_first);
      if (stage.write_second) {
        try {
          await write[stage.write_second](records);
          result.written.push(stage.write_second);
        } catch (e) {
          result.failed = { origin: stage.write_second, error: e.message };
          console.error(`[idb2mysql] ${store.table}: written to ${stage.write_first}, not to ${stage.write_second}: ${e.message}`);
          this.emit("write-error", { origin: stage.write_second, table: store.table, error: e.message });
        }
      }
      return result;
    }

    stop() { if (this.timer) clearInterval(this.timer); }
  }

  Cutover.normalize = normalize;
  Cutover.toRow = toRow;
  Cutover.toRecord = toRecord;
  Cutover.differingFields = differingFields;
  Cutover.STAGES = STAGES;
  Cutover.STORES = STORES;
  global.IdbCutover = Cutover;
})(typeof window !== "undefined" ? window : globalThis);
