"""Deterministic sample export of the helpdesk app's IndexedDB.

``write_sample(out_dir)`` writes what the app's export step produces: one JSON
array per store (``tickets.json``, ``incidents.json``, ``customers.json``,
``vendors.json``, ``uploadSessions.json``) plus ``export-summary.json``.
Records use the camelCase shapes of ``/work/shared/domain.md`` and carry its
quirks at realistic rates: zone-less openTime next to ``Z`` close times,
durations stretched by the browser's UTC+7 offset, absent / ``""`` / ``null``
optional fields, legacy (pre-v7) records without upload metadata, the same
Excel row uploaded twice, stray tabs and trailing spaces, 4-byte UTF-8, ids
and names of customers not one to one.

A JavaScript ``Date`` (vendors' createdAt/updatedAt) is written as
``{"$date": <epoch ms>}``; everything else is plain JSON.

Output is byte-identical for the same arguments: all randomness comes from
``random.Random(seed)`` (each store from its own generator seeded from it, so
changing one store's size leaves the others as they were), nothing reads the
clock, and nothing depends on hash or set order.

Each store is written in IndexedDB key order (what ``table.toArray()`` returns),
so uploads, legacy rows and duplicates come interleaved, as in a real export.
Tickets, the bulk of a big sample, are assembled from pre-encoded JSON
fragments and streamed to disk in chunks; incidents and customers are held as
encoded text until sorted.  A million tickets take about 30 s and 0.5 GB.

Each file is written to a hidden temp file next to it, fsynced and renamed
into place, so no half-written file ever carries a final name;
``export-summary.json`` is removed first and written last, so its presence
means the set is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from random import Random
from typing import Any, Callable, Iterable

from ..core.result import Result

__all__ = ["SampleResult", "write_sample", "DATABASE_NAME", "DATABASE_VERSION", "STORES"]

DATABASE_NAME = "InsightTicketDatabase"
DATABASE_VERSION = 7
STORES = ("tickets", "incidents", "customers", "vendors", "uploadSessions")

#: UTC offset (hours) of the browser that computed the stored ticket durations.
BROWSER_UTC_OFFSET_HOURS = 7

_MIN_MS = 60_000
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
_OFFSET_MS = BROWSER_UTC_OFFSET_HOURS * _HOUR_MS
_CHUNK = 4096  # records per encode/write

_ABSENT: Any = object()  # marks a key to drop from a record
_ZERO_DURATION = {"rawHours": 0.0, "formatted": "0:00:00"}


# --------------------------------------------------------------------- result


@dataclass(frozen=True)
class SampleResult(Result):
    """What ``write_sample`` wrote: the folder and the record count per store."""

    out_dir: Path
    tickets: int
    incidents: int
    customers: int
    vendors: int
    upload_sessions: int

    @property
    def counts(self) -> dict[str, int]:
        return {
            "tickets": self.tickets,
            "incidents": self.incidents,
            "customers": self.customers,
            "vendors": self.vendors,
            "uploadSessions": self.upload_sessions,
        }

    @property
    def files(self) -> dict[str, Path]:
        return {store: self.out_dir / f"{store}.json" for store in STORES}

    def __str__(self) -> str:
        parts = ", ".join(f"{store} {n:,}" for store, n in self.counts.items())
        return f"sample export in {self.out_dir}: {parts}"


# ------------------------------------------------------------------ utilities


class _Clock:
    """Fast ISO formatting of epoch milliseconds (UTC), cached per day."""

    _HM = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
    _SS = [f"{s:02d}" for s in range(60)]
    _EPOCH = date(1970, 1, 1)

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def day(self, d: int) -> str:
        s = self._days.get(d)
        if s is None:
            s = self._days[d] = (self._EPOCH + timedelta(days=d)).isoformat()
        return s

    def iso_z(self, ms: int) -> str:
        """``2024-07-17T15:43:00.000Z``"""
        d, rem = divmod(ms, _DAY_MS)
        m, rem = divmod(rem, _MIN_MS)
        s, milli = divmod(rem, 1000)
        return f"{self.day(d)}T{self._HM[m]}:{self._SS[s]}.{milli:03d}Z"

    def naive_minute(self, minute: int) -> str:
        """``2024-07-15T17:35:00`` (UTC wall clock, no zone) of an epoch minute."""
        d, m = divmod(minute, 1440)
        return f"{self.day(d)}T{self._HM[m]}:00"

    def iso_z_minute(self, minute: int) -> str:
        d, m = divmod(minute, 1440)
        return f"{self.day(d)}T{self._HM[m]}:00.000Z"

    def year_month(self, ms: int) -> tuple[int, int]:
        s = self.day(ms // _DAY_MS)
        return int(s[:4]), int(s[5:7])


def _parse_ms(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _uuid4_int(getrandbits: Callable[[int], int]) -> int:
    """``uuid.UUID(int=getrandbits(128), version=4).int``, without the object."""
    n = getrandbits(128)
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)
    return (n & ~(0xF000 << 64)) | (4 << 76)


def _uuid_str(n: int) -> str:
    """``str(uuid.UUID(int=n))``: sorts as the int does."""
    h = "%032x" % n
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _uuid4(getrandbits: Callable[[int], int]) -> str:
    """``str(uuid.UUID(int=getrandbits(128), version=4))``."""
    return _uuid_str(_uuid4_int(getrandbits))


_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(rng: Random, width: int) -> str:
    n = rng.getrandbits(64) % (36**width)
    out = []
    for _ in range(width):
        n, d = divmod(n, 36)
        out.append(_B36[d])
    return "".join(out)


def _batch_id(rng: Random, ms: int) -> str:
    """The app's ``batch_${Date.now()}_${Math.random().toString(36).substr(2, 9)}``."""
    return f"batch_{ms}_{_base36(rng, 9)}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _sha256_hex(rng: Random) -> str:
    return "%064x" % rng.getrandbits(256)


def _duration(diff_ms: int) -> dict[str, Any]:
    """Duration object as the UTC+7 browser stored it (0 when close <= open)."""
    if diff_ms <= 0:
        return _ZERO_DURATION
    total = diff_ms + _OFFSET_MS
    secs = total // 1000
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return {"rawHours": total / _HOUR_MS, "formatted": f"{h}:{m:02d}:{s:02d}"}


def _pool(rng: Random, weighted: Iterable[tuple[Any, float]], size: int = 1000) -> list[Any]:
    """A list of ``size`` values in the given proportions, for ``pool[int(r()*size)]``."""
    items = list(weighted)
    total = sum(w for _, w in items)
    out: list[Any] = []
    acc = 0.0
    for value, w in items:
        acc += w
        out.extend([value] * (round(acc / total * size) - len(out)))
    rng.shuffle(out)
    return out


def _split(rng: Random, n: int, parts: int) -> list[int]:
    """Boundaries [0, .., n] of ``parts`` contiguous chunks of varied size."""
    weights = [0.5 + rng.random() for _ in range(parts)]
    total = sum(weights)
    bounds, acc = [0], 0.0
    for w in weights:
        acc += w
        bounds.append(round(n * acc / total))
    bounds[-1] = n
    return bounds


class _ArrayWriter:
    """Stream a JSON array to ``path`` through a hidden temp file, renamed on close."""

    _enc = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)

    def __init__(self, path: Path) -> None:
        self.path = path
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        self.tmp = Path(tmp)
        os.fchmod(fd, 0o644)
        self._f = os.fdopen(fd, "wb", buffering=1 << 20)
        self._first = True
        self.count = 0

    def write_raw(self, encoded: list[str]) -> None:
        """Append records already encoded as JSON text."""
        if not encoded:
            return
        self._f.write((b"[" if self._first else b",") + ",".join(encoded).encode("utf-8"))
        self._first = False
        self.count += len(encoded)

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        body = self._enc.encode(records)[1:-1]
        self._f.write((b"[" if self._first else b",") + body.encode("utf-8"))
        self._first = False
        self.count += len(records)

    def close(self) -> None:
        self._f.write(b"[]" if self._first else b"]")
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "_ArrayWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.close()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()


def _write_in_key_order(out: _ArrayWriter, records: list[tuple[str, str]]) -> None:
    """Write (key, JSON text) pairs in IndexedDB key order: strings compare by UTF-16
    code units. The list is sorted in place."""
    records.sort(key=lambda kv: kv[0].encode("utf-16-be"))
    for i in range(0, len(records), _CHUNK):
        out.write_raw([text for _, text in records[i:i + _CHUNK]])


def _write_json(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(_json(obj).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class _Session:
    """An upload of an Excel file (becomes an uploadSessions record)."""

    id: str
    file_name: str
    file_hash: str
    ts: int
    data_type: str
    error_count: int = 0
    success_count: int = 0


@dataclass(frozen=True)
class _Timeline:
    exported_ms: int
    end_ms: int  # last day with data
    start_ms: int  # first ticket day
    v7_ms: int  # schema version 7 (upload sessions) went live


# ----------------------------------------------------------------- vocabulary

_FIRST = (
    "Difa'", "Muhammad", "Ahmad", "Siti", "Nur", "Dewi", "Rizky", "Putri", "Budi", "Agus",
    "Sri", "Eko", "Dwi", "Tri", "Rina", "Fajar", "Indah", "Bayu", "Ayu", "Hendra", "Wahyu",
    "Ma'ruf", "Nu'man", "Sya'ban", "Lukman", "Yusuf", "Fitri", "Anisa", "Reza", "Dimas",
    "Galih", "Intan", "Kurnia", "Larasati", "Mega", "Novi", "Oktaviani", "Pramono", "Qori'ah",
    "Ratna", "Slamet", "Teguh", "Umi", "Vina", "Wulan", "Yoga", "Zaenal", "Ilham", "Joko",
    "Kartika", "Lestari", "Maulana", "Nanda", "Ari", "Bagus", "Citra", "Dian", "Erlangga",
)
_MIDDLE = (
    "Fathir", "Nur", "Dwi", "Ayu", "Putra", "Putri", "Adi", "Wahyu", "Sari", "Eka", "Budi",
    "Rahmat", "Hidayat", "Dewi", "Maria", "Dian", "Indra", "Kusuma", "Tri", "Aji", "Bima",
)
_LAST = (
    "Aditya", "Santoso", "Wibowo", "Saputra", "Pratama", "Hidayat", "Setiawan", "Nugroho",
    "Kurniawan", "Wijaya", "Susanto", "Purnomo", "Lestari", "Rahmawati", "Handayani",
    "Permata", "Prasetyo", "Firmansyah", "Ramadhan", "Maharani", "Syahputra", "Hakim",
    "Suryani", "Utami", "Wulandari", "Gunawan", "Halim", "Sembiring", "Siregar", "Nasution",
    "Simanjuntak", "Tanjung", "Ma'arif", "Al-Farisi", "O'Neil", "Mu'thi", "Sa'adah",
)
_AGENTS = (
    "Andi Prasetyo", "Bella Safitri", "Candra Wijaya", "Dina Marlina", "Erwin Saputra",
    "Fitria Ningsih", "Gilang Ramadhan", "Hesti Puspita", "Irfan Hakim", "Jihan Aulia",
    "Kevin Pratama", "Lia Anggraini", "M. Rizal", "Nabila Putri", "Oki Setiawan",
    "Putu Ari", "Qonita Sa'diyah", "Rudi Hartono", "Sinta Dewi", "Taufik Hidayat",
    "Yuni Kartika",
)
_AGENT_WEIGHTS = (14, 11, 10, 9, 8, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 2, 1, 1, 1, 1)
_CABANG = (
    ("Semarang", 70), ("Jakarta", 8), ("Surabaya", 7), ("Bandung", 6), ("Yogyakarta", 5),
    ("Solo", 4),
)
_CATEGORIES = (("Nexa", 45), ("ZiGY", 30), ("Fiberstream", 25))
_DESCRIPTIONS = (
    "Internet mati total", "Koneksi lambat sejak pagi", "LOS merah pada ONT",
    "Tidak bisa browsing", "WiFi tidak muncul", "Ping RTO ke gateway", "Redaman tinggi",
    "Modem restart terus-menerus", "PPPoE gagal login", "Lampu PON berkedip",
    "Speed tidak sesuai paket", "Putus-putus saat malam hari", "IPTV tidak bisa diakses",
    "Minta pindah lokasi perangkat", "Ganti password WiFi", "Tidak bisa akses email kantor",
    "Game online lag, ping tinggi", "Kabel di depan rumah terlepas", "ONT mati, tidak ada lampu",
    "Video call sering putus", "Web kantor tidak bisa dibuka", "Pelanggan komplain via WA",
)
_DESC_SUFFIX = (
    "", "", "", "", " - pelanggan minta segera ditangani", " (info dari CS)",
    ", sudah restart modem", ". Mohon dicek", " sejak kemarin", " di lantai 2",
)
_EMOJI = (" 🙏", " 😡", " 📶", " 🔥", " 😭🙏")
_CAUSES = (
    "Kabel drop core putus", "Adaptor ONT rusak", "Konektor kotor", "Redaman tinggi di ODP",
    "Gangguan massal OLT", "Konfigurasi PPPoE salah", "Listrik padam di lokasi pelanggan",
    "Perangkat milik pelanggan", "Tidak ditemukan kendala", "Kabel digigit tikus",
    "Port ODP bermasalah", "Router pelanggan hang", "Tagihan belum dibayar (isolir)",
    "Fiber cut di jalur backbone", "Pekerjaan galian pihak ketiga",
)
_HANDLINGS = (
    "Cek redaman ONT", "Restart ONT dan router", "Ganti adaptor", "Splicing ulang kabel drop",
    "Re-konfigurasi PPPoE", "Kunjungan teknisi ke lokasi", "Eskalasi ke tim NOC",
    "Ganti patchcord", "Koordinasi dengan vendor", "Konfirmasi ke pelanggan, layanan normal",
    "Reset password WiFi", "Pindah port ODP", "Ganti ONT", "Remote cek via ACS",
    "Tarik ulang kabel drop", "Menunggu konfirmasi pelanggan",
)
_HANDLING_SUMMARY = (
    "Selesai, layanan normal kembali", "Sudah normal", "Perbaikan selesai oleh teknisi",
    "Normal setelah restart", "Closed by pelanggan", "Selesai ditangani vendor",
    "Layanan sudah up", "Sudah dikonfirmasi pelanggan",
)
_CLASSIFICATIONS = (
    ("Gangguan Perangkat", 26), ("Gangguan Jaringan", 22), ("Gangguan Kabel", 18),
    ("Konfigurasi", 10), ("Permintaan Pelanggan", 9), ("Kelistrikan", 6), ("Lain-lain", 6),
    (" Tidak ada ", 3),
)
_SUBCLASS = {
    "Gangguan Perangkat": ("ONT", "Adaptor", "Router", "Patchcord"),
    "Gangguan Jaringan": ("OLT", "Backbone", "Redaman", "Routing"),
    "Gangguan Kabel": ("Drop Core", "Feeder", "Distribusi", "Konektor"),
    "Konfigurasi": ("PPPoE", "WiFi", "VLAN"),
    "Permintaan Pelanggan": ("Pindah Lokasi", "Ganti Password", "Upgrade Paket"),
    "Kelistrikan": ("PLN Padam", "UPS"),
    "Lain-lain": ("Isolir", "Lainnya"),
    " Tidak ada ": ("-",),
}
_REP_CLASS = ("Non Repeat", "Repeat", "Repeat 3x+")

_IDN_MONTHS = (
    "Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
    "Oktober", "November", "Desember",
)
_CO_PREFIX = (
    ("CV.", 30), ("PT.", 35), ("Toko", 10), ("UD.", 6), ("Koperasi", 3), ("Yayasan", 4),
    ("Klinik", 3), ("SMA Negeri", 2), ("Hotel", 3), ("Rumah Makan", 4),
)
_CO_WORDS = (
    "Rejeki", "Jaya", "Makmur", "Abadi", "Sentosa", "Sinar", "Mulia", "Berkah", "Karya",
    "Utama", "Mandiri", "Sejahtera", "Bintang", "Cahaya", "Indah", "Agung", "Perkasa", "Tunggal",
    "Harapan", "Sumber", "Maju", "Bersama", "Lestari", "Nusantara", "Samudra", "Gemilang",
    "Prima", "Citra", "Mitra", "Surya", "Langgeng", "Barokah", "Al-Ikhlas", "D'Java", "Ka'bah",
)
_CO_SITES = ("KIC", "Candi", "Tembalang", "Banyumanik", "Pedurungan", "Ungaran", "Kendal",
             "Pusat", "Cabang 2", "Gudang", "Simpang Lima")
_JENIS_KLIEN = (("Korporat", 35), ("UMKM", 30), ("Pemerintahan", 10), ("Pendidikan", 8),
                ("Retail", 15), ("", 2))
_LAYANAN = (("Dedicated Internet", 30), ("Broadband Bisnis", 30), ("Metro Ethernet", 12),
            ("IP Transit", 5), ("Fiberstream Home 50 Mbps", 15), ("Colocation", 3),
            ("Nexa Business 100 Mbps", 5))
_KATEGORI = (("Platinum", 8), ("Gold", 20), ("Silver", 32), ("Bronze", 30), ("Reguler", 10))

_SITES = (
    "Semarang Barat", "Semarang Timur", "Semarang Utara", "Semarang Selatan", "Tembalang",
    "Banyumanik", "Ungaran", "Kendal", "Demak", "Salatiga", "Kudus", "Jepara", "Pati",
    "Jakarta Selatan", "Jakarta Barat", "Surabaya Pusat", "Sidoarjo", "Bandung Kota",
    "Cimahi", "Sleman", "Bantul", "Solo Baru", "Karanganyar", "Klaten",
)
_PRIORITY = (("Low", 30), ("Medium", 40), ("High", 22), ("Critical", 8))
_NCAL = ("Blue", "Yellow", "Orange", "Red", "Black")
_INC_STATUS_OPEN = (("Open", 50), ("On Progress", 30), ("Pending", 15), ("Cancel", 5))
_KLASIFIKASI = (
    ("Fiber Cut", 28), ("Perangkat Rusak", 20), ("Power Outage", 18), ("Redaman Tinggi", 14),
    ("Konfigurasi", 8), ("Gangguan Vendor", 7), ("Bencana Alam", 2), ("Lain-lain", 3),
)
_PROBLEMS = (
    "Link backbone down", "OLT tidak bisa di-remote", "Banyak pelanggan LOS",
    "Redaman tinggi di jalur feeder", "Perangkat BTS mati", "Packet loss ke upstream",
    "Listrik PLN padam di POP", "Kabel FO putus tertabrak truk", "Switch distribusi hang",
    "Latency tinggi ke IIX",
)
_PENYEBAB = (
    "Kabel FO putus akibat galian", "Baterai UPS habis", "Modul SFP rusak", "Konektor kotor",
    "Pohon tumbang menimpa kabel", "Kesalahan konfigurasi", "Gangguan dari sisi vendor",
    "Belum diketahui", "Banjir di area POP", "Pencurian kabel",
)
_ACTIONS = (
    "Splicing ulang core", "Ganti modul SFP", "Genset dinyalakan", "Reroute trafik ke jalur backup",
    "Restart perangkat", "Eskalasi ke vendor", "Tarik kabel baru 200 m", "Ganti baterai UPS",
    "Monitoring, trafik normal", "Koordinasi dengan PLN",
)
_NOTES = (
    "", "Sudah normal", "Menunggu material", "Vendor on site", "Perlu pengecekan ulang besok",
    "Pelanggan terdampak ±120", "Sudah dilaporkan ke manajer NOC", "Cuaca hujan deras",
)
_TS_NAMES = ("Andi", "Bagus", "Cahyo", "Dedi", "Eko", "Fauzan", "Gani", "Heru", "Iwan", "Jaka")
_CUSTOMER_ERRORS = (
    "Baris {row}: kolom 'Nama' kosong",
    "Baris {row}: Jenis Klien tidak dikenal",
    "Baris {row}: data duplikat dalam sheet",
)
_TICKET_ERRORS = (
    "Baris {row}: format tanggal Open Time tidak valid",
    "Baris {row}: Customer ID kosong",
    "Baris {row}: kolom 'Category' tidak dikenal",
    "Baris {row}: Close Time lebih awal dari Open Time",
    "Baris {row}: data duplikat dalam file",
)
_VENDOR_NAMES = (
    "PT. Telkom Akses", "PT. Fiberhome Indonesia", "PT. ZTE Indonesia", "PT. Huawei Tech Investment",
    "CV. Mitra Kabel Nusantara", "PT. Lintas Jaringan Prima", "PT. Icon+ (PLN)",
    "CV. Teknik Jaya Sambung", "PT. Sarana Fiber Optik", "PT. Nusa Network Solusi",
)
_VENDOR_DESC = (
    "Vendor maintenance jaringan FO", "Penyedia perangkat OLT dan ONT", "Jasa splicing dan tarik kabel",
    "Penyedia backbone", "Vendor power dan genset", "Kontraktor galian dan ducting",
)


def _text_pool(rng: Random, size: int, make: Callable[[], str], *, tab: float, trailing: float,
               emoji: float = 0.0) -> list[str]:
    """``size`` texts, some with a stray tab, trailing spaces or a 4-byte emoji."""
    out = []
    for _ in range(size):
        s = make()
        x = rng.random()
        if x < tab:
            i = s.find(" ")
            s = s.replace(" ", "\t", 1) if i > 0 and rng.random() < 0.5 else s + "\t"
        elif x < tab + trailing:
            s += " " * (1 + int(rng.random() * 3))
        if rng.random() < emoji:
            s += _EMOJI[int(rng.random() * len(_EMOJI))]
        out.append(s)
    return out


def _person_name(rng: Random, long: bool = False) -> str:
    r = rng.random
    parts = [_FIRST[int(r() * len(_FIRST))]]
    if long or r() < 0.45:
        parts.append(_MIDDLE[int(r() * len(_MIDDLE))])
    if long:
        parts.append(_MIDDLE[int(r() * len(_MIDDLE))])
    if long or r() < 0.85:
        parts.append(_LAST[int(r() * len(_LAST))])
    return " ".join(parts)


def _name_variant(rng: Random, name: str) -> str:
    x = rng.random()
    if x < 0.25:
        return name.upper()
    if x < 0.45:
        return name + " "
    if x < 0.6 and "'" in name:
        return name.replace("'", "`")
    if x < 0.75:
        return ("Bpk. " if rng.random() < 0.5 else "Ibu ") + name
    parts = name.split(" ")
    if len(parts) >= 3:
        return f"{parts[0]} {parts[1][0]}. {' '.join(parts[2:])}"
    return name + " " + _LAST[int(rng.random() * len(_LAST))]


def _company_name(rng: Random, prefix_pool: list[str]) -> str:
    prefix = prefix_pool[int(rng.random() * len(prefix_pool))]
    k = 2 + int(rng.random() * 3)
    words = " ".join(_CO_WORDS[int(rng.random() * len(_CO_WORDS))] for _ in range(k))
    name = f"{prefix} {words}"
    if rng.random() < 0.3:
        name += f" Site {_CO_SITES[int(rng.random() * len(_CO_SITES))]}"
    if rng.random() < 0.02:
        name += " "
    return name


# -------------------------------------------------------------------- tickets


def _ticket_file_name(rng: Random, clock: _Clock, last_open_ms: int) -> str:
    y, m = clock.year_month(last_open_ms)
    x = rng.random()
    if x < 0.4:
        return f"Data Tiket {_IDN_MONTHS[m - 1]} {y}.xlsx"
    if x < 0.7:
        return f"Laporan_Ticket_{y}-{m:02d}.xlsx"
    if x < 0.9:
        return f"export_tiket_HMS_{y}{m:02d}.xlsx"
    return f"Rekap Tiket {_IDN_MONTHS[m - 1]} {y} (revisi).xlsx"


def _batch_fragment(s: _Session) -> str:
    return (f',"batchId":{_json(s.id)},"fileName":{_json(s.file_name)},'
            f'"fileHash":{_json(s.file_hash)},"uploadSessionId":{_json(s.id)}')


def _write_tickets(path: Path, rng: Random, n: int, tl: _Timeline, clock: _Clock) -> list[_Session]:
    """Write ``n`` ticket records; return the upload sessions they came in."""
    r = rng.random
    getrandbits = rng.getrandbits

    # -- plan: open times, legacy part, upload sessions, duplicates ----------
    n_dup = round(n * 0.02) if n >= 50 else 0
    n_base = n - n_dup
    start_min, end_min = tl.start_ms // _MIN_MS, tl.end_ms // _MIN_MS
    span = end_min - start_min
    # density grows over time (more customers, more tickets)
    opens = sorted(start_min + int(span * r() ** 0.5) for _ in range(n_base))
    n_legacy = round(n_base * 0.10)
    n_new = n_base - n_legacy

    groups: list[tuple[int, int, _Session | None, int]] = []  # (lo, hi, session, upload ts)
    # legacy (pre-v7) uploads: no batch, no session, uploaded before v7
    if n_legacy:
        lb = _split(rng, n_legacy, max(1, min(20, round(n_legacy / 500))))
        for lo, hi in zip(lb, lb[1:]):
            if hi <= lo:
                continue
            ts = opens[hi - 1] * _MIN_MS + _HOUR_MS * (2 + int(r() * 240))
            ts = min(ts, tl.v7_ms - _HOUR_MS) + int(r() * 1000)
            groups.append((lo, hi, None, ts))
    sessions: list[_Session] = []
    n_sess = max(1, min(400, round(n_new / 400))) if n_new else 0
    sb = _split(rng, n_new, n_sess) if n_sess else [0]
    upload_window = tl.exported_ms - _HOUR_MS - tl.v7_ms
    for i, (lo, hi) in enumerate(zip(sb, sb[1:])):
        lo, hi = lo + n_legacy, hi + n_legacy
        last_open = opens[hi - 1] * _MIN_MS if hi > lo else tl.v7_ms
        ts = max(tl.v7_ms + upload_window * (i + 1) // (n_sess + 2),
                 last_open + _HOUR_MS * (2 + int(r() * 48)))
        ts = min(ts, tl.exported_ms - 2 * _HOUR_MS) + int(r() * 60_000)
        if sessions:  # uploads happen one after the other
            ts = max(ts, min(sessions[-1].ts + _MIN_MS + int(r() * _MIN_MS), tl.exported_ms - 2 * _MIN_MS))
        sess = _Session(
            id=_batch_id(rng, ts), file_name=_ticket_file_name(rng, clock, last_open),
            file_hash=_sha256_hex(rng), ts=ts, data_type="tickets",
            error_count=(1 + int(r() * 5)) if r() < 0.12 else 0,
        )
        sessions.append(sess)
        groups.append((lo, hi, sess, ts))

    # duplicates: the same Excel row again, in a later upload
    reupload: _Session | None = None
    dup_target: dict[int, int] = {}
    if n_dup:
        for src in sorted(rng.sample(range(n_base), n_dup)):
            if src < n_legacy:
                s = -1
            else:
                s = bisect_right(sb, src - n_legacy) - 1
            dup_target[src] = s + 1 + int(r() * 3)
        if any(t >= len(sessions) for t in dup_target.values()):
            ts = tl.exported_ms - _HOUR_MS + int(r() * 1_800_000)
            reupload = _Session(
                id=_batch_id(rng, ts),
                file_name=_ticket_file_name(rng, clock, tl.end_ms).replace(".xlsx", " (1).xlsx"),
                file_hash=_sha256_hex(rng), ts=ts, data_type="tickets",
            )
        targets = sessions + ([reupload] if reupload else [])
        dup_target_s = {src: targets[min(t, len(targets) - 1)] for src, t in dup_target.items()}
    else:
        dup_target_s = {}
    all_sessions = sessions + ([reupload] if reupload else [])

    # -- vocabularies, pre-encoded as JSON fragments ``,"key":value`` --------
    # Ticket records are the bulk of a big sample, so they are assembled from
    # pre-encoded fragments instead of dicts run through the encoder (~5x faster).
    # An absent key is the empty fragment.
    def frag(key: str, value: Any) -> str:
        return "" if value is A else f',"{key}":{_json(value)}'

    def frags(key: str, values: list[Any]) -> list[str]:
        return [frag(key, v) for v in values]

    A = _ABSENT
    n_ids = max(1, round(n * 2250 / 28650))
    cust_ids = [frag("customerId", str(x))
                for x in rng.sample(range(1_000_000_000, 10_000_000_000), n_ids)]
    cust_names: list[list[str]] = []
    primaries: list[str] = []
    seen: set[str] = set()  # membership only, never iterated
    for _ in range(n_ids):
        if primaries and r() < 0.03:  # another customer of the same name
            primary = primaries[int(r() * len(primaries))]
        else:
            primary = _person_name(rng)
            for attempt in range(8):
                if primary not in seen:
                    break
                primary = _person_name(rng, long=attempt >= 2)
            seen.add(primary)
        primaries.append(primary)
        names = [primary]
        while r() < 0.25 and len(names) < 4:  # the same customer, spelled another way
            names.append(_name_variant(rng, primary))
        cust_names.append(frags("name", names))

    def make_desc() -> str:
        return (_DESCRIPTIONS[int(r() * len(_DESCRIPTIONS))]
                + _DESC_SUFFIX[int(r() * len(_DESC_SUFFIX))])

    UP = 1000  # every pool below has UP entries: pool[int(r() * UP)]
    desc_pool = frags("description", _text_pool(rng, UP, make_desc, tab=0.02, trailing=0.04,
                                                emoji=0.006))
    causes: list[Any] = _text_pool(rng, UP, lambda: _CAUSES[int(r() * len(_CAUSES))],
                                   tab=0.01, trailing=0.03)
    causes[:50] = [A] * 25 + [""] * 15 + [None] * 10  # absent 2.5%, "" 1.5%, null 1%
    rng.shuffle(causes)
    cause_pool = frags("cause", causes)
    steps_text = _text_pool(rng, UP, lambda: _HANDLINGS[int(r() * len(_HANDLINGS))],
                            tab=0.01, trailing=0.03, emoji=0.002)
    step_pools = [frags(f"handling{j}", steps_text) for j in range(1, 6)]
    handling_open_pool = frags("handling", steps_text)
    handling_done_pool = frags("handling", _text_pool(
        rng, UP, lambda: _HANDLING_SUMMARY[int(r() * len(_HANDLING_SUMMARY))], tab=0.01, trailing=0.03))
    class_pool = _pool(rng, _CLASSIFICATIONS, UP)
    class_frag = {c: frag("classification", c) for c, _ in _CLASSIFICATIONS}
    sub_pools = {
        c: frags("subClassification", _pool(
            rng, [(v, 1) for v in subs] + [(A, 0.06 * len(subs)), ("", 0.05 * len(subs)),
                                           (None, 0.02 * len(subs))], UP))
        for c, subs in _SUBCLASS.items()
    }
    rep_pool = frags("repClass", _pool(rng, [("Non Repeat", 62), ("Repeat", 15), ("Repeat 3x+", 3),
                                             (A, 10), ("", 6), (None, 4)], UP))
    agent_pool = frags("openBy", _pool(rng, zip(_AGENTS, _AGENT_WEIGHTS), UP))
    cabang_pool = frags("cabang", _pool(rng, _CABANG, UP))
    cat_pool = frags("category", _pool(rng, _CATEGORIES, UP))
    closed_status_pool = frags("status", _pool(rng, [("Closed", 975), ("Selesai", 12), ("CLOSED", 6),
                                                     ("Closed ", 5), ("Done", 2)], UP))
    open_status_pool = frags("status", _pool(rng, [("Open", 85), ("On Progress", 8), ("Pending", 5),
                                                   ("Menunggu Vendor", 2)], UP))
    unfilled_handling = _pool(rng, [("", 70), (A, 30)], UP)
    unfilled_handling_pools = [frags(f"handling{j}", unfilled_handling) for j in range(1, 6)]
    unfilled_close = _pool(rng, [(A, 45), ("", 35), (None, 20)], UP)
    unfilled_close_pools = [frags(f"closeHandling{j}", unfilled_close) for j in range(1, 6)]
    missing_close_pool = frags("closeTime", _pool(rng, [(A, 50), (None, 50)], UP))
    missing_closeh = _pool(rng, [(A, 40), (None, 40), ("", 20)], UP)
    missing_closeh_pool = frags("closeHandling", missing_closeh)
    missing_closeh_pools = [frags(f"closeHandling{j}", missing_closeh) for j in range(1, 6)]

    iso_z_minute, naive_minute = clock.iso_z_minute, clock.naive_minute
    dur_cache: dict[int, str] = {}

    def dur(minutes: int) -> str:
        """The encoded duration object of a close ``minutes`` after the open."""
        s = dur_cache.get(minutes)
        if s is None:
            s = dur_cache[minutes] = _json(_duration(minutes * _MIN_MS))
        return s

    zero = _json(_ZERO_DURATION)
    zeros5 = [zero] * 5

    group_lo = [g[0] for g in groups]

    def row(idx: int) -> tuple[str, str]:
        """Everything of base row ``idx`` but its id and upload metadata: the JSON text
        from customerId to cabang, and the repClass fragment."""
        ts = groups[bisect_right(group_lo, idx) - 1][3]
        open_min = opens[idx]
        ci = int(n_ids * r() * r())  # a few customers raise many tickets
        names = cust_names[ci]
        name = names[0] if len(names) == 1 or r() < 0.6 else names[int(r() * len(names))]
        cls = class_pool[int(r() * UP)]
        x = r()
        k = 1 + (x < 0.29) + (x < 0.07) + (x < 0.02) + (x < 0.004)

        # close times, in epoch minutes
        y = r()
        if y < 0.006:  # closed "before" it was opened (a typo in the sheet)
            kind = 2
            close_min = open_min - 480 - int(r() * 5000)
        elif y < 0.04:
            kind = 1  # still open
            close_min = 0
        else:
            kind = 0
            z = r()
            if z < 0.55:
                total = 10 + int(r() * 230)
            elif z < 0.8:
                total = 240 + int(r() * 1200)
            elif z < 0.95:
                total = 1440 + int(r() * 4320)
            else:
                total = 5760 + int(r() * 23040)
            close_min = open_min + total + int(r() * 30)
            if close_min * _MIN_MS > ts:  # not closed yet when the sheet was exported
                kind = 1
        if kind == 0:
            offs = [max(1, int(total * (j - r() * 0.5) / k)) for j in range(1, k)]
            offs.append(total)
            close_time = f',"closeTime":"{iso_z_minute(close_min)}"'
            duration = dur(close_min - open_min)
            close_handling = f',"closeHandling":"{iso_z_minute(open_min + total)}"'
            handling_duration = dur(total)
            step_close = [f',"closeHandling{j}":"{iso_z_minute(open_min + o)}"'
                          for j, o in enumerate(offs, 1)]
            step_dur = [dur(o) for o in offs]
            status = closed_status_pool[int(r() * UP)]
            handling = handling_done_pool[int(r() * UP)]
        elif kind == 2:
            c = iso_z_minute(close_min)
            close_time = f',"closeTime":"{c}"'
            close_handling = f',"closeHandling":"{c}"'
            duration = handling_duration = zero
            step_close = [f',"closeHandling{j}":"{c}"' for j in range(1, k + 1)]
            step_dur = zeros5
            status = closed_status_pool[int(r() * UP)]
            handling = handling_done_pool[int(r() * UP)]
        else:
            close_time = missing_close_pool[int(r() * UP)]
            close_handling = missing_closeh_pool[int(r() * UP)]
            duration = handling_duration = zero
            step_close = [missing_closeh_pools[j][int(r() * UP)] for j in range(k)]
            step_dur = zeros5
            status = open_status_pool[int(r() * UP)]
            handling = handling_open_pool[int(r() * UP)]
        hs = [step_pools[j][int(r() * UP)] if j < k else unfilled_handling_pools[j][int(r() * UP)]
              for j in range(5)]
        for j in range(k, 5):
            step_close.append(unfilled_close_pools[j][int(r() * UP)])
        d1, d2, d3, d4, d5 = (step_dur + zeros5)[:5] if k < 5 else step_dur
        mid = (
            f"{cust_ids[ci]}{name}{cat_pool[int(r() * UP)]}{desc_pool[int(r() * UP)]}"
            f"{cause_pool[int(r() * UP)]}{handling}"
            f',"openTime":"{naive_minute(open_min)}"{close_time},"duration":{duration}'
            f'{close_handling},"handlingDuration":{handling_duration}'
            f"{class_frag[cls]}{sub_pools[cls][int(r() * UP)]}{status}"
            f"{hs[0]}{hs[1]}{hs[2]}{hs[3]}{hs[4]}"
            f"{step_close[0]}{step_close[1]}{step_close[2]}{step_close[3]}{step_close[4]}"
            f',"handlingDuration1":{d1},"handlingDuration2":{d2},"handlingDuration3":{d3}'
            f',"handlingDuration4":{d4},"handlingDuration5":{d5}'
            f"{agent_pool[int(r() * UP)]}{cabang_pool[int(r() * UP)]}"
        )
        rep = rep_pool[int(r() * UP)]
        return mid, rep

    # IndexedDB exports a store in key order: by the random UUID, so uploads,
    # legacy rows and duplicates come interleaved. Ids are drawn up front (base
    # rows, then duplicates) and the rows are generated in that order; the rows
    # that get duplicated are generated first, as both copies need them.
    keys = [_uuid4_int(getrandbits) for _ in range(n)]
    order = sorted(range(n), key=keys.__getitem__)
    dup_src = sorted(dup_target_s)  # duplicate m (record n_base + m) copies row dup_src[m]
    copied = {src: row(src) for src in dup_src}
    legacy_null = ',"batchId":null,"fileName":null,"fileHash":null,"uploadSessionId":null'
    batch_frag = {s.id: _batch_fragment(s) for s in all_sessions}
    counts: dict[str, int] = {}
    for lo, hi, sess, _ in groups:
        if sess is not None:
            counts[sess.id] = hi - lo
    for t in dup_target_s.values():
        counts[t.id] = counts.get(t.id, 0) + 1

    with _ArrayWriter(path) as out:
        buf: list[str] = []
        for i in order:
            uid = _uuid_str(keys[i])
            if i < n_base:
                mid, rep = copied.get(i) or row(i)
                _, _, sess, ts = groups[bisect_right(group_lo, i) - 1]
                if sess is not None:
                    batch = batch_frag[sess.id]
                else:  # legacy (pre-v7): batch keys null, or absent
                    batch = legacy_null if r() < 0.6 else ""
            else:  # the same Excel row again: new id, the later upload's metadata
                src = dup_src[i - n_base]
                mid, rep = copied[src]
                sess = dup_target_s[src]
                ts, batch = sess.ts, batch_frag[sess.id]
            buf.append(f'{{"id":"{uid}"{mid},"uploadTimestamp":{ts}{rep}{batch}}}')
            if len(buf) >= _CHUNK:
                out.write_raw(buf)
                buf = []
        out.write_raw(buf)
        assert out.count == n, (out.count, n)

    for s in all_sessions:
        s.success_count = counts.get(s.id, 0)
    return all_sessions


# ------------------------------------------------------------------ incidents


def _write_incidents(path: Path, rng: Random, n: int, tl: _Timeline, clock: _Clock) -> None:
    """Write ``n`` incident records, imported in uploads of a tight importedAt cluster."""
    r = rng.random
    iso_z = clock.iso_z
    A = _ABSENT
    encode = _ArrayWriter._enc.encode

    n_uploads = max(1, min(1000, round(n / 150))) if n else 0
    n_dup = round(n * 0.015) if n >= 50 else 0
    n_base = n - n_dup
    inc_start = max(tl.start_ms, tl.end_ms - 3 * 365 * _DAY_MS)
    inc_span_s = (tl.end_ms - inc_start) // 1000
    starts = sorted(inc_start + int(inc_span_s * r()) * 1000 for _ in range(n_base))
    ub = _split(rng, n_base, n_uploads) if n_uploads else [0]
    upload_ts: list[int] = []
    for lo, hi in zip(ub, ub[1:]):
        last = starts[hi - 1] if hi > lo else tl.end_ms
        ts = min(last + _HOUR_MS * (2 + int(r() * 70)), tl.exported_ms - 2 * _HOUR_MS) + int(r() * 60_000)
        if upload_ts:  # uploads happen one after the other
            ts = max(ts, min(upload_ts[-1] + _MIN_MS + int(r() * _MIN_MS), tl.exported_ms - 2 * _MIN_MS))
        upload_ts.append(ts)
    # re-imports: rows of one upload imported again with the next (last one: an extra upload)
    pending: list[list[dict[str, Any]]] = [[] for _ in range(n_uploads + 1)]
    dup_target: dict[int, int] = {}
    for src in sorted(rng.sample(range(n_base), n_dup)) if n_dup else ():
        dup_target[src] = bisect_right(ub, src)  # the upload after the source's
    if n_dup and any(t >= n_uploads for t in dup_target.values()):
        upload_ts.append(tl.exported_ms - _HOUR_MS + int(r() * 1_800_000))

    level_pool = _pool(rng, [(1, 30), (2, 30), (3, 20), (4, 13), (5, 7)])
    priority_pool = _pool(rng, _PRIORITY)
    open_status_pool = _pool(rng, _INC_STATUS_OPEN)
    klas_pool = _pool(rng, _KLASIFIKASI)
    missing_pool = _pool(rng, [(_ABSENT, 60), (None, 40)])
    problem_pool = _text_pool(rng, 500, lambda: _PROBLEMS[int(r() * len(_PROBLEMS))],
                              tab=0.02, trailing=0.04)
    penyebab_pool = _text_pool(rng, 500, lambda: _PENYEBAB[int(r() * len(_PENYEBAB))],
                               tab=0.01, trailing=0.03)
    action_pool = _text_pool(rng, 500, lambda: _ACTIONS[int(r() * len(_ACTIONS))],
                             tab=0.02, trailing=0.03, emoji=0.004)
    note_pool = _text_pool(rng, 500, lambda: _NOTES[int(r() * len(_NOTES))], tab=0.01, trailing=0.05)
    site_codes = {s: s[:3].upper() for s in _SITES}
    NS, NT, UP = len(_SITES), len(_TS_NAMES), 1000
    seq: dict[str, int] = {}
    per_day = n_base * _DAY_MS / max(1, tl.end_ms - inc_start)  # incidents a day

    def identify(rec: dict[str, Any], imported_ms: int) -> None:
        """Fresh id, batchId and importedAt, as the app assigns at every import."""
        h = hashlib.sha1(f"{rec['noCase']}{rec['startTime']}".encode()).hexdigest()[:8]
        rec["id"] = f"INC-{h}-{imported_ms}-{_base36(rng, 6)}"
        rec["batchId"] = _batch_id(rng, imported_ms)
        rec["importedAt"] = iso_z(imported_ms)

    with _ArrayWriter(path) as out:
        buf: list[tuple[str, str]] = []  # (id, JSON text), written in key order at the end
        idx = 0
        for u, ts in enumerate(upload_ts):
            imported = ts
            hi = ub[u + 1] if u < n_uploads else idx
            for dup in pending[u]:  # re-imported rows of an earlier upload
                d = dict(dup)
                imported += int(r() * 3)
                identify(d, imported)
                d["uploadTimestamp"] = ts
                buf.append((d["id"], encode(d)))
            pending[u] = []
            while idx < hi:
                start = starts[idx]
                start_iso = iso_z(start)
                year = start_iso[:4]
                if year not in seq:  # the sample starts mid-year: so does the numbering
                    day_of_year = (date.fromisoformat(start_iso[:10]) - date(int(year), 1, 1)).days
                    seq[year] = int(day_of_year * per_day)
                seq[year] += 1 + (int(r() * 4) if r() < 0.08 else 0)
                site = _SITES[int(r() * NS)]
                level = level_pool[int(r() * UP)]
                ncal = _NCAL[level - 1]
                if r() < 0.1:  # the NCAL colour does not always follow the level
                    ncal = _NCAL[min(4, max(0, level - 1 + (1 if r() < 0.5 else -1)))]
                z = r()
                if z < 0.6:
                    dur_s = 1800 + int(r() * 19800)
                elif z < 0.85:
                    dur_s = 21600 + int(r() * 64800)
                else:
                    dur_s = 86400 + int(r() * 345600)
                end = start + dur_s * 1000
                closed = r() < 0.9 and end <= ts
                esc: int | None = start + int(dur_s * r() * 0.5) * 1000 if r() < 0.55 else None
                pauses: list[tuple[int, int]] = []
                if closed and r() < 0.3:
                    p1s = start + int(dur_s * (0.1 + 0.4 * r())) * 1000
                    p1e = p1s + int(dur_s * (0.02 + 0.2 * r())) * 1000
                    pauses.append((p1s, p1e))
                    if r() < 0.3 and p1e < end:
                        p2s = p1e + int((end - p1e) // 1000 * (0.1 + 0.3 * r())) * 1000
                        p2e = p2s + int((end - p2s) // 1000 * (0.1 + 0.4 * r())) * 1000
                        pauses.append((p2s, p2e))
                if closed:
                    status = "Closed"
                    end_time: Any = iso_z(end)
                    duration = (end - start) / _MIN_MS
                    pause = sum(pe - ps for ps, pe in pauses) / _MIN_MS
                    if esc is not None:
                        vendor = (end - esc) / _MIN_MS
                        in_window = sum(max(0, pe - max(ps, esc)) for ps, pe in pauses)
                        total_vendor = (end - esc - in_window) / _MIN_MS
                    else:
                        vendor = total_vendor = 0.0
                else:
                    status = open_status_pool[int(r() * UP)]
                    end_time = missing_pool[int(r() * UP)]
                    duration = pause = vendor = total_vendor = 0.0
                    if esc is not None and esc > ts:
                        esc = None
                pause_times: list[Any] = []
                for ps, pe in pauses:
                    pause_times += (iso_z(ps), iso_z(pe))
                while len(pause_times) < 4:  # no such pause: both ends absent or null
                    pause_times += [missing_pool[int(r() * UP)]] * 2
                rec = {
                    "id": "",
                    "noCase": f"NC-{year}-{seq[year]:06d}",
                    "priority": priority_pool[int(r() * UP)],
                    "site": site,
                    "ncal": ncal,
                    "status": status,
                    "level": level,
                    "ts": f"{_TS_NAMES[int(r() * NT)]} / TS {site.split(' ')[0]}",
                    "odpBts": (f"ODP-{site_codes[site]}-FAT-{int(r() * 400):03d}" if r() < 0.7
                               else f"BTS-{site_codes[site]}-{int(r() * 90):03d}"),
                    "startTime": start_iso,
                    "startEscalationVendor": iso_z(esc) if esc is not None else missing_pool[int(r() * UP)],
                    "endTime": end_time,
                    "durationMin": duration,
                    "durationVendorMin": vendor,
                    "problem": problem_pool[int(r() * 500)],
                    "penyebab": penyebab_pool[int(r() * 500)] if closed or r() < 0.5 else "",
                    "actionTerakhir": action_pool[int(r() * 500)],
                    "note": note_pool[int(r() * 500)],
                    "klasifikasiGangguan": klas_pool[int(r() * UP)],
                    "powerBefore": round(-15 - r() * 25, 2) if r() < 0.85 else None,
                    "powerAfter": round(-14 - r() * 12, 2) if closed and r() < 0.8 else None,
                    "startPause1": pause_times[0],
                    "endPause1": pause_times[1],
                    "startPause2": pause_times[2],
                    "endPause2": pause_times[3],
                    "totalDurationPauseMin": pause,
                    "totalDurationVendorMin": total_vendor,
                    "netDurationMin": duration - pause,
                    "batchId": "",
                    "importedAt": "",
                    "uploadTimestamp": ts,
                }
                imported += int(r() * 3)
                identify(rec, imported)
                for key in [key for key, v in rec.items() if v is A]:
                    del rec[key]
                buf.append((rec["id"], encode(rec)))
                target = dup_target.get(idx)
                if target is not None:
                    pending[target].append(rec)
                idx += 1
        _write_in_key_order(out, buf)
        assert out.count == n, (out.count, n)


# ------------------------------------------------------------------ customers


def _month_start_ms(y: int, m: int) -> int:
    return (date(y, m, 1) - date(1970, 1, 1)).days * _DAY_MS


def _write_customers(path: Path, rng: Random, n: int, tl: _Timeline, clock: _Clock) -> list[_Session]:
    """Write ``n`` customer records: one snapshot sheet per month."""
    r = rng.random
    sessions: list[_Session] = []
    with _ArrayWriter(path) as out:
        if n == 0:
            return sessions
        n_months = min(24, max(1, n // 40))
        y, m = clock.year_month(tl.end_ms)
        months = []
        for _ in range(n_months):
            months.append((y, m))
            y, m = (y, m - 1) if m > 1 else (y - 1, 12)
        months.reverse()
        base, extra = divmod(n, n_months)
        rows = [base + (1 if i >= n_months - extra else 0) for i in range(n_months)]
        n_legacy = round(n_months * 0.2) if n_months >= 3 else 0

        prefix_pool = _pool(rng, _CO_PREFIX, 200)
        jenis_pool = _pool(rng, _JENIS_KLIEN)
        layanan_pool = _pool(rng, _LAYANAN)
        kategori_pool = _pool(rng, _KATEGORI)
        n_entities = max(rows) * 5 // 4 + 1
        entities = [
            (_company_name(rng, prefix_pool), jenis_pool[int(r() * 1000)],
             layanan_pool[int(r() * 1000)], kategori_pool[int(r() * 1000)])
            for _ in range(n_entities)
        ]
        buf: list[tuple[str, str]] = []  # (id, JSON text), written in key order at the end
        encode = _ArrayWriter._enc.encode
        for i, ((y, m), k) in enumerate(zip(months, rows)):
            ny, nm = (y, m + 1) if m < 12 else (y + 1, 1)
            ts = _month_start_ms(ny, nm) + _HOUR_MS * (24 + int(r() * 144)) + int(r() * _HOUR_MS)
            sheet = f"{_IDN_MONTHS[m - 1]} {y}"
            if i < n_legacy:
                ts = min(ts, tl.v7_ms - _HOUR_MS)
                b_id = f_name = f_hash = None
            else:
                ts = max(ts, tl.v7_ms + _DAY_MS * (i - n_legacy + 1) + int(r() * _HOUR_MS))
                ts = min(ts, tl.exported_ms - _HOUR_MS - int(r() * _HOUR_MS))
                b_id = _batch_id(rng, ts)
                f_name = (f"Data Customer {sheet}.xlsx" if r() < 0.7
                          else f"customer_list_{y}{m:02d}.xlsx")
                f_hash = _sha256_hex(rng)
                sessions.append(_Session(
                    id=b_id, file_name=f_name, file_hash=f_hash, ts=ts, data_type="customers",
                    error_count=(1 + int(r() * 3)) if r() < 0.15 else 0, success_count=k,
                ))
            for row, e in enumerate(sorted(rng.sample(range(n_entities), k))):
                nama, jenis, layanan, kategori = entities[e]
                rec = {
                    "id": f"{sheet}-{row}-{nama}",
                    "nama": nama,
                    "jenisKlien": jenis,
                    "layanan": layanan,
                    "kategori": kategori,
                    "uploadTimestamp": ts,
                    "batchId": b_id,
                    "fileName": f_name,
                    "fileHash": f_hash,
                }
                buf.append((rec["id"], encode(rec)))
        _write_in_key_order(out, buf)
        assert out.count == n, (out.count, n)
    return sessions


# -------------------------------------------------------------------- vendors


def _ascii_slug(text: str) -> str:
    return "".join(c for c in text.lower() if c.isascii() and c.isalnum())


def _write_vendors(path: Path, rng: Random, n: int, tl: _Timeline) -> None:
    r = rng.random
    no_description = int(r() * n) if n else -1
    prefix_pool = _pool(rng, [("PT.", 70), ("CV.", 30)], 100)
    records = []
    for i in range(n):
        name = (_VENDOR_NAMES[i] if i < len(_VENDOR_NAMES)
                else f"{prefix_pool[int(r() * 100)]} {_CO_WORDS[int(r() * len(_CO_WORDS))]} "
                     f"{_CO_WORDS[int(r() * len(_CO_WORDS))]} Teknik {i + 1}")
        contact = _person_name(rng)
        domain = _ascii_slug(name.replace("PT.", "").replace("CV.", ""))[:18] or f"vendor{i + 1}"
        created = tl.start_ms + int(r() * (tl.exported_ms - 60 * _DAY_MS - tl.start_ms))
        updated = created + int(r() * (tl.exported_ms - _HOUR_MS - created))
        rec: dict[str, Any] = {
            "id": i + 1,
            "name": name,
            "description": _VENDOR_DESC[int(r() * len(_VENDOR_DESC))] if r() < 0.95 else "",
            "contactPerson": contact,
            "email": f"{_ascii_slug(contact.split(' ')[0])}@{domain}.co.id",
            "phone": f"08{int(r() * 10**10):010d}" if r() < 0.8 else f"(024) {int(r() * 10**7):07d}",
            "isActive": r() < 0.85,
            "createdAt": {"$date": created},
            "updatedAt": {"$date": updated},
        }
        if i == no_description:
            del rec["description"]
        records.append(rec)
    with _ArrayWriter(path) as out:
        out.write(records)


# ------------------------------------------------------------- uploadSessions


def _write_sessions(path: Path, rng: Random, sessions: list[_Session], tl: _Timeline) -> int:
    """Write the upload sessions of the ticket and customer uploads, plus one failed
    and one deleted upload (whose records are gone)."""
    r = rng.random
    records = []
    for s in sessions:
        rows = sorted(rng.sample(range(2, s.success_count + s.error_count + 2), s.error_count))
        messages = _TICKET_ERRORS if s.data_type == "tickets" else _CUSTOMER_ERRORS
        log = [messages[int(r() * len(messages))].format(row=row) for row in rows]
        records.append(_session_record(rng, s, "completed", s.success_count, log))

    window = tl.exported_ms - 2 * _HOUR_MS - tl.v7_ms
    ts = tl.v7_ms + int(r() * window)
    failed = _Session(id=_batch_id(rng, ts), file_name="Data Tiket (salah format).xlsx",
                      file_hash=_sha256_hex(rng), ts=ts, data_type="tickets",
                      error_count=80 + int(r() * 320))
    records.append(_session_record(rng, failed, "failed", 0, [
        "Sheet 'Data' tidak ditemukan, memakai sheet pertama",
        "Kolom wajib tidak ditemukan: Open Time, Customer ID",
        f"{failed.error_count} baris gagal diproses",
    ]))
    ts = tl.v7_ms + int(r() * window)
    deleted = _Session(id=_batch_id(rng, ts), file_name="Data Tiket Percobaan.xlsx",
                       file_hash=_sha256_hex(rng), ts=ts, data_type="tickets")
    records.append(_session_record(rng, deleted, "deleted", 100 + int(r() * 500), []))
    records.sort(key=lambda rec: rec["id"])  # IndexedDB exports in key order
    with _ArrayWriter(path) as out:
        out.write(records)
    return len(records)


def _session_record(rng: Random, s: _Session, status: str, success: int, log: list[str]) -> dict[str, Any]:
    total = success + s.error_count
    return {
        "id": s.id,
        "fileName": s.file_name,
        "fileHash": s.file_hash,
        "fileSize": 9_000 + total * (140 + int(rng.random() * 120)) + int(rng.random() * 4096),
        "uploadTimestamp": s.ts,
        "recordCount": total,
        "successCount": success,
        "errorCount": s.error_count,
        "dataType": s.data_type,
        "status": status,
        "errorLog": log,
    }


# ---------------------------------------------------------------------- entry


def write_sample(
    out_dir: Path,
    *,
    tickets: int = 2000,
    incidents: int | None = None,
    customers: int | None = None,
    vendors: int | None = None,
    seed: int = 7,
    exported_at: str = "2025-09-01T00:00:00.000Z",
) -> SampleResult:
    """Write a deterministic sample export of ``InsightTicketDatabase`` into ``out_dir``.

    ``None`` sizes follow the ticket count: incidents ~ tickets/4, customers ~
    tickets/3 (monthly snapshots), vendors ~ tickets/1000 (at least 5, at most
    200).  Upload sessions follow from the ticket and customer uploads.  The
    same arguments always give byte-identical files.
    """
    if tickets < 0:
        raise ValueError(f"tickets must be >= 0, got {tickets}")
    incidents = round(tickets / 4) if incidents is None else incidents
    customers = round(tickets / 3) if customers is None else customers
    vendors = min(200, max(5, tickets // 1000)) if vendors is None else vendors
    for label, value in (("incidents", incidents), ("customers", customers), ("vendors", vendors)):
        if value < 0:
            raise ValueError(f"{label} must be >= 0, got {value}")

    exported_ms = _parse_ms(exported_at)
    end_ms = exported_ms - 2 * _DAY_MS
    tl = _Timeline(
        exported_ms=exported_ms,
        end_ms=end_ms,
        start_ms=end_ms - 2070 * _DAY_MS,
        v7_ms=exported_ms - 180 * _DAY_MS,
    )
    master = Random(seed)
    rngs = {store: Random(master.getrandbits(64)) for store in STORES}
    clock = _Clock()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / "export-summary.json"
    summary_path.unlink(missing_ok=True)  # present again only once every file is complete

    sessions = _write_tickets(out_dir / "tickets.json", rngs["tickets"], tickets, tl, clock)
    _write_incidents(out_dir / "incidents.json", rngs["incidents"], incidents, tl, clock)
    sessions += _write_customers(out_dir / "customers.json", rngs["customers"], customers, tl, clock)
    _write_vendors(out_dir / "vendors.json", rngs["vendors"], vendors, tl)
    n_sessions = _write_sessions(out_dir / "uploadSessions.json", rngs["uploadSessions"], sessions, tl)

    result = SampleResult(out_dir=out_dir, tickets=tickets, incidents=incidents, customers=customers,
                          vendors=vendors, upload_sessions=n_sessions)
    _write_json(summary_path, {
        "databaseName": DATABASE_NAME,
        "databaseVersion": DATABASE_VERSION,
        "exportedAt": exported_at,
        "source": "sample",
        "counts": result.counts,
        "files": {store: [f"{store}.json"] for store in STORES},
    })
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m etl.source.sample", description=write_sample.__doc__)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--tickets", type=int, default=2000)
    p.add_argument("--incidents", type=int)
    p.add_argument("--customers", type=int)
    p.add_argument("--vendors", type=int)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--exported-at", default="2025-09-01T00:00:00.000Z")
    a = p.parse_args(argv)
    print(write_sample(a.out_dir, tickets=a.tickets, incidents=a.incidents, customers=a.customers,
                       vendors=a.vendors, seed=a.seed, exported_at=a.exported_at))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


@dataclass(frozen=True)
class SampleReused(Result):
    """The sample export a previous run generated, found again unchanged."""

    path: str
    tickets: int
    reused: bool = True

    def __str__(self) -> str:
        return f"sample export already at {self.path} ({self.tickets} tickets)"


def sample_or_reuse(out: Path, tickets: int):
    """write_sample(out, tickets=tickets), unless `out` already holds a sample with as many tickets."""
    summary = Path(out) / "export-summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("counts", {}).get("tickets") == tickets:
        return SampleReused(str(out), tickets)
    return write_sample(Path(out), tickets=tickets)
