"""The sample-export generator: deterministic, shaped like the app's stores, quirky."""

from __future__ import annotations

import collections
import hashlib
import json
import random
import re
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from etl import SampleResult, write_sample
from etl.source.sample import STORES, _uuid4

FILES = [f"{store}.json" for store in STORES] + ["export-summary.json"]
TICKET_KEYS = (
    ["id", "customerId", "name", "category", "description", "cause", "handling", "openTime",
     "closeTime", "duration", "closeHandling", "handlingDuration", "classification",
     "subClassification", "status"]
    + [f"handling{i}" for i in range(1, 6)]
    + [f"closeHandling{i}" for i in range(1, 6)]
    + [f"handlingDuration{i}" for i in range(1, 6)]
    + ["openBy", "cabang", "uploadTimestamp", "repClass", "batchId", "fileName", "fileHash",
       "uploadSessionId"]
)
TICKET_ALWAYS = {"id", "customerId", "name", "category", "description", "handling", "openTime",
                 "duration", "handlingDuration", "classification", "status", "handling1",
                 "openBy", "cabang", "uploadTimestamp"} | {f"handlingDuration{i}" for i in range(1, 6)}
INCIDENT_KEYS = [
    "id", "noCase", "priority", "site", "ncal", "status", "level", "ts", "odpBts", "startTime",
    "startEscalationVendor", "endTime", "durationMin", "durationVendorMin", "problem", "penyebab",
    "actionTerakhir", "note", "klasifikasiGangguan", "powerBefore", "powerAfter", "startPause1",
    "endPause1", "startPause2", "endPause2", "totalDurationPauseMin", "totalDurationVendorMin",
    "netDurationMin", "batchId", "importedAt", "uploadTimestamp",
]
NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
FORMATTED = re.compile(r"^\d+:\d{2}:\d{2}$")
MONTHS = "Januari|Februari|Maret|April|Mei|Juni|Juli|Agustus|September|Oktober|November|Desember"


def _ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _load(out: Path, store: str) -> list[dict]:
    return json.loads((out / f"{store}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[SampleResult, dict[str, list[dict]]]:
    out = tmp_path_factory.mktemp("sample")
    result = write_sample(out, tickets=3000)
    return result, {store: _load(out, store) for store in STORES}


# ----------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = write_sample(tmp_path / "a", tickets=800, seed=11)
    b = write_sample(tmp_path / "b", tickets=800, seed=11)
    assert a.counts == b.counts
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(FILES)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(FILES)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_different_seed_differs(tmp_path):
    write_sample(tmp_path / "a", tickets=800, seed=11)
    write_sample(tmp_path / "b", tickets=800, seed=12)
    for store in STORES:
        name = f"{store}.json"
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes(), name


def test_rewrite_in_place_is_identical_and_leaves_no_temp_files(tmp_path):
    write_sample(tmp_path, tickets=300)
    first = {name: (tmp_path / name).read_bytes() for name in FILES}
    write_sample(tmp_path, tickets=300)
    assert {name: (tmp_path / name).read_bytes() for name in FILES} == first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)


def test_uuid_helper_is_uuid4_from_the_rng():
    a, b = random.Random(3), random.Random(3)
    for _ in range(100):
        assert _uuid4(a.getrandbits) == str(uuid.UUID(int=b.getrandbits(128), version=4))


# --------------------------------------------------------------------- summary


def test_summary_counts_equal_array_lengths(sample):
    result, data = sample
    summary = json.loads((result.out_dir / "export-summary.json").read_text(encoding="utf-8"))
    assert summary["databaseName"] == "InsightTicketDatabase"
    assert summary["databaseVersion"] == 7
    assert summary["exportedAt"] == "2025-09-01T00:00:00.000Z"
    assert summary["source"] == "sample"
    assert summary["files"] == {store: [f"{store}.json"] for store in STORES}
    assert summary["counts"] == {store: len(data[store]) for store in STORES} == result.counts
    # None sizes follow the ticket count
    assert result.counts["tickets"] == 3000
    assert result.counts["incidents"] == 750
    assert result.counts["customers"] == 1000
    assert result.counts["vendors"] == 5
    assert "tickets 3,000" in str(result)


def test_files_are_compact_utf8_json_arrays(sample):
    result, _ = sample
    raw = (result.out_dir / "tickets.json").read_bytes()
    assert raw.startswith(b"[{") and raw.endswith(b"}]")
    assert b'", "' not in raw[:2000] and b'": ' not in raw[:2000]  # compact separators
    assert b"\\u" not in raw  # ensure_ascii=False: no escapes ...
    assert any(ord(c) > 0xFFFF for c in raw.decode("utf-8"))  # ... but 4-byte UTF-8


def test_duckdb_reads_every_store(sample):
    duckdb = pytest.importorskip("duckdb")
    result, data = sample
    con = duckdb.connect()
    for store in STORES:
        path = result.out_dir / f"{store}.json"
        n = con.execute(f"select count(*) from read_json('{path}', format='array')").fetchone()[0]
        assert n == len(data[store]), store


def test_small_and_empty_samples(tmp_path):
    r = write_sample(tmp_path / "zero", tickets=0)
    assert r.counts == {"tickets": 0, "incidents": 0, "customers": 0, "vendors": 5,
                        "uploadSessions": 2}
    assert _load(tmp_path / "zero", "tickets") == []
    r = write_sample(tmp_path / "one", tickets=1, incidents=1, customers=1, vendors=1)
    for store in STORES:
        assert len(_load(tmp_path / "one", store)) == r.counts[store]
    with pytest.raises(ValueError):
        write_sample(tmp_path / "bad", tickets=-1)


# --------------------------------------------------------------------- tickets


def test_ticket_shapes(sample):
    _, data = sample
    for t in data["tickets"]:
        keys = list(t)
        assert keys == [k for k in TICKET_KEYS if k in t], keys  # documented keys, in order
        assert TICKET_ALWAYS <= set(t)
        assert uuid.UUID(t["id"]).version == 4
        assert NAIVE.match(t["openTime"])
        assert isinstance(t["uploadTimestamp"], int)
        for key in [k for k in t if "Duration" in k or k == "duration"]:
            d = t[key]
            assert set(d) == {"rawHours", "formatted"}
            assert isinstance(d["rawHours"], float)
            assert FORMATTED.match(d["formatted"]), d
        for key in ["closeTime", "closeHandling"] + [f"closeHandling{i}" for i in range(1, 6)]:
            if t.get(key):
                assert ISO_Z.match(t[key]), (key, t[key])


def test_ticket_durations_carry_the_browser_offset(sample):
    _, data = sample
    seen = collections.Counter()
    for t in data["tickets"]:
        open_ms = _ms(t["openTime"] + "Z")
        close = t.get("closeTime")
        d = t["duration"]
        if not close:
            seen["no close"] += 1
            assert d == {"rawHours": 0.0, "formatted": "0:00:00"}
        elif _ms(close) < open_ms:
            seen["close before open"] += 1
            assert d == {"rawHours": 0.0, "formatted": "0:00:00"}
        else:
            seen["closed"] += 1
            assert d["rawHours"] == pytest.approx((_ms(close) - open_ms) / 3_600_000 + 7)
            h, m, s = map(int, d["formatted"].split(":"))
            assert h * 3600 + m * 60 + s == round(d["rawHours"] * 3600)
            assert _ms(close) <= t["uploadTimestamp"]
    assert seen["no close"] and seen["close before open"] and seen["closed"] > 2500
    assert any(int(t["duration"]["formatted"].split(":")[0]) > 24 for t in data["tickets"])


def test_ticket_optional_fields_show_absent_empty_and_null(sample):
    _, data = sample
    for key in ["cause", "subClassification", "repClass", "closeHandling2"]:
        states = collections.Counter(
            "absent" if key not in t else "null" if t[key] is None else "empty" if t[key] == "" else "value"
            for t in data["tickets"]
        )
        assert set(states) == {"absent", "null", "empty", "value"}, (key, states)


def test_legacy_tickets_and_duplicate_uploads(sample):
    _, data = sample
    tickets = data["tickets"]
    legacy = [t for t in tickets if not t.get("batchId")]
    assert 0.07 < len(legacy) / len(tickets) < 0.13
    assert any("batchId" not in t for t in legacy) and any("batchId" in t for t in legacy)
    for t in legacy:
        for key in ("batchId", "fileName", "fileHash", "uploadSessionId"):
            assert t.get(key) is None
    for t in tickets:
        if t.get("batchId"):
            assert t["uploadSessionId"] == t["batchId"] and t["fileName"].endswith(".xlsx")
            assert re.fullmatch(r"[0-9a-f]{64}", t["fileHash"])
    # the same Excel row uploaded twice: same natural key, new id, another batch
    by_key = collections.defaultdict(list)
    for t in tickets:
        by_key[(t["customerId"], t["openTime"], t["openBy"])].append(t)
    dups = [v for v in by_key.values() if len(v) > 1]
    assert 0.01 < sum(len(v) - 1 for v in dups) / len(tickets) < 0.03
    for a, b, *_ in dups:
        assert a["id"] != b["id"] and a.get("batchId") != b.get("batchId")
    assert len({t["id"] for t in tickets}) == len(tickets)


def test_ticket_values_are_not_clean(sample):
    _, data = sample
    tickets = data["tickets"]
    texts = [v for t in tickets for v in t.values() if isinstance(v, str)]
    assert any("\t" in v for v in texts)
    assert any(t["description"].endswith(" ") for t in tickets)
    assert any(any(ord(c) > 0xFFFF for c in v) for v in texts)  # 4-byte UTF-8
    assert any("'" in t["name"] for t in tickets)
    classes = collections.Counter(t["classification"] for t in tickets)
    assert len(classes) == 8 and " Tidak ada " in classes
    statuses = collections.Counter(t["status"] for t in tickets)
    assert statuses.most_common(1)[0][0] == "Closed" and "Open" in statuses and len(statuses) > 3
    assert {t["category"] for t in tickets} == {"Nexa", "ZiGY", "Fiberstream"}
    assert 19 <= len({t["openBy"] for t in tickets}) <= 21
    cabang = collections.Counter(t["cabang"] for t in tickets)
    assert cabang.most_common(1)[0][0] == "Semarang" and len(cabang) >= 5
    for i, rate in [(2, 0.29), (3, 0.07), (4, 0.02)]:
        filled = sum(bool(t.get(f"handling{i}")) for t in tickets) / len(tickets)
        assert abs(filled - rate) < 0.03, (i, filled)
    # customer ids and names are not one to one
    ids = {t["customerId"] for t in tickets}
    names = {t["name"] for t in tickets}
    assert len(names) > len(ids) * 1.1
    names_per_id = collections.defaultdict(set)
    for t in tickets:
        names_per_id[t["customerId"]].add(t["name"])
    assert any(len(v) > 1 for v in names_per_id.values())


# ------------------------------------------------------------------- incidents


def test_incident_shapes(sample):
    _, data = sample
    incidents = data["incidents"]
    for i in incidents:
        assert list(i) == [k for k in INCIDENT_KEYS if k in i]
        assert "fileName" not in i and "fileHash" not in i and "uploadSessionId" not in i
        m = re.fullmatch(r"INC-([0-9a-f]{8})-(\d{13})-([0-9a-z]{6})", i["id"])
        assert m, i["id"]
        assert m.group(1) == hashlib.sha1((i["noCase"] + i["startTime"]).encode()).hexdigest()[:8]
        assert int(m.group(2)) == _ms(i["importedAt"])
        assert re.fullmatch(r"NC-\d{4}-\d{6}", i["noCase"])
        assert i["priority"] in {"Low", "Medium", "High", "Critical"}
        assert i["ncal"] in {"Blue", "Yellow", "Orange", "Red", "Black"}
        assert isinstance(i["level"], int) and 1 <= i["level"] <= 5
        assert ISO_Z.match(i["startTime"]) and ISO_Z.match(i["importedAt"])
        for key in ("durationMin", "durationVendorMin", "totalDurationPauseMin",
                    "totalDurationVendorMin", "netDurationMin"):
            assert isinstance(i[key], float)
        assert i["netDurationMin"] == pytest.approx(i["durationMin"] - i["totalDurationPauseMin"])
        if i.get("endTime"):
            assert i["durationMin"] == pytest.approx((_ms(i["endTime"]) - _ms(i["startTime"])) / 60000)
        for key in ("powerBefore", "powerAfter"):
            assert i[key] is None or i[key] < 0
    assert len({i["batchId"] for i in incidents}) == len(incidents)  # a fresh batch per record
    assert any("startPause1" not in i for i in incidents)
    assert any(i.get("startPause1", 0) is None for i in incidents)
    assert any(i.get("startPause2") for i in incidents)
    # one upload: importedAt a few ms apart; uploads far apart
    uploads = collections.defaultdict(list)
    for i in incidents:
        uploads[i["uploadTimestamp"]].append(_ms(i["importedAt"]))
    assert len(uploads) > 1
    for times in uploads.values():
        assert max(times) - min(times) < 2000
    starts = sorted(min(v) for v in uploads.values())
    assert min(b - a for a, b in zip(starts, starts[1:])) >= 60_000
    natural = collections.Counter((i["noCase"], i["startTime"]) for i in incidents)
    assert any(n > 1 for n in natural.values())  # re-imported incidents


# ------------------------------------------------------ customers and vendors


def test_customer_shapes(sample):
    _, data = sample
    customers = data["customers"]
    for c in customers:
        assert list(c)[:5] == ["id", "nama", "jenisKlien", "layanan", "kategori"]
        assert re.fullmatch(rf"(?:{MONTHS}) \d{{4}}-\d+-.+", c["id"], re.S), c["id"]
        assert c["id"].endswith("-" + c["nama"])
        assert isinstance(c["uploadTimestamp"], int)
    assert len({c["id"] for c in customers}) == len(customers)
    assert any(c["batchId"] is None and c["fileName"] is None for c in customers)  # legacy
    assert any(c["batchId"] for c in customers)
    sheets = {c["id"].split("-")[0] for c in customers}
    assert len(sheets) > 1  # monthly snapshots
    assert any(c["id"].startswith("Agustus 2025-0-") for c in customers)


def test_vendor_shapes(sample):
    _, data = sample
    vendors = data["vendors"]
    assert [v["id"] for v in vendors] == list(range(1, len(vendors) + 1))
    for v in vendors:
        for key in ("createdAt", "updatedAt"):
            assert set(v[key]) == {"$date"} and isinstance(v[key]["$date"], int)
        assert v["createdAt"]["$date"] <= v["updatedAt"]["$date"]
        assert isinstance(v["isActive"], bool) and "@" in v["email"]
    assert sum("description" not in v for v in vendors) == 1


def test_upload_sessions_match_the_records(sample):
    _, data = sample
    sessions = data["uploadSessions"]
    carried = collections.Counter(t.get("batchId") for t in data["tickets"])
    carried.update(c["batchId"] for c in data["customers"])
    statuses = collections.Counter(s["status"] for s in sessions)
    assert statuses["failed"] == 1 and statuses["deleted"] == 1
    assert statuses["completed"] == len(sessions) - 2
    assert {s["dataType"] for s in sessions} == {"tickets", "customers"}
    for s in sessions:
        assert s["fileName"].endswith(".xlsx") and re.fullmatch(r"[0-9a-f]{64}", s["fileHash"])
        assert re.fullmatch(r"batch_\d{13}_[0-9a-z]{9}", s["id"])
        assert str(s["uploadTimestamp"]) in s["id"]
        assert s["recordCount"] == s["successCount"] + s["errorCount"]
        assert isinstance(s["errorLog"], list) and all(isinstance(e, str) for e in s["errorLog"])
        if s["status"] == "completed":
            assert s["successCount"] == carried[s["id"]] > 0
            assert len(s["errorLog"]) == s["errorCount"]
        else:
            assert carried[s["id"]] == 0
    assert set(carried) - {None} <= {s["id"] for s in sessions}


def test_stores_are_in_indexeddb_key_order(sample):
    _, data = sample
    for store in STORES:
        ids = [r["id"] for r in data[store]]
        key = (lambda k: k.encode("utf-16-be")) if store != "vendors" else None
        assert ids == sorted(ids, key=key), store
    # so legacy rows are spread through the file, not bunched at its start
    first = data["tickets"][:300]
    assert any(not t.get("batchId") for t in first) and any(t.get("batchId") for t in first)
